"""report.html previews for weather: maps of the truth and two ensemble members at the longest lead,
per variable, on one colour scale (north up, longitude left to right)."""

from __future__ import annotations

import numpy as np

from panflow import Preview, colormap, image_grid, png_bytes, upscale


def previews(result: dict, samples: dict[str, np.ndarray]) -> list[Preview]:
    """One PNG per channel: truth, member 1, member 2 side by side at the last lead."""
    if "model" not in samples or "truth" not in samples:
        return []
    model, truth = samples["model"], samples["truth"]             # [M, L, C, H, W], [L, C, H, W]
    names = result.get("channels") or [f"channel {j}" for j in range(truth.shape[1])]
    lead = truth.shape[0]
    hours = lead * float(result.get("step_hours", 1.0))
    lat = samples.get("lat")
    north_up = lat is None or len(lat) < 2 or lat[0] < lat[-1]   # rows ordered south to north: flip for display
    out = []
    for j, name in enumerate(names[: truth.shape[1]]):
        maps = [truth[-1, j]] + [model[m, -1, j] for m in range(model.shape[0])]
        lo, hi = float(np.nanmin(maps)), float(np.nanmax(maps))
        tiles = np.stack([colormap(m[::-1] if north_up else m, lo, hi) for m in maps])
        grid = image_grid(tiles, cols=len(tiles), pad=2)
        scale = max(1, min(6, 900 // grid.shape[1]))
        out.append(Preview(f"{name} at +{hours:g} h", "png", png_bytes(upscale(grid, scale)),
                           f"left: the simulator's truth; then {model.shape[0]} ensemble members from the same initial "
                           f"state; colour scale {lo:.4g} (dark blue) to {hi:.4g} (yellow)"))
    return out
