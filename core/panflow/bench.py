"""``panflow bench``: run the benchmarks installed plugins register and write their results."""

from __future__ import annotations

import json
import math
import resource
import time
from pathlib import Path
from typing import Any

from . import progress
from .compare import RESULT_SCHEMA
from .default_eval import default_benchmark, domain_metrics
from .errors import DataError, PanflowError, UnknownNameError
from .plugins import get_registry
from .presets import PLUMBING_ONLY, PRESETS
from .preview import save_artifacts
from .scorecard import ScoreCard, hardware, write_result
from .summary import write_summary

PLUMBING_NOTE = ("Plumbing check (preset smoke): seconds of training, to show the pipeline runs; these numbers are "
                 "not a quality result. `panflow bench --preset quick` is the first run that shows the models working.")


def select_benchmarks(domains: list[str] | None, preset: str) -> list:
    """The benchmarks ``panflow bench`` would run (registered ones, then defaults for domains without)."""
    reg = get_registry()
    benches = reg.all("benchmark")
    covered = {b.domain for b in benches}  # a domain without a benchmark gets the default one, if it can be scored
    benches += [default_benchmark(d.name) for d in reg.all("domain")
                if d.name not in covered and (d.evaluate is not None or domain_metrics(reg, d.name))]
    if domains:
        known = {b.domain for b in benches} | {b.name for b in benches}
        for d in domains:
            if d not in known:
                raise UnknownNameError("benchmark domain", d, known)
        benches = [b for b in benches if b.domain in domains or b.name in domains]
    if preset not in PRESETS:
        raise UnknownNameError("preset", preset, PRESETS)
    return benches


SOURCE_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"  # a source checkout's results


def plan(domains: list[str] | None, preset: str, out_dir: str | Path, history: str | Path | None = None):
    """``(name, domain, estimated seconds or None, where the estimate comes from)`` per benchmark: the
    wall time of the last recorded run of the same benchmark and preset, looked up in ``out_dir``,
    ``history``, ``./benchmarks/results`` (and its ``<preset>/`` folder) and the source checkout's
    committed results."""
    rows = []
    folders = [Path(out_dir), *([Path(history)] if history else [])]
    folders += [base / sub for base in (Path("benchmarks/results"), SOURCE_RESULTS) for sub in ("", preset)]
    for b in select_benchmarks(domains, preset):
        est, src = None, "no recorded run of this preset"
        for folder in dict.fromkeys(p.resolve() for p in folders):
            f = folder / f"{b.name}.json"
            try:
                d = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            wall = d.get("wall_s") if isinstance(d, dict) else None
            if isinstance(wall, (int, float)) and math.isfinite(wall) and d.get("preset") == preset:
                cpu = d.get("cpu_s")
                est, src = float(d["wall_s"]), f"{f} ({(d.get('hardware') or {}).get('cpu_threads', '?')} threads" + (
                    f"; {cpu / 60:.1f} min of CPU, the wall time on a free core for a one-thread run)"
                    if isinstance(cpu, (int, float)) and math.isfinite(cpu) else ")")
                break
        rows.append((b.name, b.domain, est, src))
    return rows


