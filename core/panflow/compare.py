"""``panflow bench compare OLD NEW``: which results moved beyond their noise, and which regressed.

A side is a results directory (every ``*.json`` written by ``panflow bench``) or one result file.
Benchmarks are matched by name, rows by role, bars by name.

- **Noise.** A value's tolerance is ``k`` standard errors when the result records them
  (``row.setup["se"] = {metric: se}``, combined over both sides), else a relative tolerance
  (``rel_tol`` of the larger magnitude, stated in the output). Results at a different seed or N
  are compared but flagged, since their difference includes sampling noise the tolerance does not.
- **Regressions** are read from the bars, which carry a direction: a bar whose value moved the
  wrong way by more than its tolerance (a pass turned fail within the tolerance is reported as a
  flip within noise). Speed bars (``kind="speed"``, wall-clock) use ``time_tol``, since timings
  on a shared machine wander more than seeded quality numbers. Row metrics carry no direction,
  so they are reported as moved, never judged.

Results of every schema version so far are readable (version 1 had no ``schema`` key).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

RESULT_SCHEMA = 2  # 2: adds "schema" and "command"; 1: the first results (no schema key)


def load_results(path: str | Path) -> dict[str, dict[str, Any]]:
    """Benchmark results by name from a directory of result JSONs or one file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such results file or directory")
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    out: dict[str, dict[str, Any]] = {}
    for f in files:
        try:
            d = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{f}: not a readable result JSON ({exc})") from exc
        if not isinstance(d, dict) or "benchmark" not in d:
            continue  # other JSON in the folder (a score card of a run, a config)
        if int(d.get("schema", 1)) > RESULT_SCHEMA:
            raise DataError(f"{f}: result schema {d['schema']} is newer than this panflow reads ({RESULT_SCHEMA})")
        out[d["benchmark"]] = d
    if not out:
        raise DataError(f"{p}: holds no panflow benchmark results (JSON files with a 'benchmark' key)")
    return out


@dataclass
class Change:
    benchmark: str
    what: str            # "bar: <name>" or "row: <role> / <metric>"
    old: float
    new: float
    tolerance: float
    noise: str           # how the tolerance was set
    regression: bool = False
    note: str = ""

    @property
    def moved(self) -> bool:
        return abs(self.new - self.old) > self.tolerance


@dataclass
class Comparison:
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]

    @property
    def moved(self) -> list[Change]:
        return [c for c in self.changes if c.moved or c.regression]

    def to_markdown(self) -> str:
        lines = ["# Benchmark comparison", ""]
        lines += [f"- {w}" for w in self.warnings]
        lines += ["", f"{len(self.moved)} value(s) moved beyond their tolerance, {len(self.regressions)} regression(s).",
                  ""]
        if self.moved:
            lines += ["| benchmark | what | old | new | tolerance | noise | verdict |", "|---|---|---|---|---|---|---|"]
            for c in self.moved:
                verdict = "**regression**" if c.regression else "moved"
                lines.append(f"| {c.benchmark} | {c.what} | {c.old:.4g} | {c.new:.4g} | {c.tolerance:.3g} | {c.noise} | "
                             f"{verdict}{' — ' + c.note if c.note else ''} |")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"schema": RESULT_SCHEMA, "warnings": self.warnings,
                "changes": [{**vars(c), "moved": c.moved} for c in self.moved]}


def _tol(old: float, new: float, rel_tol: float, se_old: float | None, se_new: float | None, k: float):
    if se_old is not None and se_new is not None:
        return k * math.hypot(se_old, se_new), f"{k:g} SE"
    return rel_tol * max(abs(old), abs(new)), f"±{rel_tol:.0%} (no SE recorded)"


def _wrong_way(target: str, old: float, new: float) -> bool:
    op = target.split()[0]
    return new > old if op.startswith("<") else new < old


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def compare(old: dict[str, dict], new: dict[str, dict], rel_tol: float = 0.05, k: float = 3.0,
            time_tol: float = 0.25) -> Comparison:
    """Compare two result sets (from :func:`load_results`)."""
    cmp = Comparison()
    for name in sorted(set(old) | set(new)):
        if name not in new or name not in old:
            cmp.warnings.append(f"{name}: only in the {'old' if name in old else 'new'} results")
            continue
        a, b = old[name], new[name]
        if (a.get("preset"), a.get("seed")) != (b.get("preset"), b.get("seed")):
            cmp.warnings.append(f"{name}: preset/seed differ ({a.get('preset')}/{a.get('seed')} vs "
                                f"{b.get('preset')}/{b.get('seed')}): not like for like")
        bars_b = {x["name"]: x for x in b.get("bars", [])}
        for bar in a.get("bars", []):
            nb = bars_b.get(bar["name"])
            if nb is None:
                cmp.warnings.append(f"{name}: bar '{bar['name']}' is gone")
                continue
            vo, vn = _num(bar["value"]), _num(nb["value"])
            if vo is None or vn is None:
                continue
            speed = bar.get("kind", "quality") == "speed"
            tol, how = _tol(vo, vn, time_tol if speed else rel_tol, None, None, k)
            ch = Change(name, f"bar: {bar['name']}", vo, vn, tol, how + (", speed" if speed else ""))
            flipped = bar["passed"] != nb["passed"]
            if ch.moved and _wrong_way(bar["target"], vo, vn):
                ch.regression = True
                ch.note = f"passed, now fails ({nb['target']})" if flipped else f"moved the wrong way for {bar['target']}"
            elif flipped:
                ch.note = "now passes" if nb["passed"] else "fails now, within noise"
                cmp.warnings.append(f"{name}: bar '{bar['name']}' {ch.note} ({vo:.4g} -> {vn:.4g})")
            cmp.changes.append(ch)
        rows_b = {r["role"]: r for r in b.get("rows", [])}
        for row in a.get("rows", []):
            nr = rows_b.get(row["role"])
            if nr is None:
                continue
            so, sn = row.get("setup", {}), nr.get("setup", {})
            if (so.get("n"), so.get("seed")) != (sn.get("n"), sn.get("seed")):
                cmp.warnings.append(f"{name}: row '{row['role']}' changed N/seed ({so.get('n')}/{so.get('seed')} "
                                    f"-> {sn.get('n')}/{sn.get('seed')})")
            for m, vo in row.get("metrics", {}).items():
                vo, vn = _num(vo), _num(nr.get("metrics", {}).get(m))
                if vo is None or vn is None:
                    continue
                tol, how = _tol(vo, vn, rel_tol, (so.get("se") or {}).get(m), (sn.get("se") or {}).get(m), k)
                cmp.changes.append(Change(name, f"row: {row['role']} / {m}", vo, vn, tol, how))
    return cmp


__all__ = ["RESULT_SCHEMA", "Change", "Comparison", "compare", "load_results"]
