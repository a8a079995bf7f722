"""The reference audio classifier the metrics stand on (no downloadable VGGish/PANNs here).

A small CNN over log-mel spectrograms of *waveforms* (the dataset's frontend, re-computed from the
audio, so generated spectrograms are judged only after inversion to sound), trained by the plugin
on the real training clips together with the same clips sent through the frontend's log-mel →
Griffin-Lim path (same labels). Without those copies the features separate "real" from
"Griffin-Lim" rather than one class from another: the notes classifier, 100% on real notes, scored
23% on the inverted real notes, whose pitch YIN still finds in 100% of them. With them the
ceiling row measures what the inversion loses in content, not its phase signature. Its penultimate
64-d features serve for the classifier Fréchet distance (not FAD: no VGGish), its posteriors for
conditional accuracy and KL. Cached by dataset hash under ``$PANFLOW_CACHE/audio``; its held-out
accuracy (on real and on inverted clips) is reported beside every number.
"""

from __future__ import annotations

import torch
from torch import nn

from panflow import cached_weights

from .frontend import Frontend

FEATURES = 64


class AudioCNN(nn.Module):
    """waveform ``[B, T]`` → logits ``[B, K]``; ``features`` gives the 64-d penultimate layer."""

    def __init__(self, frontend: Frontend, num_classes: int):
        super().__init__()
        self.frontend = frontend
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, num_classes)

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        return (self.frontend.features(wave) - self.mean) / self.std

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        return self.body(self.spectrogram(wave))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(wave))


def _train(net: AudioCNN, waves: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> AudioCNN:
    torch.manual_seed(seed)
    spec = net.frontend.features(waves)
    net.mean.fill_(float(spec.mean()))
    net.std.fill_(float(spec.std()))
    spec = (spec - net.mean) / net.std
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    n, bs = len(y), 64
    steps = epochs * max(1, n // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (bs,), generator=g)
        x = spec[idx]
        # light augmentation: a shift of up to 2 frames and a gain change of up to ±6 dB
        x = torch.roll(x, int(torch.randint(-2, 3, (1,), generator=g)), dims=3)
        x = x + (torch.rand(bs, 1, 1, 1, generator=g) - 0.5) * 1.38 / float(net.std)
        loss = nn.functional.cross_entropy(net.head(net.body(x)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def posteriors(net: AudioCNN, waves: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(waves[i:i + 256]).softmax(-1) for i in range(0, waves.shape[0], 256)])


@torch.no_grad()
def features(net: AudioCNN, waves: torch.Tensor) -> torch.Tensor:
    return torch.cat([net.features(waves[i:i + 256]) for i in range(0, waves.shape[0], 256)])


def accuracy(net: AudioCNN, waves: torch.Tensor, y: torch.Tensor) -> float:
    return float((posteriors(net, waves).argmax(1) == y).double().mean())


def reference_classifier(train_waves: torch.Tensor, train_y: torch.Tensor, val_waves: torch.Tensor, val_y: torch.Tensor,
                         frontend: Frontend, num_classes: int, dataset_hash: str, epochs: int = 30,
                         seed: int = 0) -> tuple[AudioCNN, dict]:
    """Train (or load from the cache) the classifier for this dataset; returns it and its report."""
    key = f"classifier-{frontend.key()}-{dataset_hash}-{num_classes}-{epochs}-{seed}"

    def fit():
        inverted = frontend.invert(frontend.features(train_waves))
        net = _train(AudioCNN(frontend, num_classes), torch.cat([train_waves, inverted]), torch.cat([train_y, train_y]),
                     epochs, seed)
        val_inverted = frontend.invert(frontend.features(val_waves))
        return net, {"val_accuracy": accuracy(net, val_waves, val_y),
                     "val_accuracy_griffin_lim": accuracy(net, val_inverted, val_y),
                     "train_accuracy": accuracy(net, train_waves, train_y), "epochs": epochs, "seed": seed,
                     "dataset_hash": dataset_hash, "features": FEATURES, "griffin_lim_augmented": True}

    return cached_weights("audio", key, AudioCNN(frontend, num_classes), fit)
