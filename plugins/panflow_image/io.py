"""Writing images: one PNG per sample and a grid (``[N, C, H, W]`` in [0, 1])."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from panflow import Samples


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` float in [0, 1] → ``[H, W]`` or ``[H, W, C]`` uint8."""
    a = (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def grid(x: torch.Tensor, nrow: int | None = None, pad: int = 1) -> torch.Tensor:
    """Tile ``[N, C, H, W]`` into one ``[C, rows·(H+pad)+pad, cols·(W+pad)+pad]`` image."""
    n, c, h, w = x.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i in range(n):
        r, k = divmod(i, cols)
        out[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = x[i]
    return out


def write_png(samples: Samples, out_dir: str | Path, meta: dict | None = None, scale: int = 4) -> list[Path]:
    """``sample_00000[_label].png`` for each image and ``grid.png`` (upscaled ×``scale`` for viewing)."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(len(samples)):
        label = "" if samples.y is None else f"_class{int(samples.y[i])}"
        p = out / f"sample_{i:05d}{label}.png"
        Image.fromarray(to_uint8(samples.x[i])).save(p)
        files.append(p)
    g = Image.fromarray(to_uint8(grid(samples.x[:256])))
    g = g.resize((g.width * scale, g.height * scale), Image.NEAREST)
    g.save(out / "grid.png")
    files.append(out / "grid.png")
    return files
