"""report.html and its previews: encoders round-trip, the page has a section per benchmark with its
plots and previews, a domain without a hook says so, and the core never imports matplotlib at import."""

import base64
import json
import re
import struct
import subprocess
import sys
import wave
import xml.etree.ElementTree as ET
import zlib
from io import BytesIO

import numpy as np
import pytest

from panflow import DataError, Preview, ScoreCard, bar, image_grid, png_bytes, scatter_svg, wav_bytes
from panflow.cli import main
from panflow.report import ReportError, facts, report_html, sweeps
from panflow.summary import summary_markdown


def _decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,), tag = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(tag + body) & 0xFFFFFFFF
        chunks[tag] = body
        pos += 12 + n
    w, h, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    ch = {0: 1, 2: 3}[colour]
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + w * ch)
    assert (raw[:, 0] == 0).all()  # filter type none on every scanline
    return raw[:, 1:].reshape(h, w, ch)


def test_png_round_trip_grey_and_rgb():
    grey = np.linspace(0, 1, 12).reshape(3, 4)
    assert (_decode_png(png_bytes(grey))[..., 0] == np.round(grey * 255).astype(np.uint8)).all()
    rgb = np.random.default_rng(0).random((5, 7, 3))
    assert (_decode_png(png_bytes(rgb)) == (rgb * 255 + 0.5).astype(np.uint8)).all()
    with pytest.raises(DataError, match="expects"):
        png_bytes(np.zeros((2, 2, 4)))


def test_image_grid_places_each_tile():
    tiles = np.stack([np.full((2, 3), i / 5) for i in range(5)])
    g = image_grid(tiles, cols=2, pad=1)
    assert g.shape == (3 * 3 + 1, 2 * 4 + 1)
    assert g[1, 1] == 0.0 and g[1, 5] == 0.2 and g[4, 1] == 0.4 and g[7, 1] == 0.8 and g[7, 5] == 1.0  # last cell empty


