"""Metrics of Cα traces. Each takes lists of ``[L_i, 3]`` arrays in Å (padding already removed).

- bond validity: fraction of consecutive Cα–Cα distances within 3.8 ± 0.1 Å;
- clash rate: fraction of non-adjacent pairs (|i − j| ≥ 3) closer than 3.0 Å, and of structures with any;
- radius of gyration against length: the ratio Rg / (2.2 · N^0.38 Å) (empirical law for folded
  globular proteins, Skolnick et al. 1997 / Hong & Lei 2009) and the median ratio to the data's Rg at the same length;
- secondary structure: helix / strand / coil fractions of biotite's Cα-based P-SEA annotation
  (``biotite.structure.annotate_sse``);
- diversity / novelty: TM-scores from biotite (``superimpose_structural_homologs`` + ``tm_score``);
- ensembles: RMSF profile correlation and per-pair distance-distribution distance (W1, Å);
- motif: RMSD of the motif residues after optimal superposition (biotite ``superimpose``).
"""

from __future__ import annotations

import math

import numpy as np

BOND, BOND_TOL, CLASH = 3.8, 0.1, 3.0
TM_FALLBACKS = [0]  # pairs biotite could not align structurally (scored by residue index instead)


def traces(x, lengths) -> list[np.ndarray]:
    """``x [N, L, 3]`` (tensor or array) and per-sample lengths → list of ``[L_i, 3]`` float64 arrays."""
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    return [x[i, : int(n)] for i, n in enumerate(lengths)]


def bond_lengths(ca: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(ca, axis=0), axis=1)


def bond_validity(structs: list[np.ndarray]) -> float:
    d = np.concatenate([bond_lengths(c) for c in structs])
    return float(np.mean(np.abs(d - BOND) <= BOND_TOL))


def clash_rates(structs: list[np.ndarray]) -> dict[str, float]:
    pairs, clashes, any_clash = 0, 0, 0
    for c in structs:
        d = np.linalg.norm(c[:, None] - c[None], axis=-1)
        iu = np.triu_indices(len(c), k=3)
        close = int((d[iu] < CLASH).sum())
        pairs += len(iu[0])
        clashes += close
        any_clash += close > 0
    return {"clash_rate": clashes / max(pairs, 1), "clash_structures": any_clash / max(len(structs), 1)}


def radius_of_gyration(ca: np.ndarray) -> float:
    return float(np.sqrt(((ca - ca.mean(0)) ** 2).sum(1).mean()))


def rg_law(n: int) -> float:
    return 2.2 * n ** 0.38


def rg_metrics(structs: list[np.ndarray], reference: list[np.ndarray] | None = None) -> dict[str, float]:
    """Median Rg / law, and the median ratio to the reference's Rg at matched length (when given:
    the reference structures' Rg fitted as a power law a·N^b and evaluated at each length)."""
    rg = np.array([radius_of_gyration(c) for c in structs])
    n = np.array([len(c) for c in structs])
    out = {"rg_over_law": float(np.median(rg / np.array([rg_law(k) for k in n])))}
    if reference is not None:
        a, b = fit_rg_power_law(reference)
        out["rg_ratio_data"] = float(np.median(rg / (a * n ** b)))
    return out


def fit_rg_power_law(structs: list[np.ndarray]) -> tuple[float, float]:
    """Least squares of log Rg = log a + b log N; with one length only, b = 0.38 (the law's exponent)."""
    n = np.array([len(c) for c in structs], dtype=float)
    rg = np.array([radius_of_gyration(c) for c in structs])
    if np.ptp(np.log(n)) < 0.05:
        return float(np.exp(np.mean(np.log(rg) - 0.38 * np.log(n)))), 0.38
    b, loga = np.polyfit(np.log(n), np.log(rg), 1)
    return float(np.exp(loga)), float(b)


SSE_SKIPPED = [0]  # chains too wide to be a chain (or non-finite), called coil without P-SEA


def sse_fractions(structs: list[np.ndarray]) -> dict[str, float]:
    """Helix / strand / coil fractions over all residues (biotite P-SEA on Cα only).

    A "chain" wider than a fully extended one (1.5 × 3.8 Å per residue) or with non-finite
    coordinates — what a diverged model emits — has no secondary structure: it is called coil
    without P-SEA, whose cell list over its bounding box would need terabytes (counted in
    ``SSE_SKIPPED``)."""
    import biotite.structure as struc

    from .structure_io import ca_atoms

    counts = {"a": 0, "b": 0, "c": 0}
    total = 0
    for c in structs:
        c = np.asarray(c, dtype=np.float64)
        if not np.isfinite(c).all() or np.ptp(c, axis=0).max(initial=0.0) > 1.5 * BOND * len(c):
            SSE_SKIPPED[0] += 1
            counts["c"] += len(c)
            total += len(c)
            continue
        sse = struc.annotate_sse(ca_atoms(c))
        for k in counts:
            counts[k] += int((sse == k).sum())
        total += len(sse)
    return {"helix": counts["a"] / max(total, 1), "strand": counts["b"] / max(total, 1), "coil": counts["c"] / max(total, 1)}


