"""``panflow bench ablate``: the choices the flow/diffusion literature argues about, asked of every
continuous domain at one budget.

For each domain (one whose objective is built on the affine-path flow objective and whose benchmark declares a headline) and each
registered :class:`Variant` — prediction target, probability path, training-time sampler — a model
is trained at the domain's own preset (``quick`` by default) with only the variant's config keys
changed (on top of ``Benchmark.model_overrides``, the benchmark's own model when it is not the
domain's default), then scored by the domain's evaluator (``Domain.evaluate``, or the default one built from
its metrics) on the benchmark's headline metric. The default model is trained a second time with
another seed, so each row states the seed-to-seed gap it should be read against, and is sampled
again with each solver at several NFE (quality against NFE). Variants not run by default — the
few-step trainings (OT coupling, shortcut) — get the same NFE sweep, with their training time beside
the default's: ``--variants coupling=ot,objective=shortcut --sweep euler:1,2,4,64`` is the few-step
report.

A plugin adds a question with :func:`register_variant`. Results: ``ablation.json`` (versioned),
``ablation.md`` and, with matplotlib, ``ablation.png``; the JSON is rewritten after every domain so
an interrupted ablation keeps what it measured.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, PanflowError, UnknownNameError
from .nametable import NameTable

SCHEMA = 1
# (solver, NFE budgets) the default model is sampled with for the quality-against-NFE table
SWEEP: tuple[tuple[str, tuple[int, ...]], ...] = (("euler", (2, 4, 8, 16)), ("heun", (4, 8, 16)))


@dataclass(frozen=True)
class Variant:
    """One answer to one question: ``overrides`` are the config keys it changes from the domain's
    preset; ``claim`` is the published claim it tests (with its source). ``by_default`` variants run
    when no ``--variants`` are named; the others (few-step training) only when asked for."""

    name: str
    question: str
    overrides: dict[str, Any] = field(default_factory=dict)
    claim: str = ""
    by_default: bool = True


VARIANTS = NameTable("ablation variant", {})


def register_variant(v: Variant) -> Variant:
    """Add ``v`` to the variants ``panflow bench ablate`` runs (a plugin may add its own)."""
    return VARIANTS.add(v.name, v)


for _v in (
    Variant("default", "reference", {}, "linear path, velocity target, uniform t (Lipman et al. 2023; Liu et al. 2023)"),
    Variant("target=noise", "prediction target", {"flow.prediction": "noise"},
            "ε-prediction is the DDPM default (Ho et al. 2020); its velocity is singular near the noise end"),
    Variant("target=data", "prediction target", {"flow.prediction": "data"},
            "x-prediction: 'Back to Basics' (Li & He 2025) argues it wins for high-dimensional data"),
    Variant("path=vp-linear", "path", {"flow.schedule": "vp-linear"},
            "VP SDE with linear β (Song et al. 2021); Lipman et al. 2023 report OT paths train better"),
    Variant("path=vp-cosine", "path", {"flow.schedule": "vp-cosine"}, "cosine noise schedule (Nichol & Dhariwal 2021)"),
    Variant("path=vp-sigmoid", "path", {"flow.schedule": "vp-sigmoid"}, "sigmoid schedule (Jabri et al. 2023)"),
    Variant("t=logit-normal", "training-time sampling", {"flow.time_sampler": "logit_normal"},
            "logit-normal(0, 1) beat uniform for rectified flow in SD3 (Esser et al. 2024)"),
    Variant("t=shifted", "training-time sampling", {"flow.time_sampler": "shifted"},
            "time shift 3 toward noise, for high resolutions (Esser et al. 2024)"),
    Variant("coupling=ot", "few-step training", {"flow.coupling": "ot"},
            "minibatch OT couplings straighten paths (Tong et al. 2024; Pooladian et al. 2023)", by_default=False),
    Variant("objective=shortcut", "few-step training", {"flow.objective": "shortcut"},
            "shortcut models sample in 1-2 steps at little extra cost (Frans et al. 2024)", by_default=False),
):
    register_variant(_v)


def continuous_domains(registry) -> list[str]:
    """Installed domains whose objective is built on the affine-path flow objective
    (``Objective.affine_path``) and whose benchmark names a headline."""
    heads = {b.domain for b in registry.all("benchmark") if b.headline}
    return sorted(d.name for d in registry.all("domain") if registry.objective(d.objective).affine_path and d.name in heads)


def headline_value(card, metric: str, section: str = "") -> float:
    """The headline ``metric`` of the card's model row (``model · {section}`` when the card has one)."""
    rows = {r.role: r for r in card.rows}
    row = rows.get(f"model · {section}") if section else None
    row = row or rows.get("model")
    if row is None or metric not in row.metrics:
        raise ConfigError(f"the evaluator's card has no model row with '{metric}' (rows: {sorted(rows)})")
    return float(row.metrics[metric])


