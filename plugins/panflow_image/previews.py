"""report.html previews for images: a grid of generated digits per backbone beside held-out ones,
one column per class (the same labels in every grid)."""

from __future__ import annotations

import numpy as np

from panflow import Preview, image_grid, png_bytes, upscale

PER_CLASS = 4


def class_grid(x: np.ndarray, labels: np.ndarray, per_class: int = PER_CLASS) -> np.ndarray:
    """``[N, C, H, W]`` images in [0, 1] → a grid array with one column per class, ``per_class`` rows."""
    classes = sorted(set(labels.tolist()))
    pick = [np.flatnonzero(labels == c)[:per_class] for c in classes]
    rows = max((len(p) for p in pick), default=0)
    h, w = x.shape[2:]
    tiles = np.ones((rows, len(classes), h, w, 3))
    for j, idx in enumerate(pick):
        for i, k in enumerate(idx):
            img = np.moveaxis(x[k], 0, -1)
            tiles[i, j] = np.repeat(img, 3, -1) if img.shape[-1] == 1 else img[..., :3]
    return image_grid(tiles.reshape(-1, h, w, 3), cols=len(classes))


def previews(result: dict, samples: dict[str, np.ndarray]) -> list[Preview]:
    """One PNG grid per source (held-out, then each backbone's model row) saved by the benchmark."""
    out = []
    sources = ["real"] + sorted(k.split(".")[0] for k in samples if k.endswith(".model") and k != "real.model")
    for src in sources:
        if f"{src}.model" not in samples:
            continue
        x, y = samples[f"{src}.model"], samples[f"{src}.labels"]
        grid = class_grid(x, y)
        scale = max(2, 480 // grid.shape[1])  # about 480 px wide
        setup = next((r.get("setup", {}) for r in result.get("rows", []) if r.get("role") == f"model · {src}"), {})
        what = ("held-out digits" if src == "real" else
                f"{src} samples ({setup.get('solver', '?')}, NFE {setup.get('nfe', '?')}, guidance {setup.get('guidance', '?')})")
        out.append(Preview(f"{src}: one column per class", "png", png_bytes(upscale(grid, scale)), what))
    return out
