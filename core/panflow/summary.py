"""``summary.md``: one row per benchmark result — its headline metric beside floor, baseline, model
and oracle, the bars passed, wall time and the command that produced it.

A benchmark names its headline with ``Benchmark(headline=(metric, section))``: the metric key in its
rows, and optionally a section that the rows' roles contain (``"8gaussians"``, ``"24h"``). Each
column takes the first row whose role is, or starts with, ``floor`` / ``baseline`` / ``model`` /
``oracle`` (``ceiling`` counts as an oracle) within the section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compare import load_results
from .presets import PLUMBING_ONLY

KINDS = {"floor": ("floor",), "baseline": ("baseline",), "model": ("model",), "oracle": ("oracle", "ceiling")}


def pick_row(rows: list[dict], prefixes: tuple[str, ...], metric: str, section: str) -> dict | None:
    """The first row whose role starts with one of ``prefixes``, lies in ``section`` and has ``metric``."""
    for r in rows:
        role = r.get("role", "")
        first = role.split(" · ")[0]
        if first in prefixes and (not section or section in role.split(" · ")) and metric in r.get("metrics", {}):
            return r
    return None


def _pick(rows: list[dict], prefixes: tuple[str, ...], metric: str, section: str) -> float | None:
    r = pick_row(rows, prefixes, metric, section)
    v = r["metrics"][metric] if r is not None else None
    return float(v) if isinstance(v, (int, float)) else None


def summary_rows(results: dict[str, dict], headlines: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    out = []
    for name in sorted(results):
        d = results[name]
        bars = d.get("bars", [])
        head = tuple(headlines.get(name) or d.get("headline") or ())
        metric, section = (head + ("", ""))[:2]
        held = [b for b in bars if not b.get("needs")]
        later = [b for b in bars if b.get("needs")]
        row: dict[str, Any] = {"benchmark": name, "preset": d.get("preset", "?"),
                               "bars": f"{sum(1 for b in held if b.get('passed'))}/{len(held)}"
                               + (f" (+{sum(1 for b in later if b.get('passed'))}/{len(later)} sized for "
                                  f"{'/'.join(sorted({str(b['needs']) for b in later}))})" if later else ""),
                               "all_passed": all(b.get("passed") for b in held),
                               "headline": f"{metric}{' @ ' + section if section else ''}" if metric else "–",
                               "wall_min": (d.get("wall_s") or 0) / 60, "command": d.get("command", "")}
        for kind, prefixes in KINDS.items():
            row[kind] = _pick(d.get("rows", []), prefixes, metric, section) if metric else None
        out.append(row)
    return out


def summary_markdown(results: dict[str, dict], headlines: dict[str, tuple[str, ...]]) -> str:
    lines = ["# panflow benchmarks: summary", "",
             "One row per benchmark; the headline metric's floor (real vs real), baseline, model and oracle",
             "(or ceiling) rows from its score card, the bars it passes, its wall time. Each benchmark's",
             "own `.md` has every row, bar and note. Bars sized for a larger preset (\"sized for small\") are",
             "reported beside the count, not in it.", "",
             "| benchmark | preset | headline | floor | baseline | model | oracle | bars passed | wall (min) |",
             "|---|---|---|---|---|---|---|---|---|"]
    plumbing = []
    for r in summary_rows(results, headlines):
        vals = ["–" if r[k] is None else f"{r[k]:.4g}" for k in KINDS]
        lines.append(f"| {r['benchmark']} | {r['preset']} | {r['headline']} | " + " | ".join(vals)
                     + f" | {r['bars']} | {r['wall_min']:.1f} |")
        plumbing += [r["benchmark"]] if r["preset"] in PLUMBING_ONLY else []
    if plumbing:
        lines += ["", f"**Plumbing check:** {', '.join(plumbing)} ran a plumbing-only preset (seconds of training);"
                      " those numbers say the pipeline runs, not how good the model is. Run `--preset quick` for that."]
    return "\n".join(lines) + "\n"


def write_summary(out_dir: str | Path, headlines: dict[str, tuple[str, ...]]) -> Path:
    """Write ``<out_dir>/summary.md`` from every result in ``out_dir``."""
    path = Path(out_dir) / "summary.md"
    path.write_text(summary_markdown(load_results(out_dir), headlines))
    return path


__all__ = ["pick_row", "summary_rows", "summary_markdown", "write_summary"]
