"""Closed-loop metrics: Wilson intervals, mode balance, jerk at chunk boundaries."""

from __future__ import annotations

import math

import numpy as np

from .env import DT


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95 % Wilson score interval of a binomial proportion (Wilson 1927)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def second_differences(actions: np.ndarray) -> np.ndarray:
    """``|a[t+1] − 2 a[t] + a[t−1]| / DT²`` for ``actions [T, d]`` (velocity commands): ``[T−2]``.

    With actions as velocities this is the magnitude of the jerk of the path (third derivative of
    position), indexed by its centre step ``t = 1 .. T−2``.
    """
    if len(actions) < 3:
        return np.zeros(0)
    return np.linalg.norm(actions[2:] - 2 * actions[1:-1] + actions[:-2], axis=1) / DT ** 2


def boundary_jerk(actions: np.ndarray, active: np.ndarray, boundaries: list[int]) -> tuple[list[float], list[float]]:
    """Jerk at re-planning boundaries and elsewhere, for one episode.

    ``actions [T, d]`` executed, ``active [T]`` whether the episode was running, ``boundaries`` the
    steps where a new chunk's first action was executed. The jerk centred on ``b − 1`` and ``b``
    straddles the switch; every other centre (within a chunk) is "inside".
    """
    steps = int(active.sum())
    j = second_differences(actions[:steps])
    at = {c for b in boundaries for c in (b - 1, b) if 1 <= c <= steps - 2}
    on = [float(j[c - 1]) for c in sorted(at)]
    off = [float(j[c - 1]) for c in range(1, steps - 1) if c not in at]
    return on, off


def mode_balance(side: np.ndarray) -> dict[str, float]:
    """Fractions of episodes passing left (+1), right (−1) or never passing the obstacle (0)."""
    n = max(1, len(side))
    left, right = float((side == 1).sum()) / n, float((side == -1).sum()) / n
    passed = left + right
    return {"left": left, "right": right, "left_of_passed": left / passed if passed else float("nan")}
