import pytest
import torch

from panflow import LogitNormalTime, ShiftedTime, UniformTime, UShapedTime, build_config, cfg_field, make_time_sampler


def _model(x, t, c):
    return x * 0 + c.to(x.dtype)[:, None] * 2.0 + t[:, None]


def test_cfg_reduces_to_unconditional_and_conditional():
    x, t = torch.randn(6, 2), torch.rand(6)
    cond, null = torch.full((6,), 3), torch.full((6,), 10)
    torch.testing.assert_close(cfg_field(_model, cond, null, 0.0)(x, t), _model(x, t, null))
    torch.testing.assert_close(cfg_field(_model, cond, null, 1.0)(x, t), _model(x, t, cond))
    w = 2.5
    expected = _model(x, t, null) + w * (_model(x, t, cond) - _model(x, t, null))
    torch.testing.assert_close(cfg_field(_model, cond, null, w)(x, t), expected)


def test_guidance_interval_uses_conditional_outside():
    x = torch.randn(4, 2)
    t = torch.tensor([0.1, 0.4, 0.6, 0.9])
    cond, null = torch.full((4,), 1), torch.full((4,), 0)
    out = cfg_field(_model, cond, null, 0.0, interval=(0.3, 0.7))(x, t)
    torch.testing.assert_close(out[[0, 3]], _model(x, t, cond)[[0, 3]])
    torch.testing.assert_close(out[[1, 2]], _model(x, t, null)[[1, 2]])


@pytest.mark.parametrize("sampler", [UniformTime(), LogitNormalTime(0.5, 0.8), ShiftedTime(3.0), UShapedTime(4.0)])
def test_time_samplers_range_and_round_trip(sampler):
    t = sampler.sample(10000, torch.Generator().manual_seed(0))
    assert t.shape == (10000,) and float(t.min()) >= 0 and float(t.max()) <= 1
    again = make_time_sampler(sampler.to_json())
    torch.testing.assert_close(again.sample(100, torch.Generator().manual_seed(5)),
                               sampler.sample(100, torch.Generator().manual_seed(5)))


def test_time_sampler_distributions():
    g = torch.Generator().manual_seed(0)
    ln = LogitNormalTime(1.0, 0.5).sample(20000, g)
    assert abs(float(torch.logit(ln).mean()) - 1.0) < 0.02 and abs(float(torch.logit(ln).std()) - 0.5) < 0.02
    sh = ShiftedTime(3.0).sample(20000, g)
    assert float(sh.mean()) < 0.4  # pushed towards noise
    with pytest.raises(ValueError):
        LogitNormalTime(0, -1)


def test_u_shaped_time_matches_its_density_and_is_reachable_from_the_config():
    import math

    a, n = 4.0, 200_000
    t = UShapedTime(a).sample(n, torch.Generator().manual_seed(1))
    edges = torch.linspace(0, 1, 11, dtype=torch.float64)
    cdf = torch.sinh(a * (edges - 0.5)) / (2 * math.sinh(a / 2)) + 0.5  # ∫ a cosh(a(s − ½)) / (2 sinh(a/2)) ds
    expected = (cdf[1:] - cdf[:-1]) * n
    counts = torch.histc(t.double(), bins=10, min=0, max=1)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 30  # 9 degrees of freedom: p ≈ 4e-4 at 30
    assert abs(float(t.mean()) - 0.5) < 0.005 and float(counts[0] / counts[5]) > 2.5  # symmetric, heavy ends (3.05 for a = 4)
    with pytest.raises(ValueError):
        UShapedTime(0.0)
    cfg = build_config("toy2d", "smoke", overrides={"flow.time_sampler": "u_shaped", "flow.u_shape": 2.5})
    from panflow.assembly import _time_sampler

    assert _time_sampler(cfg) == {"name": "u_shaped", "a": 2.5}


def test_a_registered_time_sampler_is_chosen_by_name_checked_and_rebuilt_from_the_contract(tmp_path):
    from panflow import TIME_SAMPLERS, ConfigError, TimeSampler, load_run, register_time_sampler, train

    class EdgeTime(TimeSampler):  # a third party's sampler: t near 1 only
        name = "test_edge"

        def __init__(self, low: float = 0.9):
            self.low = float(low)

        def sample(self, n, generator=None, device="cpu"):
            shape = n if isinstance(n, tuple) else (n,)
            return self.low + (1 - self.low) * torch.rand(shape, generator=generator, device=device)

        def to_json(self):
            return {"name": self.name, "low": self.low}

    try:
        register_time_sampler(EdgeTime)
        assert register_time_sampler(EdgeTime) is EdgeTime  # the same class twice is a no-op
        with pytest.raises(ConfigError, match="already registered"):
            register_time_sampler(type("Other", (EdgeTime,), {}))
        with pytest.raises(TypeError):
            register_time_sampler(object)
        over = {"flow.time_sampler": "test_edge", "flow.time_sampler_options": {"low": 0.95}, "train.progress": False}
        run = load_run(train(build_config("toy2d", "smoke", overrides=over), tmp_path / "run"))
        assert run.contract["objective"]["time_sampler"] == {"name": "test_edge", "low": 0.95}
        assert run.objective.time_sampler.sample(50, torch.Generator().manual_seed(0)).min() >= 0.95
        with pytest.raises(ConfigError, match="flow.time_sampler_options.lo"):
            train(build_config("toy2d", "smoke", overrides={**over, "flow.time_sampler_options": {"lo": 0.9}}),
                  tmp_path / "bad")
        with pytest.raises(ConfigError, match="test_edge"):  # an unknown name suggests the closest
            train(build_config("toy2d", "smoke", overrides={**over, "flow.time_sampler": "test_edg"}), tmp_path / "bad2")
    finally:
        TIME_SAMPLERS.pop("test_edge", None)


def test_guided_velocity_outside_its_interval_runs_the_conditional_branch_alone():
    """Outside the guidance interval every scale is 1, so the field is the conditional one; a step whose
    whole batch is outside evaluates that branch only (half the work of guidance), with the same value."""
    from panflow import ConditionSpec, guided_velocity

    specs = (ConditionSpec("label", "label", num_classes=3),)
    seen = []

    def vel(x, t, c):
        seen.append(x.shape[0])
        return x * 0 + c["label"].to(x.dtype)[:, None] + t[:, None]

    x, cond = torch.randn(4, 2), {"label": torch.tensor([0, 1, 2, 1])}
    f = guided_velocity(vel, specs, cond, [(["label"], 3.0)], interval=[0.3, 0.7])
    out = f(x, torch.full((4,), 0.9), torch.full((4,), 0.9))
    torch.testing.assert_close(out, vel(x, torch.full((4,), 0.9), cond))
    assert seen[0] == 4
    seen.clear()
    inside = f(x, torch.full((4,), 0.5), torch.full((4,), 0.5))
    null = vel(x, torch.full((4,), 0.5), {"label": torch.full((4,), 3)})
    torch.testing.assert_close(inside, null + 3.0 * (vel(x, torch.full((4,), 0.5), cond) - null))
    assert seen[0] == 8  # both branches in one batched forward
