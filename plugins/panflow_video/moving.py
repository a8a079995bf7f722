"""Moving digits: real scikit-learn digits bouncing in a small frame, with exact recorded trajectories.

Recipe (fixed seed): each clip places ``digits`` (1 or 2) real 8×8 digits (upscaled once to
``digit_size``, bilinear and antialiased, when it is not 8), at a uniform start inside the frame with a speed uniform in
``[speed_min, speed_max]`` pixels per frame and a uniform direction. Each frame the position moves by
the velocity; a digit that would leave the frame is reflected at the wall (elastic bounce: the
overshoot is folded back and that velocity component flips). Rendering places a digit at a real-valued
position by bilinear interpolation, which moves its intensity centroid by exactly the position step, so
the centroid tracks of the clips equal the recorded trajectories. Two digits are combined by a
pixelwise maximum. Raw clips are float32 ``[N, T, 1, H, W]`` in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Recipe:
    frames: int = 8
    size: int = 16
    digit_size: int = 8
    digits: int = 1
    clips: int = 4000
    speed_min: float = 1.0
    speed_max: float = 2.0
    seed: int = 0

    def to_json(self) -> dict:
        return asdict(self)


RECIPES = {"smoke": Recipe(frames=6, clips=96), "quick": Recipe(clips=2000), "small": Recipe(clips=4000),
           "full": Recipe(frames=16, size=32, digit_size=16, clips=20000, speed_max=3.0)}


def upscale(digits: np.ndarray, size: int) -> torch.Tensor:
    """``[K, 8, 8]`` values 0..16 → ``[K, size, size]`` float in [0, 1] (bilinear, antialiased)."""
    x = torch.tensor(digits, dtype=torch.float32)[:, None] / 16.0
    if size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x[:, 0].clamp(0, 1)


def trajectories(n: int, k: int, r: Recipe, g: np.random.Generator) -> np.ndarray:
    """Top-left positions ``[n, k, T, 2]`` (row, col) of ``k`` digits per clip, with reflections."""
    room = r.size - r.digit_size
    pos = np.zeros((n, k, r.frames, 2))
    p = g.uniform(0, room, (n, k, 2))
    speed = g.uniform(r.speed_min, r.speed_max, (n, k))
    ang = g.uniform(0, 2 * np.pi, (n, k))
    v = np.stack([speed * np.sin(ang), speed * np.cos(ang)], -1)
    for t in range(r.frames):
        pos[:, :, t] = p
        p = p + v
        low, high = p < 0, p > room
        p = np.where(low, -p, np.where(high, 2 * room - p, p))
        v = np.where(low | high, -v, v)
    return pos


def render(digit: torch.Tensor, pos: np.ndarray, size: int) -> torch.Tensor:
    """One digit ``[s, s]`` at real positions ``pos [T, 2]`` in a ``size × size`` frame: ``[T, size, size]``."""
    s = digit.shape[0]
    pad = torch.nn.functional.pad(digit, (1, 1, 1, 1))  # [s+2, s+2] so the fractional shift stays inside
    out = torch.zeros(len(pos), size, size)
    for t, (py, px) in enumerate(pos):
        iy, ix = int(np.floor(py)), int(np.floor(px))
        fy, fx = float(py - iy), float(px - ix)
        # value at frame pixel (iy + a, ix + b) for a, b in 0..s: bilinear mix of the four neighbours
        blk = ((1 - fy) * (1 - fx) * pad[1:, 1:] + (1 - fy) * fx * pad[1:, :-1]
               + fy * (1 - fx) * pad[:-1, 1:] + fy * fx * pad[:-1, :-1])  # [s+1, s+1]
        h, w = min(s + 1, size - iy), min(s + 1, size - ix)
        out[t, iy:iy + h, ix:ix + w] = blk[:h, :w]
    return out


def moving_digits(images: np.ndarray, labels: np.ndarray, r: Recipe, seed_offset: int = 0) -> dict:
    """Clips from the 8×8 ``images [K, 8, 8]`` (0..16) with ``labels [K]``.

    Returns ``x [N, T, 1, H, W]``, ``labels [N, digits]``, ``source [N, digits]`` (indices into
    ``images``), ``positions [N, digits, T, 2]`` (top-left, rows/cols) and ``centroids`` of the
    digits' intensity ``[N, digits, T, 2]`` (the exact physics the metrics compare against).
    """
    g = np.random.default_rng(r.seed + seed_offset)
    big = upscale(images, r.digit_size)
    src = g.integers(0, len(images), (r.clips, r.digits))
    pos = trajectories(r.clips, r.digits, r, g)
    x = torch.zeros(r.clips, r.frames, 1, r.size, r.size)
    for i in range(r.clips):
        for j in range(r.digits):
            x[i, :, 0] = torch.maximum(x[i, :, 0], render(big[src[i, j]], pos[i, j], r.size))
    offs = np.stack([_centroid(big[k]) for k in range(len(images))])  # [K, 2]: centroid within the digit
    cen = pos + offs[src][:, :, None, :] + 0.5  # +0.5: pixel centres; render shifts by one pixel of padding
    return {"x": x, "labels": torch.tensor(labels[src], dtype=torch.long), "source": torch.tensor(src),
            "positions": torch.tensor(pos, dtype=torch.float32), "centroids": torch.tensor(cen, dtype=torch.float32)}


def _centroid(img: torch.Tensor) -> np.ndarray:
    m = img.double()
    ys, xs = torch.arange(m.shape[0], dtype=torch.float64), torch.arange(m.shape[1], dtype=torch.float64)
    tot = m.sum().clamp_min(1e-12)
    return np.array([float((m.sum(1) * ys).sum() / tot), float((m.sum(0) * xs).sum() / tot)])


def centroids(x: torch.Tensor) -> torch.Tensor:
    """Intensity centroids ``[N, T, 2]`` (row, col; pixel-centre units + 0.5) of clips ``[N, T, C, H, W]``."""
    m = x.double().clamp_min(0).mean(2)  # [N, T, H, W]
    h, w = m.shape[-2:]
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    tot = m.sum((-1, -2)).clamp_min(1e-12)
    return torch.stack([(m.sum(-1) * ys).sum(-1) / tot, (m.sum(-2) * xs).sum(-1) / tot], -1).float()