def run_benchmarks(domains: list[str] | None = None, preset: str = "smoke", out_dir: str | Path = "benchmarks/results",
                   seed: int = 0, log=print) -> dict[str, Path]:
    """Run each selected benchmark; write ``<out_dir>/<name>.json`` and ``.md``; return the JSON paths."""
    benches = select_benchmarks(domains, preset)
    estimates = {name: est for name, _, est, _ in plan(domains, preset, out_dir)} if progress.enabled() else {}
    written: dict[str, Path] = {}
    errors: list[str] = []
    if preset in PLUMBING_ONLY:
        log(f"[bench] {PLUMBING_NOTE}")
    for b in benches:
        if preset not in b.presets:
            log(f"[bench] {b.name}: skipped, it has no '{preset}' preset (it offers {', '.join(b.presets)})")
            continue
        est = estimates.get(b.name)
        log(f"[bench] {b.name} ({b.domain}, preset={preset}) ..."
            + (f" (last recorded run: {est / 60:.1f} min)" if est is not None else ""))
        t0, c0 = time.perf_counter(), _cpu_s()
        try:
            with progress.timed(f"{b.name} ({preset})", est):
                card: ScoreCard = b.run(preset=preset, out_dir=Path(out_dir), seed=seed)
        except Exception as exc:  # one broken benchmark must not cost the others their run
            errors.append(f"{b.name}: {type(exc).__name__}: {exc}")
            log(f"[bench] {b.name}: FAILED after {time.perf_counter() - t0:.1f} s: {type(exc).__name__}: {exc}")
            continue
        wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
        command = f"panflow bench --domains {b.domain} --preset {preset} --out {out_dir}"
        result: dict[str, Any] = {"schema": RESULT_SCHEMA, "benchmark": b.name, "plugin": b.plugin, "preset": preset,
                                  "seed": seed, "wall_s": wall, "cpu_s": cpu, "command": command,
                                  "plumbing_only": preset in PLUMBING_ONLY, **card.to_json()}
        result["hardware"] = hardware()
        md = f"# Benchmark `{b.name}` (preset `{preset}`, seed {seed})\n\n"
        md += f"> **{PLUMBING_NOTE}**\n\n" if preset in PLUMBING_ONLY else ""
        md += card.to_markdown()
        for section in card.extra.get("markdown_sections", []):
            md += "\n" + section + "\n"
        md += f"\nWall time: {wall:.1f} s on {result['hardware']['processor']} " \
              f"({result['hardware']['cpu_threads']} threads, torch {result['hardware']['torch']}).\n" \
              f"Command: `{command}`\n"
        jp, _ = write_result(out_dir, b.name, {k: v for k, v in result.items() if k != "markdown_sections"}, md)
        art = Path(out_dir) / f"{b.name}.samples.npz"
        if card.artifacts:
            save_artifacts(art, card.artifacts)
        elif art.exists():
            art.unlink()  # an older run's samples must not preview this one
        held = [x for x in card.bars if not x.needs]
        failed = [x.name for x in held if not x.passed]
        later = [x for x in card.bars if x.needs]
        tag = " (plumbing check, not a quality result)" if preset in PLUMBING_ONLY else ""
        log(f"[bench] {b.name}: {wall:.1f} s{tag}, bars {len(held) - len(failed)}/{len(held)} passed"
            + (f" (failed: {', '.join(failed)})" if failed else "")
            + (f"; {sum(x.passed for x in later)}/{len(later)} bars sized for a larger preset pass" if later else "")
            + f" -> {jp}")
        written[b.name] = jp
    if written:
        try:
            log(f"[bench] summary -> {write_summary(out_dir, headlines())}")
        except DataError as exc:  # another tool's JSON in the folder must not fail the run
            log(f"[bench] no summary.md: {exc}")
        try:
            log(f"[bench] report -> {write_report(out_dir)}")
        except PanflowError as exc:  # no matplotlib, or another tool's JSON: the results stand without the page
            log(f"[bench] no report.html: {exc}")
    if errors:
        raise PanflowError(f"{len(errors)} of {len(benches)} benchmark(s) failed (the others were written): "
                           + "; ".join(errors))
    return written


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (benchmarks may train in subprocesses)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def write_report(out_dir: str | Path) -> Path:
    """``<out_dir>/report.html`` from the results there, with the installed benchmarks' previews hooks."""
    from .report import write_report as _write

    hooks = {b.name: b.previews for b in get_registry().all("benchmark") if b.previews is not None}
    return _write(out_dir, headlines(), hooks)


def headlines() -> dict[str, tuple[str, ...]]:
    """Each installed benchmark's declared headline (``Benchmark.headline``)."""
    return {b.name: tuple(b.headline) for b in get_registry().all("benchmark") if b.headline}
