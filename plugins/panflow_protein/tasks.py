"""The three tasks on a trained run: backbones of given lengths, ensembles, motif scaffolds.

All return Cα traces in Å (lists of ``[L_i, 3]`` arrays, padding removed).
"""

from __future__ import annotations

import numpy as np
import torch

from panflow import ConfigError, DataError, Run, SampleOptions

from .data import one_hot


def length_masks(lengths, max_len: int) -> torch.Tensor:
    if max(lengths) > max_len or min(lengths) < 2:
        raise DataError(f"requested lengths must be in 2..{max_len} (the model's max_len), got {min(lengths)}..{max(lengths)}")
    pos = torch.arange(max_len)
    return (pos[None] < torch.tensor(lengths)[:, None]).float()


def _cond(run: Run, lengths, seqs=None) -> dict:
    max_len = run.spec.shape[0]
    cond = {"residues": length_masks(lengths, max_len)}
    if seqs is not None:
        if not any(c.name == "seq" for c in run.spec.conditions):
            raise DataError("this model was trained without sequence conditioning (data.options.sequence=false)")
        cond["seq"] = torch.stack([one_hot(s, max_len) for s in seqs])
    return cond


def backbones(run: Run, lengths, opts: SampleOptions | None = None, seed: int = 0, seqs=None,
              batch_size: int = 64) -> tuple[list[np.ndarray], dict]:
    """One backbone per requested length (and optional one-letter sequence)."""
    lengths = [int(n) for n in lengths]
    gen, setup = run.generate(len(lengths), opts, seed=seed, cond=_cond(run, lengths, seqs), batch_size=batch_size)
    x = gen.x.double().numpy()
    return [x[i, :n] for i, n in enumerate(lengths)], setup


def holds_positions(run: Run) -> bool:
    """Whether the run's model sees coordinates (Cartesian), so given residues keep their positions.
    An internal-coordinate run would hold angles, which place a motif only up to the chain before it."""
    return run.contract.get("encoder", {}).get("type", "angstrom_to_nm") == "angstrom_to_nm"


def scaffold(run: Run, motif: np.ndarray, positions, length: int, n: int, opts: SampleOptions | None = None,
             seed: int = 0) -> tuple[list[np.ndarray], dict]:
    """``n`` chains of ``length`` residues holding ``motif [K, 3]`` (Å) at residue indices ``positions``.

    The motif is moved to its centroid first (the model was trained on centred chains; a rigid motion
    of the motif does not change the task); the returned chains are in that frame.
    """
    if not holds_positions(run):
        raise ConfigError("motif scaffolding needs a Cartesian run (encoder.options.coords = 'cartesian'): "
                          "an internal-coordinate model cannot hold residues at given positions")
    positions = np.asarray(positions, dtype=int)
    motif = np.asarray(motif, dtype=np.float64)
    if len(positions) != len(motif) or positions.min() < 0 or positions.max() >= length:
        raise DataError(f"motif positions must be {len(motif)} indices in 0..{length - 1}")
    max_len = run.spec.shape[0]
    known = torch.zeros(n, max_len, dtype=torch.bool)
    known[:, positions] = True
    xk = torch.zeros(n, max_len, 3)
    xk[:, positions] = torch.as_tensor(motif - motif.mean(0), dtype=torch.float32)
    cond = _cond(run, [length] * n)
    gen, setup = run.generate(n, opts, seed=seed, cond=cond, known=known, x_known=xk)
    return [gen.x[i, :length].double().numpy() for i in range(n)], setup
