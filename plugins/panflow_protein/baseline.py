"""The naive baseline: an ideal random-walk (freely jointed) chain with the correct 3.8 Å bond."""

from __future__ import annotations

import numpy as np

from .metrics import BOND


def random_walk(length: int, rng: np.random.Generator, bond: float = BOND) -> np.ndarray:
    """``[length, 3]`` Å: steps of exactly ``bond`` in uniformly random directions, centred.

    Its Rg grows as ``bond · sqrt(N / 6)`` (an ideal chain), against ``~N^0.38`` for folded proteins.
    """
    steps = rng.normal(size=(length - 1, 3))
    steps *= bond / np.linalg.norm(steps, axis=1, keepdims=True)
    ca = np.concatenate([np.zeros((1, 3)), np.cumsum(steps, axis=0)])
    return ca - ca.mean(0)


def random_walks(lengths, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [random_walk(int(n), rng) for n in lengths]
