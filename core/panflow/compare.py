"""``panflow bench compare OLD NEW``: which results moved beyond their noise, and which regressed.

A side is a results directory (every ``*.json`` written by ``panflow bench``) or one result file.
Benchmarks are matched by name, rows by role, bars by name.

- **Noise.** A value's tolerance is ``k`` standard errors when the result records them
  (``row.setup["se"] = {metric: se}``, combined over both sides), else a relative tolerance
  (``rel_tol`` of the larger magnitude, stated in the output). Results at a different seed or N
  are compared but flagged, since their difference includes sampling noise the tolerance does not.
- **Regressions** are read from the bars, which carry a direction (``"<= 1.5"``): a quality bar
  that passed and fails now, a bar whose value moved the wrong way by more than its tolerance
  (relative to the larger of the two values and the limit), or a value that became NaN/inf.
  Speed bars (``kind="speed"``, wall-clock) use ``time_tol`` and a pass turned fail inside it is
  only reported, since timings on a shared machine wander more than seeded quality numbers. Row
  metrics carry no direction, so they are reported as moved, never judged. A benchmark or bar the
  new results lack is **missing**; ``--fail-on-regression`` fails on both.

Results of every schema version so far are readable (version 1 had no ``schema`` key).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError
from .presets import PLUMBING_ONLY

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
        schema = d.get("schema", 1)
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise DataError(f"{f}: result schema {schema!r} is not an integer")
        if schema > RESULT_SCHEMA:
            raise DataError(f"{f}: result schema {schema} is newer than this panflow reads ({RESULT_SCHEMA})")
        for part in ("rows", "bars"):
            items = d.get(part, [])
            if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
                raise DataError(f"{f}: '{part}' must be a list of objects")
        if any("name" not in x or "passed" not in x for x in d.get("bars", [])):
            raise DataError(f"{f}: every bar needs 'name' and 'passed'")
        name = str(d["benchmark"])
        if name in out:
            raise DataError(f"{f}: a second result for benchmark '{name}' in {p}; compare one result per benchmark")
        out[name] = d
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
    missing: list[str] = field(default_factory=list)   # benchmarks or bars the new results lack

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]

    @property
    def failed(self) -> bool:
        """What ``--fail-on-regression`` fails on: a regressed bar or a missing benchmark / bar."""
        return bool(self.regressions or self.missing)

    @property
    def moved(self) -> list[Change]:
        return [c for c in self.changes if c.moved or c.regression]

    def to_markdown(self) -> str:
        lines = ["# Benchmark comparison", ""]
        lines += [f"- **missing**: {m}" for m in self.missing]
        lines += [f"- {w}" for w in self.warnings]
        lines += ["", f"{len(self.moved)} value(s) moved beyond their tolerance, {len(self.regressions)} regression(s), "
                  f"{len(self.missing)} missing.", ""]
        if self.moved:
            lines += ["| benchmark | what | old | new | tolerance | noise | verdict |", "|---|---|---|---|---|---|---|"]
            for c in self.moved:
                verdict = "**regression**" if c.regression else "moved"
                lines.append(f"| {c.benchmark} | {c.what} | {c.old:.4g} | {c.new:.4g} | {c.tolerance:.3g} | {c.noise} | "
                             f"{verdict}{' — ' + c.note if c.note else ''} |")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"schema": RESULT_SCHEMA, "warnings": self.warnings, "missing": self.missing,
                "changes": [{**vars(c), "moved": c.moved} for c in self.moved]}


def _tol(old: float, new: float, rel_tol: float, se_old: float | None, se_new: float | None, k: float,
         limit: float | None = None):
    if se_old is not None and se_new is not None:
        return k * math.hypot(se_old, se_new), f"{k:g} SE"
    scale = max(abs(old), abs(new), abs(limit) if limit is not None else 0.0)
    return rel_tol * scale, f"±{rel_tol:.0%} (no SE recorded)"


_TARGET = re.compile(r"^\s*(<=|>=|<|>)\s*([-+0-9.eE]+|[-+]?inf)\s*$")


def parse_target(target: str) -> tuple[str, float] | None:
    """``"<= 1.5"`` → ``("<=", 1.5)``; ``None`` when the target is not of that form."""
    m = _TARGET.match(str(target))
    if not m:
        return None
    try:
        return m.group(1), float(m.group(2))
    except ValueError:
        return None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _keyed(items: list[dict], key: str) -> dict[tuple[str, int], dict]:
    """Items by ``(name, occurrence)``: a repeated name is matched occurrence by occurrence."""
    seen: dict[str, int] = {}
    out = {}
    for it in items:
        name = str(it.get(key))
        out[(name, seen.get(name, 0))] = it
        seen[name] = seen.get(name, 0) + 1
    return out


def _compare_bar(cmp: Comparison, name: str, bar: dict, nb: dict, rel_tol: float, time_tol: float) -> None:
    what = f"bar: {bar['name']}"
    vo, vn = _num(bar.get("value")), _num(nb.get("value"))
    was, now = bool(bar.get("passed")), bool(nb.get("passed"))
    if vn is None:
        if vo is not None or (was and not now):
            cmp.changes.append(Change(name, what, vo if vo is not None else math.nan, math.nan, 0.0, "not finite",
                                      True, f"value is now {nb.get('value')!r}"))
        else:
            cmp.warnings.append(f"{name}: bar '{bar['name']}' is not finite on either side")
        return
    if vo is None:
        cmp.warnings.append(f"{name}: bar '{bar['name']}' was {bar.get('value')!r}, now {vn:.4g}")
        return
    speed = bar.get("kind", "quality") == "speed"
    parsed = parse_target(nb.get("target", bar.get("target", "")))
    tol, how = _tol(vo, vn, time_tol if speed else rel_tol, None, None, 3.0, parsed[1] if parsed else None)
    ch = Change(name, what, vo, vn, tol, how + (", speed" if speed else ""))
    wrong_way = parsed is not None and (vn > vo if parsed[0].startswith("<") else vn < vo)
    if was and not now and (not speed or ch.moved):  # a seeded quality bar that passed and fails now
        ch.regression, ch.note = True, f"passed, now fails ({nb.get('target')})"
    elif ch.moved and wrong_way:
        ch.regression, ch.note = True, f"moved the wrong way for {nb.get('target')}"
    elif was != now:
        ch.note = "now passes" if now else "fails now, within the speed tolerance"
        cmp.warnings.append(f"{name}: bar '{bar['name']}' {ch.note} ({vo:.4g} -> {vn:.4g})")
    if nb.get("needs") and ch.regression:  # sized for a larger preset (or timed in a plumbing run): not judged
        ch.regression, ch.note = False, f"{ch.note}; sized for {nb['needs']}, not judged at this preset"
        cmp.warnings.append(f"{name}: bar '{bar['name']}' {ch.note}")
    if parsed is None:
        cmp.warnings.append(f"{name}: bar '{bar['name']}' has target {nb.get('target')!r} without a direction: "
                            "only pass/fail is judged")
    cmp.changes.append(ch)


def compare(old: dict[str, dict], new: dict[str, dict], rel_tol: float = 0.05, k: float = 3.0,
            time_tol: float = 0.25) -> Comparison:
    """Compare two result sets (from :func:`load_results`)."""
    cmp = Comparison()
    for name in sorted(set(old) | set(new)):
        if name not in new:
            cmp.missing.append(f"{name}: benchmark missing from the new results")
            continue
        if name not in old:
            cmp.warnings.append(f"{name}: only in the new results")
            continue
        a, b = old[name], new[name]
        if (a.get("preset"), a.get("seed")) != (b.get("preset"), b.get("seed")):
            cmp.warnings.append(f"{name}: preset/seed differ ({a.get('preset')}/{a.get('seed')} vs "
                                f"{b.get('preset')}/{b.get('seed')}): not like for like")
        bars_b = _keyed(b.get("bars", []), "name")
        for key, bar in _keyed(a.get("bars", []), "name").items():
            if key not in bars_b:
                cmp.missing.append(f"{name}: bar '{key[0]}' missing from the new results")
                continue
            nb = bars_b[key]
            if b.get("preset") in PLUMBING_ONLY and nb.get("kind") == "speed" and not nb.get("needs"):
                nb = {**nb, "needs": "a timed preset"}  # a plumbing run's few timed steps are noise, not a speed result
            _compare_bar(cmp, name, bar, nb, rel_tol, time_tol)
        rows_b = _keyed(b.get("rows", []), "role")
        for key, row in _keyed(a.get("rows", []), "role").items():
            nr = rows_b.get(key)
            if nr is None:
                cmp.warnings.append(f"{name}: row '{key[0]}' is gone")
                continue
            so, sn = row.get("setup") or {}, nr.get("setup") or {}
            if (so.get("n"), so.get("seed")) != (sn.get("n"), sn.get("seed")):
                cmp.warnings.append(f"{name}: row '{key[0]}' changed N/seed ({so.get('n')}/{so.get('seed')} "
                                    f"-> {sn.get('n')}/{sn.get('seed')})")
            for m, vo in (row.get("metrics") or {}).items():
                vo, vn = _num(vo), _num((nr.get("metrics") or {}).get(m))
                if vo is None or vn is None:
                    continue
                tol, how = _tol(vo, vn, rel_tol, (so.get("se") or {}).get(m), (sn.get("se") or {}).get(m), k)
                cmp.changes.append(Change(name, f"row: {key[0]} / {m}", vo, vn, tol, how))
    return cmp


__all__ = ["RESULT_SCHEMA", "Change", "Comparison", "compare", "load_results"]
