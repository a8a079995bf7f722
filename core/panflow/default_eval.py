"""The evaluator and benchmark a domain gets from what it registers, when it brings none of its own.

From the domain's registered metrics (``fn(real, generated, seed) -> {name: value}``) and its
dataset's held-out split, the score card holds, at one N and seed:

- **floor**: held-out against an equally large draw of the training split (real against real);
- **baseline**: a Gaussian fitted to the training split in raw space (full covariance up to
  ``FULL_COV_MAX`` dimensions, diagonal above), for float data;
- **model**: the run's samples at its own sampling settings, plus a quality-against-NFE sweep
  (Euler at 1, 2, 4, 8, 16, 32) whose rows are labelled by NFE;
- **bars**: for each metric, model against baseline (the direction from ``Metric.higher_is_better``).

Conditional domains are sampled with the held-out rows' conditions (and known parts, when given),
so model and real rows describe the same contexts.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .components import Benchmark, Metric, Samples
from .errors import PanflowError
from .known import expand_known
from .registry import Registry
from .scorecard import Row, ScoreCard, bar
from .streaming import draw_subset, heldout

FULL_COV_MAX = 1024
SWEEP_NFES = (1, 2, 4, 8, 16, 32)
DEFAULT_N = {"smoke": 64, "quick": 500, "small": 2000, "full": 10_000}


def domain_metrics(registry: Registry, domain: str) -> list[Metric]:
    return [m for m in registry.all("metric") if m.domain == domain]


def gaussian_baseline(train: Samples, n: int, seed: int) -> Samples:
    """``n`` draws of a Gaussian fitted to ``train.x`` (float data), shaped like it. Padding
    (``mask``) is fitted like data: a padded domain should bring its own baseline."""
    x = train.x
    if not x.is_floating_point():
        raise PanflowError("the default Gaussian baseline needs float data; register an evaluator for this domain")
    flat = x.reshape(len(x), -1).double()
    mu = flat.mean(0)
    g = torch.Generator().manual_seed(seed + 17)
    z = torch.randn(n, flat.shape[1], generator=g, dtype=torch.float64)
    if flat.shape[1] <= FULL_COV_MAX and len(flat) > flat.shape[1]:
        cov = torch.cov(flat.T)
        cov = cov + 1e-6 * float(cov.diagonal().mean()) * torch.eye(flat.shape[1], dtype=torch.float64)
        draw = mu + z @ torch.linalg.cholesky(cov).T
    else:
        draw = mu + z * flat.std(0)
    return Samples(draw.to(x.dtype).reshape(n, *x.shape[1:]))


def _score(metrics: list[Metric], real: Samples, gen: Samples, seed: int, owner: dict | None = None) -> dict[str, float]:
    """All metrics' values; ``owner`` (if given) maps each value's key to its metric."""
    out: dict[str, float] = {}
    for m in metrics:
        vals = m.fn(real, gen, seed=seed)
        out.update(vals)
        if owner is not None:
            owner.update({k: m for k in vals})
    return out


def default_evaluate(run: Any, n: int | None = None, seed: int = 0, registry: Registry | None = None,
                     nfes: tuple[int, ...] = SWEEP_NFES) -> ScoreCard:
    """Score card of a trained run from its domain's registered metrics (see the module docstring)."""
    from .plugins import get_registry

    reg = registry or get_registry()
    metrics = domain_metrics(reg, run.domain.name)
    if not metrics:
        raise PanflowError(f"domain '{run.domain.name}' has no evaluator and registers no metric "
                           "(registry.add_metric): nothing to score")
    data = run.load_data()
    real = heldout(data.val, n or DEFAULT_N["small"], seed)
    n = len(real)
    ref = draw_subset(data.train, n, seed + 1)
    card = ScoreCard(run.domain.name)
    owner: dict[str, Metric] = {}
    floor = _score(metrics, real, ref, seed, owner)
    card.rows.append(Row("floor", floor, {"n": n, "seed": seed, "what": "held-out vs training split"}))
    base = None
    if real.x.is_floating_point():
        draw = gaussian_baseline(draw_subset(data.train, 20_000, seed + 2), n, seed)
        if real.known is not None:  # the baseline gets the given elements too, as the model does
            draw = torch.where(expand_known(real.known, draw.x), real.x, draw.x)
            draw = Samples(draw)
        base = _score(metrics, real, Samples(draw.x, cond=dict(real.cond)), seed)
        card.rows.append(Row("baseline", base, {"n": n, "seed": seed, "what": "Gaussian fitted to the training split"}))
    else:
        card.notes.append("No baseline row: the default Gaussian baseline needs float data; register an evaluator "
                          "with a baseline for this domain's data.")
    kw = {"cond": dict(real.cond)}
    if real.known is not None:
        kw.update(known=real.known, x_known=real.x)
    opts = run.options()
    t0 = time.perf_counter()
    gen, setup = run.generate(n, opts, seed=seed, **kw)
    model = _score(metrics, real, gen, seed)
    card.rows.append(Row("model", model, {"n": n, "seed": seed, "solver": opts.solver, "nfe": setup["nfe"],
                                          "guidance": opts.guidance, "wall_s": time.perf_counter() - t0}))
    if run.objective.kind == "flow":  # continuous: the Euler sweep (masked objectives have their own samplers)
        for k in nfes:
            g, s = run.generate(n, run.options(solver="euler", nfe=k), seed=seed, **kw)
            card.rows.append(Row(f"model · euler NFE {k}", _score(metrics, real, g, seed),
                                 {"n": n, "seed": seed, "solver": "euler", "nfe": s["nfe"]}))
        card.extra["sweep"] = [{**r.setup, **r.metrics} for r in card.rows if r.role.startswith("model · euler NFE")]
    for key, m in owner.items():
        if base is None or key not in base or key not in model:
            continue
        b, v = base[key], model[key]
        op = ">" if m.higher_is_better else "<"
        detail = f"model {v:.4g}, baseline {b:.4g}, floor {floor[key]:.4g}"
        if b > 0 and v >= 0:  # a ratio reads well for positive quantities
            card.bars.append(bar(f"{key}: model / Gaussian baseline", v / b, op, 1.0, detail))
        else:  # signs make a ratio's direction ambiguous (log-likelihoods): the difference instead
            card.bars.append(bar(f"{key}: model − Gaussian baseline", v - b, op, 0.0, detail))
    card.notes.append(f"Default evaluator (panflow.default_eval): metrics {', '.join(m.name for m in metrics)}; "
                      f"N = {n} held-out samples, seed {seed}. Bars are model / baseline ratios.")
    return card