def tm_pair(a: np.ndarray, b: np.ndarray) -> float:
    """TM-score of ``b`` against ``a`` (normalised by the shorter chain), biotite's TM-align-like search."""
    import biotite.structure as struc

    from .structure_io import ca_atoms

    fa, fb = ca_atoms(a), ca_atoms(b)
    try:
        fitted, _, fi, mi = struc.superimpose_structural_homologs(fa, fb, structural_alphabet="pb", max_iterations=20)
    except ValueError:  # biotite finds no anchor pair: score residue i against residue i instead
        TM_FALLBACKS[0] += 1
        k = min(len(a), len(b))
        fi = mi = np.arange(k)
        fitted, _ = struc.superimpose(fa[:k], fb[:k])
        return float(struc.tm_score(fa, fitted, fi, mi, reference_length=k))
    return float(struc.tm_score(fa, fitted, fi, mi, reference_length="shorter"))


def _pairs(n: int, max_pairs: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    allp = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if len(allp) <= max_pairs:
        return allp
    return [allp[k] for k in rng.choice(len(allp), max_pairs, replace=False)]


def diversity(structs: list[np.ndarray], max_pairs: int = 200, seed: int = 0) -> float:
    """Mean pairwise TM-score (lower = more diverse) over up to ``max_pairs`` random pairs."""
    rng = np.random.default_rng(seed)
    pairs = _pairs(len(structs), max_pairs, rng)
    return float(np.mean([tm_pair(structs[i], structs[j]) for i, j in pairs])) if pairs else float("nan")


def novelty(structs: list[np.ndarray], train: list[np.ndarray], max_train: int = 20, seed: int = 0) -> float:
    """Mean over samples of the max TM-score to (up to ``max_train`` random) training structures."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(train), min(max_train, len(train)), replace=False)
    return float(np.mean([max(tm_pair(train[k], s) for k in idx) for s in structs]))


def superimposed(structs: list[np.ndarray], reference: np.ndarray) -> np.ndarray:
    """``[N, L, 3]``: every structure optimally superimposed (Kabsch, biotite) on ``reference``."""
    import biotite.structure as struc

    from .structure_io import ca_atoms

    ref = ca_atoms(reference)
    return np.stack([struc.superimpose(ref, ca_atoms(s))[0].coord.astype(np.float64) for s in structs])


def rmsf(structs: list[np.ndarray], reference: np.ndarray | None = None) -> np.ndarray:
    """Per-residue RMSF ``[L]`` after superposition on ``reference`` (default: the first structure),
    iterated once onto the mean structure."""
    ref = structs[0] if reference is None else reference
    fit = superimposed(structs, ref)
    fit = superimposed(list(fit), fit.mean(0))
    return np.sqrt(((fit - fit.mean(0)) ** 2).sum(-1).mean(0))


def rmsf_correlation(structs: list[np.ndarray], reference_ensemble: list[np.ndarray]) -> float:
    a, b = rmsf(structs), rmsf(reference_ensemble)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pair_distance_w1(structs: list[np.ndarray], reference_ensemble: list[np.ndarray], min_sep: int = 2) -> float:
    """Mean over residue pairs (|i − j| ≥ min_sep) of the 1-D Wasserstein-1 distance (Å) between the
    two ensembles' distributions of that pair's distance (quantile form; unequal sizes allowed)."""
    def dists(ens):
        x = np.stack(ens)
        d = np.linalg.norm(x[:, :, None] - x[:, None], axis=-1)
        iu = np.triu_indices(x.shape[1], k=min_sep)
        return d[:, iu[0], iu[1]]

    a, b = dists(structs), dists(reference_ensemble)
    q = (np.arange(256) + 0.5) / 256
    return float(np.mean(np.abs(np.quantile(a, q, axis=0) - np.quantile(b, q, axis=0))))


def motif_rmsd(generated: np.ndarray, motif: np.ndarray) -> float:
    """RMSD (Å) of the generated motif residues to the given motif after optimal superposition."""
    import biotite.structure as struc

    from .structure_io import ca_atoms

    fitted, _ = struc.superimpose(ca_atoms(motif), ca_atoms(generated))
    return float(math.sqrt(((fitted.coord - motif) ** 2).sum(1).mean()))


LR_SEP, LR_CUTOFF = 12, 10.0  # long-range contact: |i − j| >= 12 residues, Cα–Cα < 10 Å


def long_range_contacts(structs: list[np.ndarray]) -> float:
    """Fraction of residue pairs ``|i − j| ≥ 12`` closer than 10 Å, pooled over chains: how much a
    chain folds back on itself (0 for a straight one; ~0.08 for the embedded 64-residue windows)."""
    hits = total = 0
    for ca in structs:
        i, j = np.triu_indices(len(ca), LR_SEP)
        hits += int((np.linalg.norm(ca[i] - ca[j], axis=-1) < LR_CUTOFF).sum())
        total += len(i)
    return hits / max(total, 1)


def geometry(structs: list[np.ndarray], reference: list[np.ndarray] | None = None) -> dict[str, float]:
    """Bond validity, clash rates, Rg (to the law and to the reference), long-range contacts and SSE fractions."""
    return {"bond_valid": bond_validity(structs), **clash_rates(structs), **rg_metrics(structs, reference),
            "lr_contacts": long_range_contacts(structs), **sse_fractions(structs)}
