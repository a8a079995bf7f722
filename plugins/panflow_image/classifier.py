"""The reference classifier the image metrics stand on (no downloadable Inception here).

A small CNN trained by the plugin on the real training split; its penultimate 64-d features
replace Inception features for Fréchet distance, KID and precision/recall. It is cached by
dataset hash under ``$PANFLOW_CACHE`` (default ``~/.cache/panflow``) and its held-out accuracy
is reported beside every number computed with it.
"""

from __future__ import annotations

import torch
from torch import nn

from panflow import Samples, cached_weights

FEATURES = 64


class ReferenceCNN(nn.Module):
    """``[B, C, H, W]`` in [0, 1] → logits ``[B, K]``; ``features`` gives the 64-d penultimate layer."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(8), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(128, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _train(train: Samples, num_classes: int, epochs: int, seed: int) -> ReferenceCNN:
    torch.manual_seed(seed)
    net = ReferenceCNN(train.x.shape[1], num_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    n, bs = len(train), 128
    steps = epochs * max(1, n // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (bs,), generator=g)
        x, y = train.x[idx], train.y[idx]
        # light augmentation: random shifts of up to 1 pixel keep the features from memorising
        dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: ReferenceCNN, data: Samples) -> float:
    pred = torch.cat([net(data.x[i:i + 512]).argmax(1) for i in range(0, len(data), 512)])
    return float((pred == data.y).double().mean())


@torch.no_grad()
def features(net: ReferenceCNN, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net.features(x[i:i + 512]) for i in range(0, x.shape[0], 512)])


def reference_classifier(train: Samples, val: Samples, num_classes: int, dataset_hash: str,
                         epochs: int = 40, seed: int = 0) -> tuple[ReferenceCNN, dict]:
    """Train (or load from the cache) the classifier for this dataset; returns it and its report."""
    if train.y is None:
        raise ValueError("the reference classifier needs labelled images")
    key = f"classifier-{dataset_hash}-{num_classes}-{epochs}-{seed}"

    def fit():
        net = _train(train, num_classes, epochs, seed)
        return net, {"val_accuracy": accuracy(net, val), "train_accuracy": accuracy(net, train), "epochs": epochs,
                     "seed": seed, "dataset_hash": dataset_hash, "features": FEATURES}

    return cached_weights("image", key, ReferenceCNN(train.x.shape[1], num_classes), fit)
