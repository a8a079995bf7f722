"""report.html previews for proteins: Cα traces projected onto each chain's two principal axes,
generated chains beside held-out chains of the same lengths."""

from __future__ import annotations

import numpy as np

from panflow import Preview, polylines_svg


def projection(chain: np.ndarray) -> np.ndarray:
    """``[L, 3]`` Cα coordinates (Å) → ``[L, 2]``: centred, onto the two largest principal axes."""
    c = chain[np.isfinite(chain).all(1)]
    c = c - c.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    return c @ vt[:2].T


def previews(result: dict, samples: dict[str, np.ndarray]) -> list[Preview]:
    """One SVG per chain pair: the held-out chain and a generated chain of the same length."""
    if "model" not in samples:
        return []
    out = []
    for i, n in enumerate(samples["lengths"].tolist()):
        groups = {f"held-out ({n} residues)": [projection(samples["real"][i])],
                  f"generated ({n} residues)": [projection(samples["model"][i])]}
        out.append(Preview(f"chain {i + 1}: Cα trace", "svg", polylines_svg(groups, size=260),
                           "each chain projected on its own two principal axes (Å); bonds drawn between consecutive Cα"))
    return out