def default_benchmark(domain: str) -> Benchmark:
    """Train the domain's default dataset at the preset with ``panflow.train``, then score it with
    the domain's evaluator, or :func:`default_evaluate` when it has none."""

    def run_bench(preset: str, out_dir: Path | None = None, seed: int = 0) -> ScoreCard:
        from .run import build_config, load_run, train

        cfg = build_config(domain, preset, overrides={"train.seed": seed, "train.progress": False})
        with tempfile.TemporaryDirectory(prefix=f"panflow-{domain}-bench-") as tmp:
            t0 = time.perf_counter()
            train(cfg, Path(tmp) / "run")
            train_s = time.perf_counter() - t0
            run = load_run(Path(tmp) / "run", device="auto")
            card = (run.domain.evaluate or default_evaluate)(run, n=DEFAULT_N[preset], seed=seed)
        card.extra["train_s"] = train_s
        card.notes.append(f"Trained {cfg.train.steps} steps (batch {cfg.train.batch_size}) in {train_s:.1f} s.")
        return card

    return Benchmark(domain, domain, run_bench, f"default benchmark of '{domain}' (its metrics, Gaussian baseline)",
                     plugin="panflow", presets=tuple(DEFAULT_N))


__all__ = ["default_evaluate", "default_benchmark", "gaussian_baseline", "domain_metrics"]
