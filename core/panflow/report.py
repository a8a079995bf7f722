"""``report.html``: every benchmark result in one self-contained page (inline PNG/SVG/WAV, no CDN).

One summary row per benchmark (headline metric's floor / baseline / model / oracle, bars, train time,
sample time per item, NFE, parameters), then one section per benchmark with a plot of quality against
NFE for each solver (from every sweep its result records: lists of ``{"solver", "nfe", metric...}``),
its training-loss curves (lists of ``{"step", "loss"}``), its bars and the previews its
``Benchmark.previews`` hook supplies. Plots need matplotlib (``pip install "panflow[report]"``);
it is imported only when a page is built.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .compare import load_results
from .errors import PanflowError
from .presets import PLUMBING_ONLY
from .preview import Preview, load_artifacts
from .summary import KINDS, pick_row, summary_rows

SKIP_KEYS = {"nfe", "n", "sample_s", "guidance", "tol", "seed", "step", "wall_s"}
CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child{text-align:left}.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}
.plumbing{background:#fff3cd;border:1px solid #e0c36c;padding:.6em 1em}.previews{display:flex;flex-wrap:wrap;gap:1.5em}
figure{margin:0}figcaption{font-size:13px;color:#555;max-width:420px}.none{color:#777;font-style:italic}"""


class ReportError(PanflowError):
    """The report could not be built (e.g. matplotlib is not installed)."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ReportError('report.html needs matplotlib for its plots: pip install "panflow[report]"') from exc
    return plt


def _walk(obj: Any, path: str = ""):
    """Yield ``(path, value)`` for every dict value and list item of a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"{path}.{k}" if path else str(k), v
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")


def _records(result: dict, must: tuple[str, ...]) -> list[tuple[str, list[dict]]]:
    """Every list of dicts in ``result`` whose items all carry the keys ``must``, with its JSON path."""
    found = []
    for path, v in _walk(result):
        if isinstance(v, list) and v and all(isinstance(x, dict) and all(k in x for k in must) for x in v):
            found.append((path, v))
    return found


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def sweeps(result: dict, metric: str = "") -> list[tuple[str, str, list[dict]]]:
    """``(json path, metric plotted, records)`` for each quality-against-NFE sweep of a result: the
    headline ``metric`` when the records have it, else their first numeric quality key."""
    out = []
    for path, recs in _records(result, ("solver", "nfe")):
        keys = [k for k, v in recs[0].items() if _number(v) and k not in SKIP_KEYS]
        m = metric if metric in recs[0] else (keys[0] if keys else "")
        if m:
            out.append((path, m, recs))
    return out


