"""``panflow bench compare``: an identical re-run passes, a degraded run is flagged, old results load."""

import json

import pytest

from panflow import DataError
from panflow.bench import run_benchmarks
from panflow.cli import main
from panflow.compare import RESULT_SCHEMA, compare, load_results


def _result(value: float, passed: bool, metric: float, kind: str = "quality", schema: int | None = None) -> dict:
    d = {"benchmark": "b", "preset": "small", "seed": 0,
         "rows": [{"role": "model", "metrics": {"w2": metric}, "setup": {"n": 100, "seed": 0}}],
         "bars": [{"name": "w2 / floor", "value": value, "target": "<= 1.5", "passed": passed, "kind": kind}]}
    if schema is not None:
        d["schema"] = schema
    return d


def test_bar_direction_and_tolerance_decide_a_regression():
    same = compare({"b": _result(1.2, True, 0.3)}, {"b": _result(1.2, True, 0.3)})
    assert not same.regressions and not same.moved
    worse = compare({"b": _result(1.2, True, 0.3)}, {"b": _result(1.9, False, 0.5)})
    assert [c.what for c in worse.regressions] == ["bar: w2 / floor"] and "now fails" in worse.regressions[0].note
    assert any(c.what == "row: model / w2" and not c.regression for c in worse.moved)  # rows: moved, not judged
    better = compare({"b": _result(1.9, False, 0.5)}, {"b": _result(1.2, True, 0.3)})
    assert not better.regressions and better.moved[0].note == "now passes"
    flip = compare({"b": _result(1.49, True, 0.3)}, {"b": _result(1.51, False, 0.3)})  # seeded quality: a flip counts
    assert flip.regressions and flip.failed
    slow = compare({"b": _result(1.4, True, 0.3, "speed")}, {"b": _result(1.6, False, 0.3, "speed")})
    assert not slow.regressions and any("speed tolerance" in w for w in slow.warnings)  # wall-clock wobble
    nan = compare({"b": _result(1.2, True, 0.3)}, {"b": _result(float("nan"), False, float("nan"))})
    assert nan.regressions and "now" in nan.regressions[0].note  # a diverged run is not skipped
    gone = compare({"b": _result(1.2, True, 0.3), "c": _result(1.0, True, 0.1)}, {"b": {**_result(1.2, True, 0.3),
                                                                                      "bars": []}})
    assert not gone.regressions and gone.failed and len(gone.missing) == 2  # a lost bar and a lost benchmark
    small = compare({"b": {**_result(0.0, True, 0.3), "bars": [{"name": "x", "value": 0.0, "target": "<= 0.01",
                                                                "passed": True}]}},
                    {"b": {**_result(0.0, True, 0.3), "bars": [{"name": "x", "value": 1e-4, "target": "<= 0.01",
                                                                "passed": True}]}})
    assert not small.regressions  # the tolerance scales with the limit, not only with values near 0


def test_old_schema_results_load_and_newer_ones_are_refused(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps(_result(1.0, True, 0.3)))  # schema 1: no key
    (tmp_path / "other.json").write_text(json.dumps({"not": "a result"}))
    assert set(load_results(tmp_path)) == {"b"}
    new = tmp_path / "new.json"
    new.write_text(json.dumps(_result(1.0, True, 0.3, schema=RESULT_SCHEMA + 1)))
    with pytest.raises(DataError, match="newer"):
        load_results(new)
    dup = tmp_path / "dup"
    dup.mkdir()
    for n in ("a", "b"):
        (dup / f"{n}.json").write_text(json.dumps(_result(1.0, True, 0.3)))
    with pytest.raises(DataError, match="second result"):
        load_results(dup)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="bad.json"):
        load_results(tmp_path)


def _scored_run(model, nfe: int) -> dict:
    """A real result: a trained 8-gaussians flow sampled at ``nfe`` Euler steps, W2 against held-out data."""
    import torch

    from panflow import DatasetOptions, FlowObjective, Row, SampleOptions, ScoreCard, bar
    from panflow_toy2d.data import load_toy
    from panflow_toy2d.metrics import wasserstein2

    val = load_toy("8gaussians", DatasetOptions(seed=1, options={"n_train": 10, "n_val": 500})).val.x
    res = FlowObjective().generate(model, (500, 2), SampleOptions("euler", nfe=nfe),
                                   generator=torch.Generator().manual_seed(0))
    card = ScoreCard("toy")
    w2 = wasserstein2(res.x, val)
    card.rows.append(Row("model", {"w2": w2}, {"n": 500, "seed": 0, "nfe": nfe}))
    card.bars.append(bar("W2 at the run's NFE", w2, "<=", 0.8))
    return {"b": {"benchmark": "b", "preset": "small", "seed": 0, **card.to_json()}}


