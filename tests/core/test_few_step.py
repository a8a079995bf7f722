"""Few-step generation in the core: minibatch-OT couplings and the shortcut objective (issue 19)."""

import dataclasses
import itertools
import json
import math

import pytest
import torch

from panflow import (
    ConditionSpec,
    ConfigError,
    DataSpec,
    FlowObjective,
    SampleOptions,
    Samples,
    ShortcutObjective,
    TrainConfig,
    Trainer,
)
from panflow.cli import main
from panflow.coupling import (
    COUPLINGS,
    CoupledObjective,
    auction_assignment,
    couple_objective,
    exact_ot_pairing,
    get_coupling,
    ot_pairing,
    sq_cost,
)
from panflow.masked import MaskedObjective
from panflow.shortcut import STEP


# -- couplings --------------------------------------------------------------------------------------
def test_auction_matches_brute_force_on_small_problems():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        cost = torch.rand(6, 6, generator=g, dtype=torch.float64)
        best = min(sum(cost[i, p[i]] for i in range(6)) for p in itertools.permutations(range(6)))
        col = auction_assignment(cost, tol=1e-6)
        assert sorted(col.tolist()) == list(range(6))
        assert float(cost[torch.arange(6), col].sum()) <= float(best) + 6 * 1e-6 * float(cost.mean()) + 1e-12


