"""Writing generated clips: one MP4 (or GIF) per sample through PyAV and a frame-grid PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from panflow import Samples

from .video_io import write_video


def to_uint8(clip: torch.Tensor) -> np.ndarray:
    """``[T, C, H, W]`` float in [0, 1] → ``uint8 [T, H, W, C]``."""
    return (clip.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def frame_grid(x: torch.Tensor, pad: int = 1) -> np.ndarray:
    """Clips ``[N, T, C, H, W]`` → ``uint8 [N·(H+pad)+pad, T·(W+pad)+pad, C]``: one row per clip, frames left to right."""
    n, t, c, h, w = x.shape
    out = np.full((n * (h + pad) + pad, t * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        a = to_uint8(x[i])
        for j in range(t):
            r, k = pad + i * (h + pad), pad + j * (w + pad)
            out[r:r + h, k:k + w] = a[j]
    return out


def write_clips(samples: Samples, out_dir: str | Path, meta: dict | None = None, fmt: str = "mp4",
                scale: int = 4, max_grid: int = 32) -> list[Path]:
    """``sample_00000.mp4`` (or ``.gif``) per clip, upscaled ×``scale`` for viewing, and ``grid.png``."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fps = float((meta or {}).get("fps", 8.0))
    files = []
    for i in range(len(samples)):
        a = to_uint8(samples.x[i]).repeat(scale, 1).repeat(scale, 2)
        files.append(write_video(out / f"sample_{i:05d}.{fmt}", a, fps))
    g = frame_grid(samples.x[:max_grid])
    img = Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(out / "grid.png")
    files.append(out / "grid.png")
    return files
