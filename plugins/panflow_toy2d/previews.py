"""report.html previews for toy2d: held-out, baseline and model points, one panel each, per density."""

from __future__ import annotations

import numpy as np

from panflow import Preview, scatter_svg

ROLES = {"real": "held-out data", "baseline": "fitted-Gaussian baseline", "model": "model (rk4 at the score card's NFE)"}


def previews(result: dict, samples: dict[str, np.ndarray]) -> list[Preview]:
    """Three SVG scatters (real, baseline, model) in one frame for each density the benchmark saved."""
    out = []
    for ds in sorted({k.split(".")[0] for k in samples}):
        have = {role: samples[f"{ds}.{role}"] for role in ROLES if f"{ds}.{role}" in samples}
        frame = [have["real"]] if "real" in have else list(have.values())
        for role, pts in have.items():
            out.append(Preview(f"{ds}: {role}", "svg", scatter_svg({f"{role} ({len(pts)} points)": pts}, size=260,
                                                                  frame=frame), ROLES[role]))
    return out
