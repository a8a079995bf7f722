"""``panflow bench ablate``: one change at a time, scored on the benchmark's headline."""

import json

import pytest

import panflow
from panflow.ablation import VARIANTS, ablate, continuous_domains, headline_value
from panflow.ablation_report import verdict
from panflow.scorecard import Row, ScoreCard


def test_ablation_on_toy2d_smoke_writes_table_curve_and_plot(tmp_path):
    path = ablate(["toy2d"], "smoke", tmp_path, n=64, variants=["target=data", "path=vp-cosine"], log=lambda m: None)
    res = json.loads(path.read_text())
    dom = res["domains"]["toy2d"]
    names = [r["variant"] for r in dom["rows"]]
    assert names == ["default", "target=data", "path=vp-cosine", "default · seed+1"]  # default always first
    assert dom["rows"][0]["ratio"] == pytest.approx(1.0)
    assert dom["rows"][1]["overrides"] == {"flow.prediction": "data"}
    assert dom["seed_gap"] == pytest.approx(abs(dom["rows"][3]["value"] / dom["rows"][0]["value"] - 1))
    assert list(dom["nfe_curves"]) == ["default"]  # the few-step variants were not asked for
    curve = dom["nfe_curves"]["default"]
    assert [(c["solver"], c["nfe"]) for c in curve] == [("euler", 2), ("euler", 4), ("euler", 8), ("euler", 16),
                                                         ("heun", 4), ("heun", 8), ("heun", 16)]
    assert len({round(c["value"], 9) for c in curve}) > 1  # the sweep really changes the sampler
    md = (tmp_path / "ablation.md").read_text()
    assert "| toy2d | w2 @ 8gaussians ↓ |" in md and "target=data" in md
    assert not (tmp_path / "runs").exists()  # checkpoints are not results
    pytest.importorskip("matplotlib")
    assert (tmp_path / "ablation.png").stat().st_size > 1000


def test_unknown_variant_and_discrete_domain_are_clear_errors(tmp_path):
    with pytest.raises(panflow.UnknownNameError, match="target=data"):
        ablate(["toy2d"], "smoke", tmp_path, variants=["target=dat"])
    assert "text" not in continuous_domains(panflow.get_registry())  # masked objective: no affine path
    assert "toy2d" in continuous_domains(panflow.get_registry())
    with pytest.raises(panflow.ConfigError, match="cannot be ablated"):
        ablate(["text"], "smoke", tmp_path)
    assert not (tmp_path / "ablation.json").exists()  # nothing ran, nothing written


def test_headline_value_reads_the_section_row_and_names_what_is_missing():
    card = ScoreCard("w", rows=[Row("model · 6h", {"crps": 2.0}), Row("model · 24h", {"crps": 3.0}),
                                Row("model", {"fd": 1.5})])
    assert headline_value(card, "crps", "24h") == 3.0
    assert headline_value(card, "fd") == 1.5
    with pytest.raises(panflow.ConfigError, match="no model row with 'kid'"):
        headline_value(card, "kid")


def test_verdict_reads_moves_against_the_seed_gap_and_direction():
    assert verdict(0.9, 0.05, higher_is_better=False) == "better"
    assert verdict(0.9, 0.05, higher_is_better=True) == "worse"
    assert verdict(1.03, 0.05, higher_is_better=False) == "≈"
    assert verdict(None, 0.05, False) == "" and verdict(1.2, None, False) == ""


def test_every_registered_variant_changes_something_but_the_default():
    assert VARIANTS["default"].overrides == {}
    assert all(v.overrides and v.claim for k, v in VARIANTS.items() if k != "default")
    assert not VARIANTS["coupling=ot"].by_default and not VARIANTS["objective=shortcut"].by_default