def _ratio(value: float, ref: float) -> float | None:
    return value / ref if ref and math.isfinite(ref) and math.isfinite(value) else None


def _score(run, evaluate: Callable, n: int, seed: int, head: tuple[str, ...], solver=None, nfe=None) -> float:
    if solver is not None:
        run.cfg = dataclasses.replace(run.cfg, sample=dataclasses.replace(run.cfg.sample, solver=solver, nfe=nfe))
    return headline_value(evaluate(run, n=n, seed=seed), *head)


def ablate_domain(domain: str, preset: str, seed: int, n: int, variants: list[Variant],
                  sweep=SWEEP, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and score every variant (and the default's second seed and NFE sweep) on ``domain``."""
    from .default_eval import default_evaluate
    from .plugins import get_registry
    from .run import build_config, load_run, train

    reg = get_registry()
    bench = next(b for b in reg.all("benchmark") if b.domain == domain and b.headline)
    head = tuple(bench.headline)

    def fit(name: str, overrides: dict[str, Any], train_seed: int):
        cfg = build_config(domain, preset, overrides={**bench.model_overrides, **overrides, "train.seed": train_seed,
                                                      "train.progress": False})
        t0 = time.perf_counter()
        run_dir = train(cfg, Path(tmp.name) / re.sub(r"[^A-Za-z0-9_.-]+", "-", name))
        run = load_run(run_dir)
        return run, time.perf_counter() - t0

    tmp = tempfile.TemporaryDirectory(prefix=f"panflow-ablate-{domain}-")  # checkpoints are not results
    rows, runs = [], {}
    for v in variants + [Variant("default · seed+1", "seed-to-seed gap", {})]:
        train_seed = seed + 1 if v.question == "seed-to-seed gap" else seed
        log(f"[ablate] {domain}: {v.name} ...")
        row = {"variant": v.name, "question": v.question, "overrides": v.overrides}
        try:
            run, train_s = fit(v.name, v.overrides, train_seed)
            evaluate = run.domain.evaluate or default_evaluate
            t0 = time.perf_counter()
            solver = run.cfg.sample.solver  # the preset's sampler, at a step count this model was trained for
            value = _score(run, evaluate, n, train_seed, head, solver, run.objective.usable_nfe(solver, run.cfg.sample.nfe))
        except Exception as exc:  # a variant that diverges (or breaks its evaluator) is a result; the default failing is not
            if v.name == "default":
                raise
            msg = str(exc) if isinstance(exc, PanflowError) else f"{type(exc).__name__}: {exc}"
            log(f"[ablate] {domain}: {v.name} failed: {msg}")
            rows.append({**row, "value": None, "error": msg})
            continue
        rows.append({**row, "value": value, "train_s": train_s, "eval_s": time.perf_counter() - t0,
                     "solver": run.cfg.sample.solver, "nfe": run.cfg.sample.nfe})
        runs[v.name] = run
    ref = rows[0]["value"] if rows[0]["variant"] == "default" else None
    for r in rows:
        r["ratio"] = _ratio(r["value"], ref) if ref is not None and r["value"] is not None else None
    gap = next((r["ratio"] for r in rows if r["question"] == "seed-to-seed gap"), None)
    curves: dict[str, list[dict[str, Any]]] = {}
    for v in variants:  # the default and the few-step variants: quality against NFE per solver
        if (v.name != "default" and v.by_default) or v.name not in runs:
            continue
        run = runs[v.name]
        evaluate = run.domain.evaluate or default_evaluate
        curves[v.name] = []
        for solver, nfes in sweep:
            for nfe in nfes:
                value = _score(run, evaluate, n, seed, head, solver, nfe)
                curves[v.name].append({"solver": solver, "nfe": nfe, "value": value, "ratio": _ratio(value, ref)})
                log(f"[ablate] {domain}: {v.name} at {solver} NFE {nfe}: {value:.4g}")
    tmp.cleanup()
    return {"headline": list(head), "higher_is_better": bench.headline_higher, "preset": preset,
            "model_overrides": dict(bench.model_overrides),
            "rows": rows, "seed_gap": None if gap is None else abs(gap - 1.0), "nfe_curves": curves}


def parse_sweep(text: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``"euler:1,2,4,64;heun:8"`` -> ``(("euler", (1, 2, 4, 64)), ("heun", (8,)))`` (solvers checked)."""
    from .solvers import SOLVERS

    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        solver, _, nfes = part.partition(":")
        if solver not in SOLVERS:
            raise UnknownNameError("solver", solver, SOLVERS)
        try:
            budget = tuple(int(k) for k in nfes.split(",") if k.strip())
        except ValueError:
            budget = ()
        if not budget or min(budget) < 1:
            raise ConfigError(f"--sweep {part!r}: give SOLVER:NFE[,NFE...] with NFE >= 1, e.g. euler:1,2,4,64")
        out.append((solver, budget))
    if not out:
        raise ConfigError(f"--sweep {text!r} names no solver; e.g. 'euler:1,2,4,64;heun:8,16'")
    return tuple(out)


def ablate(domains: list[str] | None, preset: str, out_dir: str | Path, seed: int = 0, n: int = 256,
           variants: list[str] | None = None, log: Callable[[str], None] = print, sweep=SWEEP) -> Path:
    """Run the ablation over ``domains`` (default: every continuous one); returns ``ablation.json``."""
    from .plugins import get_registry
    from .scorecard import hardware

    reg = get_registry()
    chosen = [VARIANTS.lookup(v) for v in variants] if variants else [v for v in VARIANTS.values() if v.by_default]
    if chosen[0].name != "default":
        chosen = [VARIANTS["default"], *[v for v in chosen if v.name != "default"]]
    allowed = continuous_domains(reg)
    doms = domains or allowed
    for d in doms:
        reg.domain(d)  # an unknown name suggests the closest
        if d not in allowed:
            raise ConfigError(f"domain '{d}' cannot be ablated: it needs an affine-path flow objective and a benchmark "
                              f"with a headline (ablatable: {', '.join(allowed)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = (f"panflow bench ablate --domains {','.join(doms)} --preset {preset} --n {n} --seed {seed} --out {out}"
               + (f" --variants {','.join(variants)}" if variants else "")
               + ("" if sweep == SWEEP else " --sweep '" + ";".join(f"{s}:{','.join(map(str, k))}" for s, k in sweep) + "'"))
    result: dict[str, Any] = {"schema": SCHEMA, "kind": "ablation", "preset": preset, "seed": seed, "n": n,
                              "variants": [dataclasses.asdict(v) for v in chosen], "command": command,
                              "sweep": [[s, list(k)] for s, k in sweep],
                              "hardware": hardware(), "domains": {}}
    earlier = _earlier(out / "ablation.json", result)
    t0 = time.perf_counter()
    for d in doms:
        if d in earlier:  # an interrupted ablation resumes: a finished domain is kept, not retrained
            log(f"[ablate] {d}: kept from the earlier run in {out / 'ablation.json'}")
            result["domains"][d] = earlier[d]
            continue
        t1 = time.perf_counter()
        result["domains"][d] = {**ablate_domain(d, preset, seed, n, chosen, sweep, log=log),
                                "wall_s": time.perf_counter() - t1}
        result["wall_s"] = time.perf_counter() - t0
        write_ablation(result, out)
    return out / "ablation.json"


def _earlier(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """The finished domains of an earlier ablation in ``path`` with the same preset, seed, N,
    variants and sweep (anything else is not comparable and is overwritten)."""
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    same = all(old.get(k) == result[k] for k in ("schema", "preset", "seed", "n", "sweep")) and \
        [v["name"] for v in old.get("variants", [])] == [v["name"] for v in result["variants"]]
    return dict(old.get("domains", {})) if same else {}


def write_ablation(result: dict[str, Any], out: Path) -> None:
    from .ablation_report import ablation_markdown, ablation_plot

    (out / "ablation.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "ablation.md").write_text(ablation_markdown(result))
    ablation_plot(result, out / "ablation.png")


__all__ = ["SWEEP", "VARIANTS", "Variant", "ablate", "ablate_domain", "continuous_domains", "headline_value",
           "parse_sweep", "register_variant"]
