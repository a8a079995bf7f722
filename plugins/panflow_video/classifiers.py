"""The in-project feature networks the video metrics stand on (nothing is downloaded).

- :class:`FrameCNN`: a 2-D CNN trained to name the digit in a single frame (labels of the training
  clips); its 64-d penultimate features, z-scored with the training frames' statistics, serve the
  per-frame Fréchet distance, and its predictions the identity consistency.
- :class:`ClipCNN`: a small 3-D CNN trained to tell real clips (class 0) from the same clips with
  their frames shuffled (1) or frozen on one frame (2). Its 64-d penultimate features give the
  "clip FD (in-project 3-D features)": a Fréchet distance over whole clips that sees temporal order
  and motion. It is not FVD (no I3D network, no Kinetics training); numbers are comparable only
  within this project.

Both are trained once per dataset hash and cached (:func:`panflow.cached_weights`); their held-out
accuracy is reported beside every number they produce.
"""

from __future__ import annotations

import torch
from torch import nn

from panflow import cached_weights

FEATURES = 64
VERSION = 1


def _z(net: nn.Module, f: torch.Tensor) -> torch.Tensor:
    return (f - net.feat_mean) / net.feat_std


class FrameCNN(nn.Module):
    """``[N, C, H, W]`` in [0, 1] → logits ``[N, 10]``; ``features`` → ``[N, 64]`` (z-scored)."""

    def __init__(self, channels: int = 1, classes: int = 10, width: int = 32):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.SiLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.SiLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.SiLU(), nn.AdaptiveMaxPool2d(2),
            nn.Flatten(), nn.Linear(8 * w, FEATURES), nn.SiLU())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURES, classes))
        self.register_buffer("feat_mean", torch.zeros(FEATURES))
        self.register_buffer("feat_std", torch.ones(FEATURES))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class ClipCNN(nn.Module):
    """``[N, T, C, H, W]`` in [0, 1] → logits ``[N, 3]`` (real / shuffled / frozen); features ``[N, 64]``."""

    def __init__(self, channels: int = 1, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv3d(channels, w, 3, padding=1), nn.BatchNorm3d(w), nn.SiLU(), nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(w, 2 * w, 3, padding=1), nn.BatchNorm3d(2 * w), nn.SiLU(), nn.MaxPool3d(2),
            nn.Conv3d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm3d(4 * w), nn.SiLU(), nn.AdaptiveAvgPool3d((2, 2, 2)),
            nn.Flatten(), nn.Linear(32 * w, FEATURES), nn.SiLU())
        self.head = nn.Linear(FEATURES, 3)
        self.register_buffer("feat_mean", torch.zeros(FEATURES))
        self.register_buffer("feat_std", torch.ones(FEATURES))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.transpose(1, 2) * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def corrupt(x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Real clips ``[N, T, ...]`` → a batch of equal thirds real / frame-shuffled / frozen, with labels."""
    n, t = x.shape[:2]
    kind = torch.arange(n) % 3
    out = x.clone()
    for i in torch.nonzero(kind == 1).flatten().tolist():
        perm = torch.randperm(t, generator=g)
        while torch.equal(perm, torch.arange(t)):
            perm = torch.randperm(t, generator=g)
        out[i] = x[i, perm]
    for i in torch.nonzero(kind == 2).flatten().tolist():
        k = int(torch.randint(0, t, (1,), generator=g))
        out[i] = x[i, k:k + 1].expand_as(x[i])
    return out, kind


def _fit(net: nn.Module, draw, steps: int, lr: float, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        xb, yb = draw(g)
        loss = nn.functional.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def _set_stats(net: nn.Module, x: torch.Tensor) -> None:
    f = torch.cat([net.embed(x[i:i + 256]) for i in range(0, len(x), 256)])
    net.feat_mean.copy_(f.mean(0))
    net.feat_std.copy_(f.std(0).clamp_min(1e-6))


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)])


@torch.no_grad()
def features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([_z(net, net.embed(x[i:i + 256])) for i in range(0, len(x), 256)])


def frame_classifier(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                     key: str, steps: int = 800, seed: int = 0) -> tuple[FrameCNN, dict]:
    """Fit (or load) the digit classifier on the frames of clips ``[N, T, C, H, W]`` labelled ``[N]``."""
    c, t = train_x.shape[2], train_x.shape[1]
    frames, labels = train_x.flatten(0, 1), train_y.repeat_interleave(t)

    def draw(g):
        i = torch.randint(0, len(frames), (128,), generator=g)
        return frames[i], labels[i]

    def fit():
        net = _fit(FrameCNN(c), draw, steps, 3e-3, seed)
        _set_stats(net, frames[torch.randperm(len(frames), generator=torch.Generator().manual_seed(seed))[:4096]])
        acc = float((predict(net, val_x.flatten(0, 1)) == val_y.repeat_interleave(t)).double().mean())
        return net, {"val_frame_accuracy": acc, "steps": steps, "seed": seed, "n_train_frames": len(frames)}

    return cached_weights("video", f"frame-cnn-v{VERSION}-{key}-{steps}-{seed}", FrameCNN(c), fit)


def clip_classifier(train_x: torch.Tensor, val_x: torch.Tensor, key: str, steps: int = 400,
                    seed: int = 0) -> tuple[ClipCNN, dict]:
    """Fit (or load) the real / shuffled / frozen clip classifier on real clips ``[N, T, C, H, W]``."""
    c = train_x.shape[2]

    def draw(g):
        return corrupt(train_x[torch.randint(0, len(train_x), (48,), generator=g)], g)

    def fit():
        net = _fit(ClipCNN(c), draw, steps, 3e-3, seed)
        _set_stats(net, train_x[:2048])
        xv, yv = corrupt(val_x, torch.Generator().manual_seed(seed + 1))
        acc = float((predict(net, xv) == yv).double().mean())
        return net, {"val_accuracy_real_shuffled_frozen": acc, "steps": steps, "seed": seed, "n_train": len(train_x)}

    return cached_weights("video", f"clip-cnn-v{VERSION}-{key}-{steps}-{seed}", ClipCNN(c), fit)
