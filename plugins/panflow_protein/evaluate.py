"""Protein score cards: floor (held-out real structures), baseline (ideal random walk), model.

``pdb`` runs (backbones): geometry, Rg, SSE, diversity, novelty at the held-out chains' lengths,
plus a motif-scaffolding row (contiguous motifs cut from held-out chains). ``ensemble`` runs:
RMSF correlation and pair-distance W1 against the held-out models. All rows use the same N and seed.
"""

from __future__ import annotations

import time

import numpy as np

from panflow import Row, Run, ScoreCard

from . import metrics as M
from .baseline import random_walks
from .io import sample_lengths
from .potentials import size_law
from .tasks import backbones, holds_positions, scaffold


def _structs(samples) -> list[np.ndarray]:
    return M.traces(samples.x, sample_lengths(samples))


def structure_row(structs, train, data_sse: dict, seed: int, tm: bool = True) -> dict:
    m = M.geometry(structs, train)
    m["sse_max_abs_err"] = max(abs(m[k] - data_sse[k]) for k in ("helix", "strand", "coil"))
    if tm:
        m["diversity_tm"] = M.diversity(structs, max_pairs=60, seed=seed)
        m["novelty_tm"] = M.novelty(structs, train, max_train=10, seed=seed)
    return m


def motif_tasks(val_structs, n_tasks: int, seg: int, seed: int):
    """``(motif, positions, length)``: two contiguous segments of ``seg`` residues per held-out chain."""
    rng = np.random.default_rng(seed)
    tasks = []
    for s in val_structs[:n_tasks]:
        n = len(s)
        a = int(rng.integers(0, n // 2 - seg))
        b = int(rng.integers(n // 2, n - seg))
        pos = np.r_[a:a + seg, b:b + seg]
        tasks.append((s[pos], pos, n))
    return tasks


def motif_row(run: Run, val: list[np.ndarray], motifs: int, motif_seg: int, seed: int,
              potentials: dict | None = None, role: str = "model · motif") -> Row:
    """``model · motif``: scaffolds around two held-out segments of ``motif_seg`` residues (Cartesian
    runs only: the given residues are held at their positions); ``potentials`` replace the run's."""
    rmsd, valid, junction, clash = [], [], [], []
    t0 = time.perf_counter()
    for k, (motif, pos, length) in enumerate(motif_tasks(val, motifs, motif_seg, seed)):
        out, setup_m = scaffold(run, motif, pos, length, 4, run.options(potentials=potentials), seed=seed + k)
        for s in out:
            rmsd.append(M.motif_rmsd(s[pos], motif))
            d = M.bond_lengths(s)
            ok = np.abs(d - M.BOND) <= M.BOND_TOL
            valid.append(ok.mean())
            edges = [p for p in (pos[0] - 1, pos[motif_seg - 1], pos[motif_seg] - 1, pos[-1]) if 0 <= p < len(d)]
            junction.append(ok[edges].mean())
            clash.append(M.clash_rates([s])["clash_rate"])
    return Row(role, {"motif_rmsd": float(np.max(rmsd)), "bond_valid": float(np.mean(valid)),
                                 "junction_bond_valid": float(np.mean(junction)), "clash_rate": float(np.mean(clash))},
               {**setup_m, "n": len(rmsd), "tasks": motifs, "motif": f"2 x {motif_seg} residues",
                "wall_s": time.perf_counter() - t0})


def size_potentials(train: list[np.ndarray], options: dict | None) -> dict:
    """``SampleOptions.potentials`` for the ``rg`` potential with its target law fitted to ``train``
    (``options``: weight, t_max); ``{}`` when ``options`` is None."""
    return {} if options is None else {"rg": {**options, **size_law(train)}}


def evaluate_backbones(run: Run, n: int | None = None, seed: int = 0, bundle=None, motifs: int = 4,
                       motif_seg: int = 8, tm: bool = True, motif_run: Run | None = None,
                       size_potential: dict | None = None, motif_potentials: dict | None = None) -> ScoreCard:
    """Backbone rows from ``run``; the motif row from ``motif_run`` (default ``run``; it must be a
    Cartesian run), or none when ``motifs`` is 0 or ``run`` is internal-coordinate and no
    ``motif_run`` is given. With ``size_potential`` (``{"weight", "t_max"}``) the model samples under
    the ``rg`` potential, its target fitted to the training chains, and a ``model · no size
    potential`` row shows the same model without it; ``motif_potentials`` add a motif row sampled
    under them (e.g. ``{"bond": {...}}``)."""
    if motif_run is None and not holds_positions(run):
        motifs = 0
    bundle = bundle or run.load_data()
    val = _structs(bundle.val)
    train = _structs(bundle.train)
    n = min(n or len(val), len(val))
    val = val[:n]
    lengths = [len(s) for s in val]
    data_sse = M.sse_fractions(train)
    card = ScoreCard("protein")
    t0 = time.perf_counter()
    card.rows.append(Row("floor", structure_row(val, train, data_sse, seed, tm),
                         {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                          "what": "held-out real chains (other proteins) against the training chains"}))
    t0 = time.perf_counter()
    card.rows.append(Row("baseline", structure_row(random_walks(lengths, seed), train, data_sse, seed, tm),
                         {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                          "what": "ideal random walk, 3.8 Å bonds, held-out lengths"}))
    pots = size_potentials(train, size_potential)
    gen, setup = backbones(run, lengths, run.options(potentials=pots or None), seed=seed)
    card.rows.append(Row("model", structure_row(gen, train, data_sse, seed, tm), setup))
    if pots:
        gen, setup = backbones(run, lengths, run.options(potentials={}), seed=seed)
        card.rows.append(Row("model · no size potential", structure_row(gen, train, data_sse, seed, tm), setup))
    if motifs:
        card.rows.append(motif_row(motif_run or run, val, motifs, motif_seg, seed))
        if motif_potentials:
            card.rows.append(motif_row(motif_run or run, val, motifs, motif_seg, seed, motif_potentials,
                                       f"model · motif + {' + '.join(motif_potentials)} potential"))
    card.extra["data_sse"] = data_sse
    card.extra["tm_index_fallbacks"] = M.TM_FALLBACKS[0]  # pairs scored residue-by-index (no structural anchor)
    card.extra["sse_skipped_chains"] = M.SSE_SKIPPED[0]  # wider than an extended chain: coil without P-SEA
    card.notes.append("Floor = held-out real chains of other proteins; baseline = ideal random walk at the same "
                      "lengths; the model samples at the held-out lengths. SSE: biotite P-SEA on Cα; TM-scores: "
                      "biotite superimpose_structural_homologs (protein blocks) + tm_score, normalised by the shorter chain.")
    return card


def evaluate_ensemble(run: Run, n: int | None = None, seed: int = 0, bundle=None) -> ScoreCard:
    bundle = bundle or run.load_data()
    held = _structs(bundle.val)
    train = _structs(bundle.train)
    length = len(held[0])
    n = n or 2 * len(held)
    card = ScoreCard("protein-ensemble")

    def row(structs):
        return {"rmsf_corr": M.rmsf_correlation(structs, held), "pair_w1": M.pair_distance_w1(structs, held),
                "bond_valid": M.bond_validity(structs), **M.clash_rates(structs),
                "rmsf_mean": float(M.rmsf(structs).mean())}

    card.rows.append(Row("floor", row(train), {"n": len(train), "seed": seed,
                                               "what": "training models (odd) against held-out models (even)"}))
    card.rows.append(Row("baseline", row(random_walks([length] * n, seed)), {"n": n, "seed": seed,
                                                                            "what": "ideal random walks"}))
    gen, setup = backbones(run, [length] * n, run.options(), seed=seed)
    card.rows.append(Row("model", row(gen), setup))
    card.extra["held_out_rmsf"] = M.rmsf(held).round(3).tolist()
    card.extra["model_rmsf"] = M.rmsf(gen).round(3).tolist()
    card.notes.append(f"Ensemble: {bundle.meta.get('source')}; {len(train)} training models, {len(held)} held-out "
                      "models of the same protein; RMSF after iterative superposition on the mean (biotite superimpose).")
    return card


def evaluate(run: Run, n: int | None = None, seed: int = 0, **kw) -> ScoreCard:
    if run.cfg.data.dataset == "ensemble":
        return evaluate_ensemble(run, n, seed, kw.get("bundle"))
    return evaluate_backbones(run, n, seed, **kw)
