"""Sampling under potentials (panflow.potentials): Gauss–Newton steps on the clean estimate."""

from __future__ import annotations

import pytest
import torch

from panflow import ConfigError, Potential, SampleOptions, UnknownNameError, register_potential
from panflow.masked import MaskedObjective
from panflow.potentials import POTENTIALS, gauss_newton_step

from .conditional_gaussians import JointGaussianOracle, sample_pairs

RHO, A, N = 0.8, 1.5, 4000
COV = torch.tensor([[1.0, RHO], [RHO, 1.0]], dtype=torch.float64)


class FirstCoordinate(Potential):
    """``r = scale · (x[:, 0] − value)``: a linear constraint on the first coordinate."""

    name = "test-first-coordinate"

    def __init__(self, value: float = 0.0, scale: float = 1.0):
        self.value, self.scale = float(value), float(scale)

    def bind(self, cond, batch, generator):
        return lambda x: self.scale * (x[:, 0] - self.value)


@pytest.fixture(autouse=True)
def _registered():
    register_potential(FirstCoordinate)
    yield
    POTENTIALS.pop(FirstCoordinate.name, None)


def _sample(potentials: dict, solver: str = "euler", nfe: int = 32) -> torch.Tensor:
    return sample_pairs(JointGaussianOracle(COV, given=None), N,
                        SampleOptions(solver=solver, nfe=nfe, potentials=potentials)).x


def test_a_linear_constraint_holds_exactly_at_the_end_and_the_rest_follows_the_data():
    x = _sample({FirstCoordinate.name: {"weight": 1.0, "t_max": 1.0, "value": A}})
    # the last Euler step lands on the corrected clean estimate, which a linear residual zeroes exactly
    assert torch.allclose(x[:, 0], torch.full((N,), A, dtype=x.dtype), atol=1e-9)
    free = _sample({})
    assert abs(float(free[:, 1].mean())) < 0.1  # unsteered: b ~ N(0, 1)
    # steered: b is pulled along a through the model's correlations towards E[b | a] = ρ A = 1.2, but
    # only part of the way (0.48): steering, not exact conditioning (the module docstring says so)
    assert 0.3 < float(x[:, 1].mean()) < 0.8 * RHO * A, float(x[:, 1].mean())


def test_no_weight_or_no_potential_is_the_plain_sampler_bit_for_bit():
    plain = _sample({})
    assert torch.equal(plain, _sample({FirstCoordinate.name: {"weight": 0.0, "value": A}}))


def test_the_step_is_scale_free_and_stopping_early_leaves_the_end_to_the_model():
    a = _sample({FirstCoordinate.name: {"value": A, "scale": 1.0}})
    b = _sample({FirstCoordinate.name: {"value": A, "scale": 100.0}})
    assert torch.allclose(a, b, atol=1e-9)
    early = _sample({FirstCoordinate.name: {"value": A, "t_max": 0.5}})
    gap = (early[:, 0] - A).abs().mean()
    assert 1e-3 < float(gap) < float((_sample({})[:, 0] - A).abs().mean())  # partly steered, not pinned


def test_gauss_newton_step_zeroes_a_linearised_residual():
    x = torch.randn(5, 3, dtype=torch.float64)
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    step = gauss_newton_step(lambda z: z @ w - 1.0, x, 1.0)
    assert torch.allclose((x + step) @ w, torch.ones(5, dtype=torch.float64))
    assert torch.allclose(step, gauss_newton_step(lambda z: 7 * (z @ w - 1.0), x, 1.0))
    with pytest.raises(ConfigError, match=r"shape \[B\]"):
        gauss_newton_step(lambda z: z, x, 1.0)


def test_bad_names_and_options_are_refused():
    with pytest.raises(UnknownNameError, match="test-first-coordinate"):
        _sample({"test-first-coordinat": {}})
    for bad in ({"weight": -1}, {"t_max": 0}, {"t_max": 1.5}):
        with pytest.raises(ConfigError):
            SampleOptions(potentials={FirstCoordinate.name: bad})
    with pytest.raises(ConfigError):
        SampleOptions(potentials={FirstCoordinate.name: 1.0})
    with pytest.raises(ConfigError, match="test-first-coordinate"):  # an option the potential does not take
        _sample({FirstCoordinate.name: {"valu": 1.0}})

    class Other(Potential):
        name = FirstCoordinate.name

    with pytest.raises(ConfigError, match="already registered"):
        register_potential(Other)


def test_masked_diffusion_refuses_potentials():
    obj = MaskedObjective(vocab_size=5)
    with pytest.raises(ConfigError, match="continuous flow"):
        obj.generate(lambda z, t, c: torch.zeros(*z.shape, 6), (2, 4),
                     SampleOptions(solver="ancestral", nfe=4, potentials={FirstCoordinate.name: {}}))


def test_the_data_end_itself_is_never_steered():
    from panflow import AffinePath
    from panflow.potentials import with_potentials

    def vel(x, t, s):
        return torch.ones_like(x)

    f = with_potentials(vel, {FirstCoordinate.name: {"value": A}}, AffinePath("linear"), 1e-4, {}, 3)
    x = torch.zeros(3, 2, dtype=torch.float64)
    one, half = torch.ones(3, dtype=torch.float64), torch.full((3,), 0.5, dtype=torch.float64)
    assert torch.equal(f(x, one, one), vel(x, one, one))  # a correction there would be divided by 1 − t ≈ 0
    assert not torch.equal(f(x, half, half), vel(x, half, half))
    steered = _sample({FirstCoordinate.name: {"value": A}}, solver="heun", nfe=32)  # heun evaluates s = 1
    assert torch.isfinite(steered).all() and float((steered[:, 0] - A).abs().mean()) < 0.1


class Total(Potential):
    """``r = x[:, 0] + x[:, 1] − value``: a constraint that involves a known element."""

    name = "test-total"

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def bind(self, cond, batch, generator):
        return lambda x: x[:, 0] + x[:, 1] - self.value


def test_known_elements_neither_move_nor_absorb_the_step():
    register_potential(Total)
    try:
        res = sample_pairs(JointGaussianOracle(COV, given=0), N,
                           SampleOptions(solver="euler", nfe=32, potentials={Total.name: {"value": 2 * A}}), first=A)
        assert bool((res.x[:, 0] == A).all())
        # the whole correction lands on the free element: the total is met exactly (half of it before)
        assert torch.allclose(res.x[:, 1], torch.full((N,), A, dtype=torch.float64), atol=1e-9)
    finally:
        POTENTIALS.pop(Total.name, None)


def test_a_run_config_with_an_unknown_potential_is_refused_before_training(tmp_path):
    from panflow import build_config, train

    cfg = build_config("toy2d", "smoke", overrides={"sample.potentials": {"test-first-coordinat": {}}})
    with pytest.raises(ConfigError, match="test-first-coordinate"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    cfg = build_config("toy2d", "smoke", overrides={"sample.potentials": {FirstCoordinate.name: {"weight": -1}}})
    with pytest.raises(ConfigError, match="weight"):
        train(cfg, tmp_path / "run")
