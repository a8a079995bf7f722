"""The score card: every metric in rows floor / baseline / model / oracle, at one N and seed.

A row records what produced it (seed, N, NFE, solver, guidance, wall time, hardware).
``bars`` are ratios to the floor/baseline rows with the target they must meet.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._version import __version__

ROW_ORDER = ("floor", "baseline", "model", "oracle")


def hardware() -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@dataclass
class Row:
    role: str                          # floor | baseline | model | oracle (or a variant label)
    metrics: dict[str, float]
    setup: dict[str, Any] = field(default_factory=dict)   # seed, n, nfe, solver, guidance, wall_s

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "metrics": self.metrics, "setup": self.setup}


@dataclass
class Bar:
    name: str
    value: float
    target: str         # human-readable, e.g. "<= 2.0"
    passed: bool
    detail: str = ""
    kind: str = "quality"   # quality | speed (wall-clock: compared with a wider tolerance)
    needs: str = ""         # the larger preset this bar is sized for, when this run's preset is smaller: shown, not counted

    def to_json(self) -> dict[str, Any]:
        return vars(self)


BAR_KINDS = ("quality", "speed")


def bar(name: str, value: float, op: str, limit: float, detail: str = "", kind: str = "quality") -> Bar:
    """A bar ``value op limit``; ``kind="speed"`` marks wall-clock measurements."""
    if kind not in BAR_KINDS:
        raise ValueError(f"bar kind must be one of {BAR_KINDS}, got {kind!r}")
    ok = {"<=": value <= limit, ">=": value >= limit, "<": value < limit, ">": value > limit}[op]
    return Bar(name, float(value), f"{op} {limit:g}", bool(ok), detail, kind)


@dataclass
class ScoreCard:
    domain: str
    rows: list[Row] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # name -> tensor/array kept for the report's previews (saved as <name>.samples.npz, not in the JSON)
    artifacts: dict[str, Any] = field(default_factory=dict)

    def row(self, role: str) -> Row:
        for r in self.rows:
            if r.role == role:
                return r
        raise KeyError(role)

    def defer(self, parts: tuple[str, ...], preset: str = "small") -> None:
        """Mark the bars whose names contain one of ``parts`` as sized for ``preset``: a smaller preset
        still reports them (value, pass/fail) but does not count them in "bars passed"."""
        for b in self.bars:
            if any(part in b.name for part in parts):
                b.needs = preset

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "panflow_version": __version__, "hardware": hardware(),
                "rows": [r.to_json() for r in self.rows], "bars": [b.to_json() for b in self.bars],
                "notes": self.notes,
                **{k: v for k, v in self.extra.items() if k != "markdown_sections"}}

    def to_markdown(self) -> str:
        metrics: list[str] = []
        for r in self.rows:
            metrics += [m for m in r.metrics if m not in metrics]
        lines = [f"## {self.domain} score card", ""]
        if self.rows:
            lines += ["| row | " + " | ".join(metrics) + " | N | NFE | solver | guidance | seed |",
                      "|---|" + "---|" * (len(metrics) + 5)]
        for r in self.rows:
            vals = [_fmt(r.metrics.get(m)) for m in metrics]
            s = r.setup
            lines.append(f"| {r.role} | " + " | ".join(vals) + f" | {s.get('n', '')} | {s.get('nfe', '')} | "
                         f"{s.get('solver', '')} | {s.get('guidance', '')} | {s.get('seed', '')} |")
        if self.bars:
            lines += ["", "| bar | value | target | passed |", "|---|---|---|---|"]
            lines += [f"| {b.name} | {_fmt(b.value)} | {b.target} | {'yes' if b.passed else '**no**'}"
                      + (f" (sized for `{b.needs}`, not counted)" if b.needs else "") + " |" for b in self.bars]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def loss_curve(source: list[dict] | str | Path) -> list[dict[str, float]]:
    """``[{"step", "loss"}, ...]`` from a Trainer's ``records`` or a run directory's ``metrics.jsonl``
    (empty when the run logged nothing), for a result's training-loss curve."""
    if isinstance(source, (str, Path)):
        path = Path(source) / "metrics.jsonl"
        recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    else:
        recs = source
    return [{"step": int(r["step"]), "loss": float(r["loss"])} for r in recs if "step" in r and "loss" in r]


def write_result(out_dir: str | Path, name: str, result: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jp, mp = out / f"{name}.json", out / f"{name}.md"
    jp.write_text(json.dumps(result, indent=2, sort_keys=False, default=str) + "\n")
    mp.write_text(markdown)
    return jp, mp
