"""``ablation.md`` and ``ablation.png`` from an ablation result (:mod:`panflow.ablation`).

The table is domains × variants, each cell the headline metric relative to the default model
(``ratio``; for a lower-is-better metric below 1 is better), marked when the move is larger than
the seed-to-seed gap measured on the same domain."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def _ratio_of(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def verdict(ratio: float | None, gap: float | None, higher_is_better: bool) -> str:
    """``better`` / ``worse`` when the move exceeds the seed gap, ``≈`` within it."""
    if ratio is None or gap is None:
        return ""
    if abs(ratio - 1.0) <= gap:
        return "≈"
    return "better" if (ratio > 1.0) == higher_is_better else "worse"


def ablation_markdown(result: dict[str, Any]) -> str:
    doms = result["domains"]
    names = [v["name"] for v in result["variants"]]
    lines = [f"# Ablation across domains (preset `{result['preset']}`, seed {result['seed']}, N {result['n']})", "",
             "Each cell: the headline metric of a model trained with that one change, relative to the default "
             "model of the same domain (value / default). ↓ = lower is better, ↑ = higher is better. "
             "'better' / 'worse' only where the move is larger than the seed-to-seed gap (the default trained "
             "again with seed + 1); ≈ inside it. One seed per variant: a cell is a measurement, not a "
             "significance test.", "",
             "| domain | headline | default | seed gap | " + " | ".join(n for n in names if n != "default") + " |",
             "|---|---|---|---|" + "---|" * (len(names) - 1)]
    failures: list[str] = []
    for d, r in doms.items():
        rows = {x["variant"]: x for x in r["rows"]}
        head = r["headline"][0] + (" @ " + r["headline"][1] if len(r["headline"]) > 1 else "")
        arrow = "↑" if r["higher_is_better"] else "↓"
        cells = []
        for n in names:
            if n == "default":
                continue
            x = rows.get(n)
            if x is not None and x.get("error"):
                cells.append("failed†")
                failures.append(f"† {d}, `{n}`: {x['error']}")
                continue
            own = rows.get("default", {})
            at = "" if x is None or (x.get("solver"), x.get("nfe")) == (own.get("solver"), own.get("nfe")) else \
                f" (at {x.get('solver')} NFE {x.get('nfe')})"  # a step-aware model samples at its trained steps
            cells.append("–" if x is None else
                         f"{_fmt(x['ratio'])} {verdict(x['ratio'], r['seed_gap'], r['higher_is_better'])}".strip() + at)
        default = rows.get("default", {}).get("value")
        lines.append(f"| {d} | {head} {arrow} | {_fmt(default)} | {_fmt(r['seed_gap'])} | " + " | ".join(cells) + " |")
    lines += ["", *failures] if failures else []
    lines += ["", "## Quality against NFE (value, and value / default model at the preset's own sampler)", ""]
    for d, r in doms.items():
        rows = {x["variant"]: x for x in r["rows"]}
        own = rows.get("default", {})
        lines.append(f"- **{d}** (the preset samples with {own.get('solver')} NFE {own.get('nfe')}):")
        for name, curve in r["nfe_curves"].items():
            cost = _fmt(_ratio_of(rows.get(name, {}).get("train_s"), own.get("train_s")))
            pts = ", ".join(f"{c['solver']} {c['nfe']}: {_fmt(c['value'])} ({_fmt(c['ratio'])})" for c in curve)
            lines.append(f"  - `{name}` (training time {cost}× the default's): {pts}")
    lines += ["", "## Variants", ""]
    lines += [f"- `{v['name']}` ({v['question']}): `{v['overrides']}` — {v['claim']}" for v in result["variants"]]
    wall = sum(r.get("wall_s", 0.0) for r in doms.values())
    hw = result.get("hardware", {})
    lines += ["", f"Wall time {wall / 60:.1f} min on {hw.get('processor', '?')} ({hw.get('cpu_threads', '?')} threads, "
              f"torch {hw.get('torch', '?')}). Command: `{result['command']}`", ""]
    return "\n".join(lines)


def ablation_plot(result: dict[str, Any], path: Path) -> Path | None:
    """Left: each variant's ratio to the default per domain; right: ratio against NFE per solver
    (the default model, and dashed the few-step variants).
    Returns None (and writes nothing) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    doms = list(result["domains"])
    names = [v["name"] for v in result["variants"] if v["name"] != "default"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        vals = []
        for d in doms:
            x = next((r for r in result["domains"][d]["rows"] if r["variant"] == n), None)
            vals.append(float("nan") if x is None or x["ratio"] is None else x["ratio"])
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(doms))]
        line = a.plot(xs, vals, "o", label=n)[0]
        a.vlines(xs, 1.0, vals, color=line.get_color(), lw=2)  # a stem from "no change" to the variant
    for j, d in enumerate(doms):
        g = result["domains"][d]["seed_gap"]
        if g is not None:
            a.fill_between([j - 0.45, j + 0.45], 1 - g, 1 + g, color="grey", alpha=0.25, lw=0)
    a.axhline(1.0, color="k", lw=0.8)
    a.set_yscale("log")
    a.set_xticks(range(len(doms)), [d + (" ↑" if result["domains"][d]["higher_is_better"] else " ↓") for d in doms])
    a.set_ylabel("headline / default")
    a.set_title("one change at a time (grey: seed-to-seed gap)")
    a.legend(fontsize=7, ncol=2)
    for d in doms:
        for name, curve in result["domains"][d]["nfe_curves"].items():
            for solver in dict.fromkeys(c["solver"] for c in curve):
                pts = [(c["nfe"], c["ratio"]) for c in curve if c["solver"] == solver and c["ratio"] is not None]
                if pts:
                    b.plot(*zip(*pts), marker="o", ls="-" if name == "default" else "--",
                           label=f"{d} {solver}" + ("" if name == "default" else f" ({name})"))
    b.axhline(1.0, color="k", lw=0.8)
    b.set_xscale("log", base=2)
    b.set_yscale("log")
    b.set_xlabel("NFE")
    b.set_ylabel("headline / preset sampler")
    b.set_title("quality against NFE (solid: default model)")
    b.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["ablation_markdown", "ablation_plot", "verdict"]
