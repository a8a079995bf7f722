"""report.html previews for video: one film strip per source (held-out clips, the (2+1)-D model's
clips — for the held-out clips' digits at the run's guidance, and without a label — and the
per-frame baseline's), one row per clip and one column per frame."""

from __future__ import annotations

import numpy as np

from panflow import Preview, image_grid, png_bytes, upscale

SOURCES = (("real", "held-out clips"), ("model", "(2+1)-D model, for the held-out clips' digits (guided)"),
           ("null_label", "(2+1)-D model without a label (unconditional)"),
           ("per_frame", "per-frame image model (no temporal layers), same labels and guidance"))


def film_strip(clips: np.ndarray) -> np.ndarray:
    """``[N, T, C, H, W]`` clips in [0, 1] → a grid array, one row per clip, frames left to right."""
    x = np.asarray(clips, dtype=np.float64)
    n, t, c = x.shape[:3]
    frames = np.moveaxis(x.reshape(n * t, c, *x.shape[3:]), 1, -1)
    frames = np.repeat(frames, 3, -1) if c == 1 else frames[..., :3]
    return image_grid(frames, cols=t)


def previews(result: dict, samples: dict[str, np.ndarray]) -> list[Preview]:
    out = []
    for key, what in SOURCES:
        clips = samples.get(f"{key}.clips")
        if clips is None or len(clips) == 0:
            continue
        grid = film_strip(clips)
        scale = max(2, 480 // grid.shape[1])
        out.append(Preview(f"{key}: one clip per row", "png", png_bytes(upscale(grid, scale)),
                           f"{what}; {clips.shape[1]} frames of {clips.shape[-2]}×{clips.shape[-1]}"))
    return out
