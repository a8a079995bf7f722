"""The reference classifier the image metrics stand on (no downloadable Inception here).

A batch-normalised SiLU CNN trained by the plugin on the real training split, with per-image random
shifts as augmentation and dropout before the head. No label smoothing: it squeezes each class's
penultimate features together (Müller et al. 2019), and a quality metric needs the within-class
spread. Its penultimate 64-d features, z-scored with the training split's mean and standard
deviation (stored with the weights), replace Inception features for Fréchet distance, KID and
precision/recall. It is cached by dataset hash under ``$PANFLOW_CACHE`` (default
``~/.cache/panflow``) and its held-out accuracy is reported beside every number computed with it.
"""

from __future__ import annotations

import torch
from torch import nn

from panflow import Samples, cached_weights

FEATURES = 64
WIDTH = 48
VERSION = 2  # part of the cache key: weights of an older architecture are never loaded


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.SiLU(),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.SiLU()]


class ReferenceCNN(nn.Module):
    """``[B, C, H, W]`` in [0, 1] → logits ``[B, K]``; ``features`` gives the z-scored 64-d penultimate layer."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        w = WIDTH
        self.body = nn.Sequential(  # 8x8 input: 8x8 -> 4x4 -> 2x2, the 2x2 map is kept (where strokes are)
            *_block(channels, w), nn.AdaptiveMaxPool2d(4), *_block(w, 2 * w), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.SiLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(16 * w, FEATURES), nn.SiLU())
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(FEATURES, num_classes)
        self.register_buffer("feat_mean", torch.zeros(FEATURES))
        self.register_buffer("feat_std", torch.ones(FEATURES))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Raw penultimate activations ``[B, 64]``."""
        return self.body(x * 2 - 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations standardised with the training split's statistics ``[B, 64]``."""
        return (self.embed(x) - self.feat_mean) / self.feat_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.embed(x)))


def max_shift(height: int) -> int:
    """Largest augmentation shift in pixels: 1 at 8×8, 2 at 28×28 and 32×32."""
    return max(1, height // 14)


def shift(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    """Each image of ``[B, C, H, W]`` moved by its own random (dy, dx) in [-s, s]², zero-filled."""
    b, _, h, w = x.shape
    pad = nn.functional.pad(x, (s, s, s, s))
    dy, dx = torch.randint(0, 2 * s + 1, (2, b), generator=g)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(b, x.shape[1], h, w + 2 * s)
    out = pad.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(b, x.shape[1], h, w)
    return out.gather(3, cols)


def _train(train: Samples, num_classes: int, epochs: int, seed: int) -> ReferenceCNN:
    torch.manual_seed(seed)
    net = ReferenceCNN(train.x.shape[1], num_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    n, bs = len(train), 128
    steps = epochs * max(1, n // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    s = max_shift(train.x.shape[2])
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (bs,), generator=g)
        loss = nn.functional.cross_entropy(net(shift(train.x[idx], s, g)), train.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        f = torch.cat([net.embed(train.x[i:i + 512]) for i in range(0, n, 512)])
        net.feat_mean.copy_(f.mean(0))
        net.feat_std.copy_(f.std(0).clamp_min(1e-6))
    return net


@torch.no_grad()
def predict(net: ReferenceCNN, x: torch.Tensor) -> torch.Tensor:
    """Predicted classes ``[N]`` of images ``[N, C, H, W]``."""
    return torch.cat([net(x[i:i + 512]).argmax(1) for i in range(0, x.shape[0], 512)])


def accuracy(net: ReferenceCNN, data: Samples) -> float:
    return float((predict(net, data.x) == data.y).double().mean())


@torch.no_grad()
def features(net: ReferenceCNN, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net.features(x[i:i + 512]) for i in range(0, x.shape[0], 512)])


def reference_classifier(train: Samples, val: Samples, num_classes: int, dataset_hash: str,
                         epochs: int = 100, seed: int = 0) -> tuple[ReferenceCNN, dict]:
    """Train (or load from the cache) the classifier for this dataset; returns it and its report."""
    if train.y is None:
        raise ValueError("the reference classifier needs labelled images")
    key = f"classifier-v{VERSION}-{dataset_hash}-{num_classes}-{epochs}-{seed}"

    def fit():
        net = _train(train, num_classes, epochs, seed)
        return net, {"val_accuracy": accuracy(net, val), "train_accuracy": accuracy(net, train), "epochs": epochs,
                     "seed": seed, "dataset_hash": dataset_hash, "features": FEATURES, "n_train": len(train),
                     "n_val": len(val), "max_shift": max_shift(train.x.shape[2])}

    return cached_weights("image", key, ReferenceCNN(train.x.shape[1], num_classes), fit)