def test_wav_round_trip():
    t = np.arange(800) / 8000
    x = np.sin(2 * np.pi * 440 * t)
    with wave.open(BytesIO(wav_bytes(x, 8000))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (8000, 1, 2, 800)
        pcm = np.frombuffer(w.readframes(800), "<i2") / 32767
    assert np.abs(pcm - 0.9 * x).max() < 1e-4


def test_scatter_svg_is_xml_with_one_circle_per_point():
    root = ET.fromstring(scatter_svg({"a": np.zeros((3, 2)), "b <x>": np.ones((4, 2))}))
    assert len(root.findall("{http://www.w3.org/2000/svg}circle")) == 7


def _result(name: str, preset: str = "quick") -> dict:
    card = ScoreCard(name)
    card.bars = [bar("w2 / floor", 1.2, "<=", 1.5), bar("ring W2 / floor", 3.0, "<=", 1.5)]
    card.defer(("ring",))
    sweep = [{"solver": s, "nfe": k, "n": 100, "sample_s": 0.5, "w2": 1.0 / k} for s in ("euler", "heun") for k in (2, 4)]
    return {"benchmark": name, "domain": name, "preset": preset, "seed": 0, "wall_s": 60.0, "headline": ["w2"],
            "rows": [{"role": "floor", "metrics": {"w2": 0.2}, "setup": {"n": 100}},
                     {"role": "baseline", "metrics": {"w2": 0.9}, "setup": {"n": 100}},
                     {"role": "model", "metrics": {"w2": 0.3}, "setup": {"n": 100, "nfe": 4, "solver": "heun"}}],
            "bars": [b.to_json() for b in card.bars],
            "training": {"m": {"train_s": 30.0, "params": 1234, "sweep": sweep,
                               "loss_curve": [{"step": s, "loss": 1.0 / s} for s in (1, 10, 100)]}}}


def test_sweeps_facts_and_deferred_bars():
    d = _result("a")
    (path, metric, recs), = sweeps(d, "w2")
    assert path == "training.m.sweep" and metric == "w2" and len(recs) == 4
    f = facts(d, "w2", "")
    assert f["train_s"] == 30.0 and f["params"] == [1234] and f["nfe"] == 4 and f["sample_ms"] == pytest.approx(5.0)
    md = summary_markdown({"a": d}, {})
    assert "| 1/1 (+0/1 sized for small) |" in md  # the deferred bar is shown, not counted
    assert "Plumbing check" not in md and "Plumbing check" in summary_markdown({"a": _result("a", "smoke")}, {})


def test_report_has_a_section_per_benchmark_with_plots_and_previews(tmp_path):
    for n in ("a", "b"):
        (tmp_path / f"{n}.json").write_text(json.dumps(_result(n)))
    seen = []

    def hook(result, samples):
        seen.append((result["benchmark"], sorted(samples)))
        return [Preview("grid", "png", png_bytes(np.zeros((2, 2)))), Preview("clip", "wav", wav_bytes(np.ones(8), 8000)),
                Preview("excerpt", "text", b"<b>tokens</b>", "escaped")]

    np.savez(tmp_path / "a.samples.npz", x=np.zeros(3))
    page = report_html(tmp_path, {}, {"a": hook})
    assert seen == [("a", ["x"])]
    assert re.findall(r'<section class="benchmark" id="bench-(\w+)"', page) == ["a", "b"]
    a, b = page.split('id="bench-a"')[1].split('id="bench-b"')
    assert a.count("data:image/png;base64,") == 3 and "data:audio/wav;base64," in a and "&lt;b&gt;tokens" in a
    assert "no preview supplied" in b and "no preview supplied" not in a
    assert "sized for small, not counted" in a
    assert not re.search(r'(src|href)="(https?:)?//', page)  # self-contained: nothing fetched
    img = re.search(r'src="data:image/png;base64,([^"]+)"', a).group(1)
    assert base64.b64decode(img)[:4] == b"\x89PNG"


def test_report_cli_and_missing_matplotlib(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.json").write_text(json.dumps(_result("a")))
    assert main(["bench", "report", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").read_text().count('class="benchmark"') == 1
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ReportError, match=r'pip install "panflow\[report\]"'):
        report_html(tmp_path, {}, {})
    assert main(["bench", "report", str(tmp_path)]) == 2
    assert "panflow[report]" in capsys.readouterr().err


@pytest.mark.slow
def test_core_does_not_import_matplotlib_at_import_time():
    code = ("import sys, panflow, panflow.bench, panflow.report, panflow.cli; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


class _Registry:
    def __init__(self, benches):
        self.benches = benches

    def all(self, kind):
        return list(self.benches) if kind == "benchmark" else []


def test_bench_skips_a_benchmark_without_the_preset_and_labels_smoke(tmp_path, monkeypatch):
    import panflow.bench as bench
    from panflow import Benchmark

    def run(preset, out_dir, seed):
        card = ScoreCard("fake")
        card.bars.append(bar("x", 1.0, "<=", 2.0))
        card.artifacts["pts"] = np.zeros((5, 2))
        return card

    hook = lambda result, samples: [Preview("pts", "svg", scatter_svg({"p": samples["pts"]}))]  # noqa: E731
    benches = [Benchmark("fake", "fake", run, presets=("smoke", "quick"), previews=hook),
               Benchmark("old", "old", run, presets=("smoke", "small", "full"))]
    monkeypatch.setattr(bench, "get_registry", lambda: _Registry(benches))
    logs = []
    written = bench.run_benchmarks(None, "quick", tmp_path / "q", log=logs.append)
    assert list(written) == ["fake"] and any("old: skipped, it has no 'quick' preset" in m for m in logs)
    page = (tmp_path / "q" / "report.html").read_text()
    assert "<svg" not in page and "data:image/svg+xml;base64," in page and "Plumbing" not in page
    bench.run_benchmarks(None, "smoke", tmp_path / "s", log=logs.append)
    res = json.loads((tmp_path / "s" / "fake.json").read_text())
    assert res["plumbing_only"] is True and 0 <= res["cpu_s"] <= res["wall_s"] + 1
    assert "Plumbing check" in (tmp_path / "s" / "fake.md").read_text()
    assert "plumbing check, not a quality result" in " ".join(logs)
    assert "Plumbing check" in (tmp_path / "s" / "report.html").read_text()


def test_dry_run_finds_quick_results_in_their_own_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "benchmarks" / "results" / "quick"
    folder.mkdir(parents=True)
    (folder / "toy2d.json").write_text(json.dumps({"benchmark": "toy2d", "preset": "quick", "wall_s": 48.0}))
    assert main(["bench", "--domains", "toy2d", "--preset", "quick", "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "~0.8 min, from" in capsys.readouterr().out


def test_compare_reports_but_does_not_judge_bars_sized_for_a_larger_preset():
    from panflow.compare import compare

    old, new = _result("a"), _result("a")
    new["bars"] = [dict(b, value=9.0, passed=False) for b in new["bars"]]  # both bars now fail
    cmp = compare({"a": old}, {"a": new})
    assert [c.what for c in cmp.regressions] == ["bar: w2 / floor"]  # the counted one
    assert any("ring W2 / floor" in w and "sized for small" in w for w in cmp.warnings)