def test_ot_on_1d_gaussians_is_the_sorted_pairing():
    """In 1-D the optimal coupling of two samples is monotone: the k-th smallest noise goes with the
    k-th smallest data point."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(200, 1, generator=g)
    x1 = 1.0 + 3.0 * torch.randn(200, 1, generator=g)
    perm = exact_ot_pairing(x0, x1, tol=1e-7)
    rank0 = torch.argsort(torch.argsort(x0[:, 0]))
    rank1 = torch.argsort(torch.argsort(x1[:, 0]))
    assert torch.equal(rank0[perm], rank1)
    # the fast pairing is a permutation within a few per cent of that optimum, far below independent noise
    fast = ot_pairing(x0, x1)
    assert sorted(fast.tolist()) == list(range(200))
    cost = sq_cost(x0, x1)
    opt, got, indep = (float(cost[p, torch.arange(200)].sum()) for p in (perm, fast, torch.arange(200)))
    assert got <= 1.25 * opt and indep > 1.5 * opt


def test_fast_ot_keeps_most_of_the_gain_in_high_dimension():
    """Where all distances are alike (256-D), the Sinkhorn pairing still captures most of what the
    exact assignment saves over independent noise."""
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(128, 256, generator=g)
    x1 = 0.5 * torch.randn(128, 256, generator=g) + torch.randn(128, 1, generator=g)
    cost = sq_cost(x0, x1)
    opt, fast, indep = (float(cost[p, torch.arange(128)].sum()) for p in
                        (exact_ot_pairing(x0, x1, tol=1e-5), ot_pairing(x0, x1), torch.arange(128)))
    assert opt <= fast < indep and (indep - fast) >= 0.8 * (indep - opt)


def test_weighted_cost_skips_padding():
    x0, x1 = torch.randn(4, 3), torch.randn(4, 3)
    w = torch.tensor([[1.0, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1]])
    want = torch.stack([((x0[i] - x1[j]) ** 2 * w[j]).sum() for i in range(4) for j in range(4)]).reshape(4, 4)
    assert torch.allclose(sq_cost(x0, x1, w), want.double(), atol=1e-6)


def test_coupling_never_pairs_across_labels():
    obj = couple_objective(FlowObjective(num_classes=3, label_dropout=0.3), "ot")
    n = 240
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    x1 = 3.0 * torch.randn(n, 2, generator=g) + y[:, None]
    batch = Samples(x1, y)
    rand = obj.draw(n, x1, g)
    x0 = rand["x0"]
    out = obj.couple(batch, rand)
    src = torch.cdist(out, x0).argmin(1)  # which noise row each data row received
    assert sorted(src.tolist()) == list(range(n))
    seen = obj.train_cond(batch.cond, rand["drop"])["label"]  # the label the model sees (3 = dropped)
    assert torch.equal(seen[src], seen)
    assert obj.train_stats(1)["coupling_groups"] == len(seen.unique())
    # within groups the pairing is shorter than the independent one
    assert ((out - x1) ** 2).sum() < 0.8 * ((x0 - x1) ** 2).sum()


def test_coupling_refuses_what_it_cannot_honour():
    with pytest.raises(ConfigError, match="tensor condition"):
        couple_objective(FlowObjective(conditions=(ConditionSpec("ctx", "tensor", (2,)),)), "ot")
    with pytest.raises(ConfigError, match="known parts"):
        couple_objective(FlowObjective(time_shape=(2,), known="random"), "ot")
    with pytest.raises(ConfigError, match="draws no such noise"):
        couple_objective(MaskedObjective(8), "ot")
    with pytest.raises(ConfigError, match="Did you mean 'ot'"):
        get_coupling("ott")
    with pytest.raises(ConfigError, match="Did you mean 'flow.coupling_options.iters'"):
        couple_objective(FlowObjective(), "ot", {"iter": 5})
    with pytest.raises(ConfigError, match="takes no options"):
        couple_objective(FlowObjective(), "independent", {"eps": 0.1})
    assert couple_objective(FlowObjective(), "ot-exact", {"tol": 1e-4}).options == {"tol": 1e-4}
    plain = FlowObjective()
    assert couple_objective(plain, "independent") is plain
    assert {"independent", "ot", "ot-exact"} <= set(COUPLINGS)


def test_coupling_cost_is_logged_per_step(tmp_path):
    obj = couple_objective(FlowObjective(), "ot")
    cfg = TrainConfig(steps=4, batch_size=64, log_every=2, device="cpu", progress=False, ema_decay=0.0)
    Trainer(_Lin(), obj, Samples(torch.randn(256, 2)), cfg, run_dir=tmp_path).fit()
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["coupling_s"] > 0 and r["coupling_groups"] == 1 for r in recs)
    assert isinstance(obj, CoupledObjective) and obj.to_json()["coupling"]["name"] == "ot"


class _Lin(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x, t, cond=None):
        return self.lin(torch.cat([x, t[:, None]], 1))


# -- shortcut ---------------------------------------------------------------------------------------
MU, S = torch.tensor([2.0, -1.0]), 0.5


class ExactShortcut(torch.nn.Module):
    """The exact average velocity over a step for x0 ~ N(0, I) -> x1 ~ N(MU, S^2 I) on the linear path
    (independent coupling): x_t = t MU + sigma_t z with sigma_t^2 = (1-t)^2 + t^2 S^2, so the flow map is
    affine and one step of size d is exact."""

    def __init__(self, levels: int, instantaneous: bool = False):
        super().__init__()
        self.levels, self.instantaneous = levels, instantaneous

    @staticmethod
    def sigma(t):
        return ((1 - t) ** 2 + t ** 2 * S ** 2).sqrt()

    def forward(self, x, t, cond):
        d = torch.exp2(-cond[STEP][:, 0].double() * self.levels)
        t = t.double()
        t = t[:, None] if t.dim() == 1 else t  # [B, 1], or [B, 2]: a time per coordinate (independent here)
        if self.instantaneous:
            d = torch.full_like(d, 1e-6)
        t2 = t + d[:, None]  # the affine flow map extends past t = 1
        z = (x.double() - t * MU) / self.sigma(t)
        x2 = t2 * MU + self.sigma(t2) * z
        return ((x2 - x.double()) / (t2 - t)).to(x.dtype)


def test_shortcut_target_is_self_consistent_for_the_exact_flow():
    obj = ShortcutObjective(max_steps=8, consistency_fraction=0.5)
    n = 512
    g = torch.Generator().manual_seed(0)
    x1 = MU + S * torch.randn(n, 2, generator=g)
    rand = obj.draw(n, x1, g)
    rand["consistency"] = torch.ones(n, dtype=torch.bool)  # every row: 2 steps of d == 1 step of 2d
    assert float(obj.loss(ExactShortcut(obj.levels), Samples(x1), rand)) < 1e-8
    # a model blind to the step size (the instantaneous velocity everywhere) is not self-consistent
    assert float(obj.loss(ExactShortcut(obj.levels, instantaneous=True), Samples(x1), rand)) > 1e-3


def test_shortcut_with_known_parts_and_per_element_time_is_exact_for_the_exact_flow():
    """Per-coordinate times with some coordinates known (at t = 1, held through the half steps, out of
    the loss): the exact flow is still self-consistent, whatever the model says on known elements."""

    class LoudOnKnown(ExactShortcut):
        def forward(self, x, t, cond):
            return torch.where(t == 1, torch.full_like(x, 1e3), super().forward(x, t, cond))

    obj = ShortcutObjective(max_steps=8, consistency_fraction=0.5, time_shape=(2,), per_element_time=True)
    n = 512
    g = torch.Generator().manual_seed(1)
    x1 = MU + S * torch.randn(n, 2, generator=g)
    rand = obj.draw(n, x1, g)
    rand["consistency"] = torch.ones(n, dtype=torch.bool)
    rand["known"] = torch.rand(n, 2, generator=g) < 0.3
    assert rand["known"].any() and rand["t"].shape == (n, 2)
    assert float(obj.loss(LoudOnKnown(obj.levels), Samples(x1), rand)) < 1e-8
    assert float(obj.loss(ExactShortcut(obj.levels, instantaneous=True), Samples(x1), rand)) > 1e-3
    seen = []  # every input the model sees, the second half step's included, holds the known values

    class Recording(LoudOnKnown):
        def forward(self, x, t, cond):
            seen.append(x.detach().clone())
            return super().forward(x, t, cond)

    obj.loss(Recording(obj.levels), Samples(x1), rand)
    assert len(seen) >= 3 and all(len(x) == n for x in seen)
    assert all(torch.equal(x[rand["known"]], x1[rand["known"]]) for x in seen)
    rand["consistency"] = torch.zeros(n, dtype=torch.bool)  # FM rows keep per-coordinate times
    fm = obj.loss(LoudOnKnown(obj.levels), Samples(x1), rand)
    assert torch.isfinite(fm) and float(fm) < 1.0
    res = obj.generate(ExactShortcut(obj.levels), (64, 2), SampleOptions("euler", nfe=2),
                       known=rand["known"][:64], x_known=x1[:64], generator=torch.Generator().manual_seed(2))
    assert res.nfe == 2 and torch.equal(res.x[rand["known"][:64]], x1[:64][rand["known"][:64]])


def test_shortcut_contract_round_trips_known_parts_and_per_element_time():
    obj = ShortcutObjective(max_steps=16, consistency_fraction=0.5, time_shape=(4,), known="random",
                            per_element_time=True)
    back = ShortcutObjective.from_json(json.loads(json.dumps(obj.to_json())))
    assert back.to_json() == obj.to_json() and back.per_element_time and back.known.name == "random"


def test_shortcut_sampler_uses_the_trained_step_size():
    obj = ShortcutObjective(max_steps=8)
    model = ExactShortcut(obj.levels)
    x0 = torch.randn((400, 2), generator=torch.Generator().manual_seed(3))
    for nfe in (1, 2, 4, 8):
        res = obj.generate(model, (400, 2), SampleOptions("shortcut", nfe=nfe), generator=torch.Generator().manual_seed(3))
        assert res.nfe == nfe and torch.allclose(res.x, MU + S * x0, atol=1e-4)
    res = obj.generate(model, (400, 2), SampleOptions("euler", nfe=1), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(res.x, MU + S * x0, atol=1e-4)  # plain Euler on this objective is step-aware too
    with pytest.raises(Exception, match="NFE 3 is not a step count"):
        obj.generate(model, (4, 2), SampleOptions("euler", nfe=3))
    # other solvers integrate the flow branch (the finest step, 1/128 here): close, not exact
    fine = ShortcutObjective(max_steps=128)
    res = fine.generate(ExactShortcut(fine.levels), (400, 2), SampleOptions("rk4", nfe=16),
                        generator=torch.Generator().manual_seed(3))
    assert torch.allclose(res.x, MU + S * x0, atol=0.05)  # O(1/128) bias of the finest-step average
    back = ShortcutObjective.from_json(json.loads(json.dumps(obj.to_json())))
    assert back.supported_nfe == [1, 2, 4, 8] and back.to_json() == obj.to_json()
    assert [obj.usable_nfe("euler", k) for k in (1, 3, 6, 8, 9)] == [1, 4, 8, 8, 9]  # up to the trained step
    assert obj.usable_nfe("heun", 3) == 3 and FlowObjective().usable_nfe("euler", 3) == 3


def test_shortcut_refuses_paths_it_cannot_step():
    with pytest.raises(ConfigError, match="linear"):
        ShortcutObjective("cosine")
    with pytest.raises(ConfigError, match="power of two"):
        ShortcutObjective(max_steps=12)


@pytest.mark.slow
def test_cli_shortcut_round_trip(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(run), "--set", "flow.objective=shortcut",
                 "--set", "flow.objective_options.max_steps=16", "--set", "flow.coupling=ot", "--device", "cpu"]) == 0
    contract = json.loads(next((run / "checkpoints").glob("step_*/contract.json")).read_text())
    assert contract["objective"]["kind"] == "shortcut" and contract["objective"]["supported_nfe"] == [1, 2, 4, 8, 16]
    assert STEP in [c["name"] for c in contract["data_spec"]["conditions"]]
    assert all(r["coupling_s"] > 0 for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()))
    assert main(["sample", str(run), "--nfe", "1", "--n", "32", "--device", "cpu"]) == 0
    setup = json.loads((run / "samples" / "sampling.json").read_text())
    assert setup["nfe"] == 1 and len((run / "samples" / "samples.csv").read_text().splitlines()) == 33
    rows = [list(map(float, r.split(","))) for r in (run / "samples" / "samples.csv").read_text().splitlines()[1:]]
    assert all(math.isfinite(v) for r in rows for v in r)
    capsys.readouterr()
    assert main(["sample", str(run), "--nfe", "3", "--device", "cpu"]) == 2
    assert "NFE 3 is not a step count" in capsys.readouterr().err
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(tmp_path / "bad"), "--set",
                 "flow.objective=shortcut", "--set", "flow.objective_options.max_step=4"]) == 2
    assert "Did you mean 'flow.objective_options.max_steps'" in capsys.readouterr().err


def test_shortcut_with_labels_trains_and_guides():
    """Labels keep their dropout and guidance; the step condition never drops and is never guided."""
    from panflow import DataSpec
    from panflow.shortcut import shortcut_spec
    from panflow_toy2d.backbones import build_mlp

    label = ConditionSpec("label", "label", num_classes=3, dropout=0.2)
    spec = shortcut_spec(DataSpec("continuous", (2,), conditions=(label,)))
    assert [c.name for c in spec.conditions] == ["label", STEP]
    obj = ShortcutObjective(conditions=(label,), max_steps=4)
    model = build_mlp(spec, width=32, depth=2)
    y = torch.arange(64) % 3
    batch = Samples(torch.randn(64, 2) + y[:, None].float(), y)
    loss = obj.loss(model, batch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    res = obj.generate(model, (6, 2), SampleOptions("euler", nfe=2, guidance=2.0), cond={"label": y[:6]})
    assert res.nfe == 2 and res.x.shape == (6, 2) and torch.isfinite(res.x).all()
    with pytest.raises(Exception, match="unknown condition .step."):  # users never pass it
        obj.generate(model, (6, 2), SampleOptions("euler", nfe=2), cond={"label": y[:6], STEP: torch.zeros(6, 1)})


@pytest.mark.slow
def test_reflow_pairs_are_the_models_own_and_train_a_2_rectified_flow(tmp_path, capsys):
    import numpy as np

    from panflow import load_run, sample_ode
    from panflow.reflow import NOISE_KEY

    src, pairs, rect = tmp_path / "src", tmp_path / "pairs", tmp_path / "rect"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(src), "--set", "train.steps=20", "--device", "cpu"]) == 0
    assert main(["reflow", str(src), "--out", str(pairs), "--n", "300", "--chunk", "128", "--nfe", "4",
                 "--device", "cpu"]) == 0
    x1 = np.load(pairs / "train" / "x-00000.npy")
    x0 = np.load(pairs / "train" / f"cond.{NOISE_KEY}-00000.npy")
    assert x1.shape == x0.shape == (300, 2)
    run = load_run(src, device="cpu")
    field = run.objective.field(run.model)
    for sl in (slice(0, 128), slice(128, 256), slice(256, 300)):  # one solve per chunk, as written
        want = sample_ode(field, torch.from_numpy(x0[sl]), "euler", nfe=4).x
        assert torch.allclose(want, torch.from_numpy(x1[sl]), atol=1e-5)
    assert torch.equal(torch.from_numpy(x0[:128]), torch.randn((128, 2), generator=torch.Generator().manual_seed(0)))
    capsys.readouterr()
    assert main(["reflow", str(src), "--out", str(pairs), "--n", "10", "--device", "cpu"]) == 2
    assert "already holds a cache" in capsys.readouterr().err
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(rect), "--set", f"data.cache={pairs}",
                 "--set", "flow.coupling=reflow", "--set", "train.steps=10", "--device", "cpu"]) == 0
    assert main(["sample", str(rect), "--nfe", "1", "--n", "8", "--device", "cpu"]) == 0
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(tmp_path / "no_pairs"), "--set",
                 "flow.coupling=reflow", "--set", "train.steps=2", "--device", "cpu"]) == 2
    assert "make the pairs with panflow reflow" in capsys.readouterr().err


def test_shortcut_runs_on_the_core_unet_for_images(tmp_path, capsys):
    """panflow.UNet embeds vector conditions, so the image UNet takes the step size; the DiT says it cannot."""
    run = tmp_path / "img"
    assert main(["train", "image", "--preset", "smoke", "--out", str(run), "--set", "flow.objective=shortcut",
                 "--set", "flow.objective_options.max_steps=4", "--device", "cpu"]) == 0
    assert main(["sample", str(run), "--nfe", "1", "--n", "4", "--device", "cpu"]) == 0
    assert json.loads((run / "samples" / "sampling.json").read_text())["nfe"] == 1
    capsys.readouterr()
    assert main(["train", "image", "--preset", "smoke", "--backbone", "dit", "--out", str(tmp_path / "dit"), "--set",
                 "flow.objective=shortcut", "--device", "cpu"]) == 2
    assert STEP in capsys.readouterr().err


def test_init_from_starts_a_run_from_another_runs_weights(tmp_path, capsys):
    """train.init_from loads the source's EMA weights (new keys, e.g. a shortcut's step embedding,
    stay fresh and are listed); a misfit or a missing run is a clear error before training."""
    from safetensors.torch import load_file

    from panflow.checkpoint import find_checkpoint

    src = tmp_path / "src"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(src), "--set", "train.steps=5", "--device", "cpu"]) == 0
    ema = load_file(str(find_checkpoint(src) / "ema.safetensors"))
    ft = tmp_path / "ft"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(ft), "--set", f"train.init_from={src}",
                 "--set", "train.steps=1", "--set", "train.lr=1e-12", "--set", "train.ema_decay=0", "--device", "cpu"]) == 0
    ckpt = find_checkpoint(ft)
    record = json.loads((ckpt / "contract.json").read_text())["init_from"]
    assert record["weights"] == "ema" and record["loaded"] == len(ema) and record["fresh"] == [] and record["step"] == 5
    assert record["sha256"] == json.loads((find_checkpoint(src) / "contract.json").read_text())["sha256"]["ema.safetensors"]
    after = load_file(str(ckpt / "model.safetensors"))  # one step at lr 1e-12: still the source's EMA weights
    assert all(torch.allclose(after[k], v, atol=1e-6) for k, v in ema.items())
    sc = tmp_path / "sc"
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(sc), "--set", f"train.init_from={src}",
                 "--set", "flow.objective=shortcut", "--set", "train.steps=2", "--set", "train.checkpoint_every=1",
                 "--device", "cpu"]) == 0
    record = json.loads((find_checkpoint(sc) / "contract.json").read_text())["init_from"]
    assert record["loaded"] == len(ema) and record["fresh"] and all(k not in ema for k in record["fresh"])
    import shutil
    shutil.rmtree(find_checkpoint(sc))  # back to step 1, then resume: the record stays in every checkpoint
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(sc), "--set", f"train.init_from={src}",
                 "--set", "flow.objective=shortcut", "--set", "train.steps=2", "--set", "train.checkpoint_every=1",
                 "--device", "cpu", "--resume"]) == 0
    assert json.loads((find_checkpoint(sc) / "contract.json").read_text())["init_from"] == record
    capsys.readouterr()
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(tmp_path / "vp"), "--set", f"train.init_from={src}",
                 "--set", "flow.prediction=noise", "--device", "cpu"]) == 2
    assert "another field" in capsys.readouterr().err
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(tmp_path / "wide"), "--set", f"train.init_from={src}",
                 "--set", "model.options.width=24", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "do not fit this model" in err and "(24" in err
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(tmp_path / "none"), "--set",
                 f"train.init_from={tmp_path / 'missing'}", "--device", "cpu"]) == 2
    assert "train.init_from" in capsys.readouterr().err and not (tmp_path / "none" / "checkpoints").exists()


@pytest.mark.parametrize("domain,backbone,spec", [
    ("protein", "ca-transformer", DataSpec(
        "continuous", (16, 3), conditions=(ConditionSpec("residues", "tensor", (16,)),), time_shape=(16,))),
    ("weather", "latlon-unet", DataSpec(
        "continuous", (2, 8, 16), conditions=(ConditionSpec("prev", "tensor", (2, 2, 8, 16)),
                                             ConditionSpec("context", "tensor", (3, 8, 16))))),
    ("video", "st-unet", DataSpec("continuous", (4, 1, 8, 8), time_shape=(4,))),
])
def test_domain_backbones_take_the_step_size(domain, backbone, spec):
    """The protein, weather and video backbones embed a global vector condition (the shortcut's step
    size), so the shortcut objective serves them with no plugin of its own; the output depends on it."""
    from panflow import get_registry
    from panflow.shortcut import shortcut_spec

    bb = get_registry().backbone(backbone)
    sspec = shortcut_spec(spec)
    bb.check(sspec, domain)
    torch.manual_seed(0)
    model = bb.build(sspec)
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised output layers would hide the dependence
            p.add_(0.05 * torch.randn_like(p))
    b = 2
    x = torch.randn(b, *spec.shape)
    cond = {c.name: (torch.ones(b, *c.shape) if c.name == "residues" else torch.randn(b, *c.shape))
            for c in spec.conditions}
    t = torch.full((b,), 0.5)
    with torch.no_grad():
        out1 = model(x, t, {**cond, STEP: torch.full((b, 1), 1.0)})
        out2 = model(x, t, {**cond, STEP: torch.full((b, 1), 1 / 64)})
        plain = model(x, t, cond)  # no step given counts as the null vector, as for any condition
    assert out1.shape == x.shape and torch.isfinite(out1).all()
    assert (out1 - out2).abs().max() > 1e-4
    assert (plain - out1).abs().max() > 1e-4
    grid = ConditionSpec("orography", "tensor", tuple(spec.shape[-2:]))  # two axes: not a global vector
    with pytest.raises(ConfigError, match="orography"):
        bb.check(dataclasses.replace(sspec, conditions=(*sspec.conditions, grid)), domain)