def _png_figure(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def sweep_plot(path: str, metric: str, recs: list[dict]) -> bytes:
    """PNG: ``metric`` against NFE, one line per solver (and guidance scale, when it varies)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.3))
    guid = {r.get("guidance") for r in recs}
    lines: dict[str, list[tuple[float, float]]] = {}
    for r in recs:
        if _number(r.get(metric)) and _number(r.get("nfe")):
            label = str(r["solver"]) + (f" (w={r['guidance']:g})" if len(guid) > 1 and _number(r.get("guidance")) else "")
            lines.setdefault(label, []).append((float(r["nfe"]), float(r[metric])))
    for label, pts in lines.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label, ms=4)
    if any(p[0] > 0 for pts in lines.values() for p in pts):
        ax.set_xscale("log", base=2)
    ax.set_xlabel("NFE (function evaluations)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against NFE ({path})", fontsize=9)
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=7)
    return _png_figure(fig)


def curve_plot(curves: list[tuple[str, list[dict]]], key: str) -> bytes:
    """PNG: ``key`` against training step for each curve."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.3))
    for path, recs in curves:
        pts = sorted((r["step"], r[key]) for r in recs if _number(r.get(key)) and _number(r.get("step")))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", label=path)
    ax.set_xlabel("training step")
    ax.set_ylabel(key)
    if key == "loss" and all(r[key] > 0 for _, recs in curves for r in recs if _number(r.get(key))):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"training {key}", fontsize=9)
    return _png_figure(fig)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def facts(result: dict, metric: str, section: str) -> dict[str, Any]:
    """Train time (sum of every recorded ``train_s``), parameters (every recorded ``params``), and the
    headline model row's NFE and sample time per item (its ``wall_s / n``, else the sweep record with
    the same solver and NFE)."""
    train = [v for p, v in _walk(result) if p.split(".")[-1] == "train_s" and _number(v)]
    params = sorted({int(v) for p, v in _walk(result) if p.split(".")[-1] == "params" and _number(v)})
    row = pick_row(result.get("rows", []), KINDS["model"], metric, section) if metric else None
    setup = (row or {}).get("setup", {})
    per_item = None
    if _number(setup.get("wall_s")) and _number(setup.get("n")) and setup["n"]:
        per_item = setup["wall_s"] / setup["n"]
    else:
        for _, _, recs in sweeps(result, metric):
            for r in recs:
                if r.get("solver") == setup.get("solver") and r.get("nfe") == setup.get("nfe") and \
                        _number(r.get("sample_s")) and _number(r.get("n")) and r["n"]:
                    per_item = r["sample_s"] / r["n"]
    return {"train_s": sum(train) if train else None, "params": params, "nfe": setup.get("nfe"),
            "sample_ms": None if per_item is None else per_item * 1e3}