def test_few_step_report_sweeps_the_few_step_variants_at_the_named_nfe(tmp_path):
    from panflow.ablation import parse_sweep

    sweep = parse_sweep("euler:1,2")
    path = ablate(["toy2d"], "smoke", tmp_path, n=64, variants=["objective=shortcut"], log=lambda m: None, sweep=sweep)
    dom = json.loads(path.read_text())["domains"]["toy2d"]
    assert list(dom["nfe_curves"]) == ["default", "objective=shortcut"]
    assert [(c["solver"], c["nfe"]) for c in dom["nfe_curves"]["objective=shortcut"]] == [("euler", 1), ("euler", 2)]
    assert "training time" in (tmp_path / "ablation.md").read_text()
    assert "--sweep 'euler:1,2'" in json.loads(path.read_text())["command"]


@pytest.mark.parametrize("text, match", [("eulr:1,2", "euler"), ("euler:", "NFE >= 1"), ("euler:0", "NFE >= 1"),
                                         ("euler:a", "NFE >= 1"), (";", "names no solver")])
def test_bad_sweeps_are_clear_errors(text, match):
    from panflow.ablation import parse_sweep

    with pytest.raises(panflow.PanflowError, match=match):
        parse_sweep(text)


def test_a_failing_variant_is_reported_and_the_rest_still_run(tmp_path, monkeypatch):
    from panflow.ablation import Variant

    monkeypatch.setitem(VARIANTS, "boom", Variant("boom", "test", {"train.max_bad_steps": -1}, "fails"))
    path = ablate(["toy2d"], "smoke", tmp_path, n=64, variants=["boom", "t=shifted"], log=lambda m: None,
                  sweep=(("euler", (2,)),))
    rows = {r["variant"]: r for r in json.loads(path.read_text())["domains"]["toy2d"]["rows"]}
    assert rows["boom"]["value"] is None and "max_bad_steps" in rows["boom"]["error"]
    assert rows["t=shifted"]["value"] is not None
    assert "failed†" in (tmp_path / "ablation.md").read_text()


def test_a_step_aware_variant_is_scored_at_a_step_count_it_was_trained_for(tmp_path, monkeypatch):
    from panflow.ablation import Variant

    sc = VARIANTS["objective=shortcut"]
    monkeypatch.setitem(VARIANTS, "sc6", Variant("sc6", "test", {**sc.overrides, "sample.solver": "euler",
                                                                "sample.nfe": 6}, "6 is no power of two"))
    path = ablate(["toy2d"], "smoke", tmp_path, n=64, variants=["sc6"], log=lambda m: None, sweep=(("euler", (2,)),))
    row = next(r for r in json.loads(path.read_text())["domains"]["toy2d"]["rows"] if r["variant"] == "sc6")
    assert row["value"] is not None and (row["solver"], row["nfe"]) == ("euler", 8)
    assert "(at euler NFE 8)" in (tmp_path / "ablation.md").read_text()


def test_an_interrupted_ablation_keeps_finished_domains(tmp_path):
    kw = dict(n=64, variants=["t=shifted"], log=lambda m: None, sweep=(("euler", (2,)),))
    first = json.loads(ablate(["toy2d"], "smoke", tmp_path, **kw).read_text())
    logs = []
    again = json.loads(ablate(["toy2d"], "smoke", tmp_path, **{**kw, "log": logs.append}).read_text())
    assert any("kept from the earlier run" in m for m in logs)
    assert again["domains"]["toy2d"] == first["domains"]["toy2d"]
    other = json.loads(ablate(["toy2d"], "smoke", tmp_path, **{**kw, "n": 32}).read_text())  # not comparable: rerun
    assert other["n"] == 32 and other["domains"]["toy2d"]["rows"][0]["value"] != first["domains"]["toy2d"]["rows"][0]["value"]


def test_ablation_varies_the_benchmarks_own_model():
    """Protein's benchmark scores an internal-coordinate model, not the domain's Cartesian default."""
    import tempfile

    pytest.importorskip("biotite")
    with tempfile.TemporaryDirectory() as d:
        res = json.loads(ablate(["protein"], "smoke", d, n=4, variants=["t=shifted"], log=lambda m: None,
                                sweep=(("euler", (2,)),)).read_text())
    dom = res["domains"]["protein"]
    assert dom["model_overrides"]["encoder.options"] == {"coords": "internal"}
    assert all(r.get("error") is None for r in dom["rows"])
