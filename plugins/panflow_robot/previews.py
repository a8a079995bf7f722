"""report.html previews for robot: closed-loop trajectories of the flow policy and the MSE baseline
around the obstacle to the goal (the same seeded starts for both)."""

from __future__ import annotations

import numpy as np

from panflow import Preview, polylines_svg

from .env import GOAL, GOAL_RADIUS, OBSTACLE, OBSTACLE_RADIUS


def _circle(centre: np.ndarray, r: float) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, 49)
    return centre + r * np.stack([np.cos(a), np.sin(a)], 1)


def previews(result: dict, samples: dict[str, np.ndarray]) -> list[Preview]:
    """One SVG per policy: its episodes' paths, the obstacle disc and the goal region."""
    out = []
    scene = {"obstacle": [_circle(OBSTACLE, OBSTACLE_RADIUS)], "goal": [_circle(GOAL, GOAL_RADIUS)]}
    frame = [p for k in ("model", "baseline") if k in samples for p in samples[k]] + [c for cs in scene.values() for c in cs]
    for key, what in [("model", "flow policy"), ("baseline", "MSE-regression baseline")]:
        if key in samples:
            paths = [p[np.isfinite(p).all(1)] for p in samples[key]]
            svg = polylines_svg({f"{what} ({len(paths)} episodes)": paths, **scene}, size=320,
                                markers={"start": np.stack([p[0] for p in paths])}, frame=frame)
            out.append(Preview(f"{what}: closed-loop trajectories", "svg", svg,
                               "positions from the seeded evaluation starts until success, collision or the step limit"))
    return out