def _img(data: bytes, mime: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'


def _preview_html(p: Preview) -> str:
    mime = p.mime()
    if mime.startswith("image/"):
        body = _img(p.data, mime, p.title)
    elif mime.startswith("audio/"):
        body = f'<audio controls src="data:{mime};base64,{base64.b64encode(p.data).decode()}"></audio>'
    else:
        body = f"<pre>{html.escape(p.data.decode('utf-8', 'replace'))}</pre>"
    return (f'<figure class="preview"><div><b>{html.escape(p.title)}</b></div>{body}'
            f"<figcaption>{html.escape(p.caption)}</figcaption></figure>")


def _section(name: str, d: dict, head: tuple[str, ...], hook: Callable | None, folder: Path) -> str:
    metric, section = (tuple(head) + ("", ""))[:2]
    parts = [f'<section class="benchmark" id="bench-{html.escape(name)}" data-domain="{html.escape(str(d.get("domain", "")))}">',
             f"<h2>{html.escape(name)} <small>({html.escape(str(d.get('domain', '?')))}, preset "
             f"{html.escape(str(d.get('preset', '?')))}, seed {_fmt(d.get('seed'))})</small></h2>"]
    if d.get("preset") in PLUMBING_ONLY:
        parts.append('<p class="plumbing">Plumbing check (preset smoke): seconds of training; these numbers show '
                     "that the pipeline runs, not how good the model is.</p>")
    bars = d.get("bars", [])
    if bars:
        parts.append("<table><tr><th>bar</th><th>value</th><th>target</th><th>passed</th></tr>" + "".join(
            f"<tr><td>{html.escape(str(b.get('name')))}</td><td>{_fmt(b.get('value'))}</td><td>{_fmt(b.get('target'))}"
            f"</td><td class=\"{'pass' if b.get('passed') else 'fail'}\">{'yes' if b.get('passed') else 'no'}"
            + (f" (sized for {html.escape(str(b['needs']))}, not counted)" if b.get("needs") else "") + "</td></tr>"
            for b in bars) + "</table>")
    sw = sweeps(d, metric)
    parts.append("<h3>Quality against NFE</h3>")
    parts.append("".join(_img(sweep_plot(p, m, recs), "image/png", f"{m} against NFE") for p, m, recs in sw)
                 or '<p class="none">no quality-against-NFE sweep recorded</p>')
    curves = _records(d, ("step", "loss"))
    parts.append("<h3>Training loss</h3>")
    parts.append(_img(curve_plot(curves, "loss"), "image/png", "training loss") if curves
                 else '<p class="none">no training-loss curve recorded</p>')
    parts.append("<h3>Previews</h3>")
    if hook is None:
        parts.append('<p class="none">no preview supplied (this benchmark registers no previews hook)</p>')
    elif not (folder / f"{name}.samples.npz").exists():
        parts.append(f'<p class="none">no preview: no samples were saved with this result ({html.escape(name)}.samples.npz '
                     "is missing; results written before previews existed keep none)</p>")
    else:
        samples = load_artifacts(folder / f"{name}.samples.npz")
        try:
            previews = hook(d, samples)
        except Exception as exc:  # a broken preview must not cost the page
            previews, err = [], f"{type(exc).__name__}: {exc}"
            parts.append(f'<p class="none">previews failed: {html.escape(err)}</p>')
        parts.append('<div class="previews">' + "".join(_preview_html(p) for p in previews) + "</div>" if previews
                     else '<p class="none">no preview supplied (the hook returned none; were samples saved?)</p>')
    parts.append("</section>")
    return "\n".join(parts)


def report_html(folder: str | Path, headlines: dict[str, tuple[str, ...]], hooks: dict[str, Callable]) -> str:
    """The page for every result in ``folder``; ``hooks`` maps benchmark names to previews hooks."""
    folder = Path(folder)
    results = load_results(folder)
    _pyplot()  # fail early, with the install command, before any work
    rows = []
    for r in summary_rows(results, headlines):
        d = results[r["benchmark"]]
        head = tuple(headlines.get(r["benchmark"]) or d.get("headline") or ())
        f = facts(d, *((head + ("", ""))[:2]))
        cls = "pass" if r["all_passed"] else "fail"
        rows.append(f"<tr><td><a href=\"#bench-{html.escape(r['benchmark'])}\">{html.escape(r['benchmark'])}</a></td>"
                    f"<td>{html.escape(r['preset'])}</td><td>{html.escape(r['headline'])}</td>"
                    + "".join(f"<td>{_fmt(r[k])}</td>" for k in KINDS)
                    + f"<td class=\"{cls}\">{r['bars']}</td><td>{_fmt(None if f['train_s'] is None else f['train_s'] / 60)}</td>"
                    f"<td>{_fmt(f['sample_ms'])}</td><td>{_fmt(f['nfe'])}</td>"
                    f"<td>{' / '.join(f'{p:,}' for p in f['params']) or '–'}</td><td>{r['wall_min']:.1f}</td></tr>")
    table = ("<table><tr><th>benchmark</th><th>preset</th><th>headline</th><th>floor</th><th>baseline</th><th>model</th>"
             "<th>oracle</th><th>bars passed</th><th>train (min)</th><th>sample (ms/item)</th><th>NFE</th>"
             "<th>parameters</th><th>wall (min)</th></tr>" + "\n".join(rows) + "</table>")
    sections = [_section(n, results[n], tuple(headlines.get(n) or results[n].get("headline") or ()), hooks.get(n), folder)
                for n in sorted(results)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>panflow benchmark report</title>"
            f"<style>{CSS}</style></head><body>\n<h1>panflow benchmark report</h1>\n"
            "<p>One row per benchmark: its headline metric in the floor (real vs real), baseline, model and oracle rows "
            "of its score card, the bars it passes, training time, sampling time per item and NFE of the model row, "
            "and parameter counts. Each benchmark's section below has its plots and previews.</p>\n"
            f"{table}\n" + "\n".join(sections) + "\n</body></html>\n")


def write_report(folder: str | Path, headlines: dict[str, tuple[str, ...]], hooks: dict[str, Callable]) -> Path:
    """Write ``<folder>/report.html`` from every result in ``folder``."""
    path = Path(folder) / "report.html"
    path.write_text(report_html(folder, headlines, hooks), encoding="utf-8")
    return path


__all__ = ["ReportError", "report_html", "write_report", "sweeps", "facts"]
