import json

import pytest
import torch

from panflow import DataError, DatasetOptions
from panflow.bench import run_benchmarks
from panflow_toy2d.data import DATASETS, load_toy
from panflow_toy2d.metrics import mode_coverage, wasserstein2


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_datasets_assign_their_own_samples_to_modes(name):
    toy = DATASETS[name]()
    x, mode = toy.sample(5000, torch.Generator().manual_seed(0))
    assigned = toy.mode_of(x)
    assert float((assigned == mode).double().mean()) > 0.97
    cov = mode_coverage(toy, x)
    assert cov["coverage"] == 1.0 and cov["in_mode"] > 0.97
    if toy.has_density:
        lp = toy.log_prob(x)
        assert bool(torch.isfinite(lp).all())


def test_gmm_density_integrates_to_one():
    toy = DATASETS["gmm"]()
    g = torch.linspace(-6, 6, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    mass = float(toy.log_prob(pts).exp().sum() * (g[1] - g[0]) ** 2)
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_w2_is_exact_for_a_translation():
    x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    assert wasserstein2(x, x + torch.tensor([0.3, -0.4])) == pytest.approx(0.5, abs=1e-6)
    assert wasserstein2(x, x[torch.randperm(400)]) == pytest.approx(0.0, abs=1e-9)


def test_collapsed_samples_lose_coverage():
    toy = DATASETS["8gaussians"]()
    x, _ = toy.sample(2000, torch.Generator().manual_seed(0))
    one_mode = x[toy.mode_of(x) == 0]
    assert mode_coverage(toy, one_mode)["coverage"] == pytest.approx(1 / 8)


def test_generated_data_rejects_user_path():
    with pytest.raises(DataError, match="generated"):
        load_toy("moons", DatasetOptions(path="/tmp/x"))


def test_benchmark_smoke_writes_json_and_markdown(tmp_path):
    paths = run_benchmarks(["toy2d"], "smoke", tmp_path, log=lambda m: None)
    result = json.loads(paths["toy2d"].read_text())
    assert result["preset"] == "smoke" and result["hardware"]["torch"]
    roles = [r["role"] for r in result["rows"]]
    assert any(r.startswith("floor") for r in roles) and any(r.startswith("baseline") for r in roles)
    assert "overhead" in result and result["overhead"]["bare_s_per_step"] > 0
    assert (tmp_path / "toy2d.md").read_text().startswith("# Benchmark `toy2d`")