@pytest.mark.slow
def test_compare_flags_sampling_at_nfe_1_and_passes_a_rerun():
    import torch

    from panflow import DatasetOptions, FlowObjective, Samples, TrainConfig, Trainer
    from panflow_toy2d.backbones import TimeMLP
    from panflow_toy2d.data import load_toy

    torch.manual_seed(0)
    data = load_toy("8gaussians", DatasetOptions(seed=0, options={"n_train": 20_000, "n_val": 10})).train
    tr = Trainer(TimeMLP(2, width=64, depth=3), FlowObjective(), Samples(data.x),
                 TrainConfig(steps=400, batch_size=256, lr=3e-3, progress=False, log_every=400, device="cpu"))
    tr.fit()
    good, again, nfe1 = _scored_run(tr.model, 16), _scored_run(tr.model, 16), _scored_run(tr.model, 1)
    assert not compare(good, again).moved
    flagged = compare(good, nfe1)
    assert [c.what for c in flagged.regressions] == ["bar: W2 at the run's NFE"], flagged.to_markdown()


@pytest.mark.slow
def test_identical_benchmark_rerun_passes_from_the_cli(tmp_path, capsys):
    run_benchmarks(["toy2d"], "smoke", tmp_path / "a", log=lambda m: None)
    run_benchmarks(["toy2d"], "smoke", tmp_path / "b", log=lambda m: None)
    a = json.loads((tmp_path / "a" / "toy2d.json").read_text())
    assert a["schema"] == RESULT_SCHEMA and a["command"].startswith("panflow bench --domains toy2d")
    assert main(["bench", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on-regression",
                 "--report", str(tmp_path / "cmp")]) == 0
    assert "0 regression(s)" in capsys.readouterr().out
    assert json.loads((tmp_path / "cmp.json").read_text())["schema"] == RESULT_SCHEMA
    # a degraded copy (one bar pushed the wrong way, as a broken run would) fails the guard
    bad = json.loads((tmp_path / "b" / "toy2d.json").read_text())
    q = next(b for b in bad["bars"] if b.get("kind") == "quality" and b["target"].startswith("<="))
    q["value"], q["passed"] = q["value"] * 3 + 1, False
    (tmp_path / "b" / "toy2d.json").write_text(json.dumps(bad))
    assert main(["bench", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on-regression"]) == 1
    assert main(["bench", "frobnicate"]) == 2


def test_dry_run_estimates_from_the_last_recorded_run(tmp_path, capsys):
    (tmp_path / "toy2d.json").write_text(json.dumps({"benchmark": "toy2d", "preset": "smoke", "wall_s": 90.0,
                                                     "hardware": {"cpu_threads": 2}}))
    assert main(["bench", "--domains", "toy2d", "--preset", "smoke", "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "~1.5 min" in out and "nothing was run" in out
    assert not (tmp_path / "toy2d.md").exists()
    assert main(["bench", "--domains", "toy2d", "--preset", "full", "--out", str(tmp_path), "--dry-run"]) == 0
    assert "no recorded run" in capsys.readouterr().out


def test_summary_picks_the_headline_rows_of_each_benchmark(tmp_path, capsys):
    from panflow.summary import summary_rows

    res = {"benchmark": "b", "preset": "small", "wall_s": 120.0,
           "bars": [{"name": "p", "passed": True}, {"name": "q", "passed": False}],
           "rows": [{"role": "floor · 6h", "metrics": {"crps": 1.0}}, {"role": "floor · 24h", "metrics": {"crps": 2.0}},
                    {"role": "baseline · persistence · 24h", "metrics": {"crps": 5.0}},
                    {"role": "model · 24h", "metrics": {"crps": 2.5}}, {"role": "ceiling · 24h", "metrics": {"crps": 2.2}}]}
    (row,) = summary_rows({"b": res}, {"b": ("crps", "24h")})
    assert (row["floor"], row["baseline"], row["model"], row["oracle"], row["bars"]) == (2.0, 5.0, 2.5, 2.2, "1/2")
    (row,) = summary_rows({"b": res}, {})  # no headline declared: bars and time only
    assert row["model"] is None and row["headline"] == "–"
    (tmp_path / "b.json").write_text(json.dumps(res))
    assert main(["bench", "summary", str(tmp_path)]) == 0
    assert "| b | small |" in (tmp_path / "summary.md").read_text()
