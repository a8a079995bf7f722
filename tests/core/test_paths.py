import pytest
import torch

from panflow import AffinePath, make_schedule
from panflow.errors import UnknownNameError
from panflow.paths import PREDICTIONS

SCHEDULES = ["linear", "cosine", "vp-linear", "vp-cosine", "vp-sigmoid"]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_conversions_round_trip(schedule):
    path = AffinePath(schedule)
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(64, 3, generator=g, dtype=torch.float64), torch.randn(64, 3, generator=g, dtype=torch.float64)
    t = torch.rand(64, generator=g, dtype=torch.float64) * 0.98 + 0.01
    x_t, _ = path.sample(x0, x1, t)
    for src in PREDICTIONS:
        pred = path.target(src, x0, x1, t)
        for dst in PREDICTIONS:
            out = path.convert(pred, src, dst, x_t, t)
            torch.testing.assert_close(out, path.target(dst, x0, x1, t), rtol=1e-7, atol=1e-7)
            back = path.convert(out, dst, src, x_t, t)
            torch.testing.assert_close(back, pred, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_derivatives_match_finite_differences(schedule):
    s = make_schedule(schedule)
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    torch.testing.assert_close(s.d_alpha(t), (s.alpha(t + h) - s.alpha(t - h)) / (2 * h), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s.d_sigma(t), (s.sigma(t + h) - s.sigma(t - h)) / (2 * h), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "vp-linear", "vp-cosine", "vp-sigmoid"])
def test_variance_preserving(schedule):
    s = make_schedule(schedule)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones_like(t))
    assert float(s.alpha(torch.tensor(1.0, dtype=torch.float64))) == pytest.approx(1.0, abs=1e-6)  # t=1 is data
    assert float(s.sigma(torch.tensor(0.0, dtype=torch.float64))) > 0.99  # t=0 is (nearly) pure noise


def test_linear_path_endpoints_and_target():
    path = AffinePath("linear")
    x0, x1 = torch.randn(4, 2), torch.randn(4, 2)
    xt, u = path.sample(x0, x1, torch.zeros(4))
    torch.testing.assert_close(xt, x0)
    xt, u = path.sample(x0, x1, torch.ones(4))
    torch.testing.assert_close(xt, x1)
    torch.testing.assert_close(u, x1 - x0)


def test_per_element_time_broadcasts():
    path = AffinePath("cosine")
    x0, x1 = torch.randn(5, 7), torch.randn(5, 7)
    t = torch.rand(5, 7)  # one time per token
    xt, u = path.sample(x0, x1, t)
    for j in range(7):
        xj, uj = path.sample(x0[:, j:j + 1], x1[:, j:j + 1], t[:, j])
        torch.testing.assert_close(xt[:, j:j + 1], xj)
        torch.testing.assert_close(u[:, j:j + 1], uj)


def test_unknown_names_suggest():
    with pytest.raises(UnknownNameError, match="Did you mean 'cosine'"):
        make_schedule("cosin")
    with pytest.raises(UnknownNameError, match="prediction target"):
        AffinePath().target("score", torch.zeros(1), torch.zeros(1), torch.zeros(1))


@pytest.mark.parametrize("schedule", ["vp-linear", "vp-cosine", "vp-sigmoid"])
def test_vp_velocity_target_is_singular_at_the_data_end_and_training_keeps_clear_of_it(schedule):
    """σ_t = sqrt(1 − ᾱ_t) → 0 with σ' → −∞ at t = 1: a uniform-t velocity loss met t ≈ 1 and went
    NaN (found by `panflow bench ablate` on toy2d). The objective clamps t to [ε, 1 − ε] there."""
    from panflow.objective import FlowObjective

    path = AffinePath(schedule)
    x0, x1 = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    _, u_end = path.sample(x0, x1, torch.ones(4, dtype=torch.float64))
    assert not torch.isfinite(u_end).all()
    assert not path.schedule.finite_velocity and make_schedule("linear").finite_velocity
    obj = FlowObjective(path, "velocity", "uniform", t_eps=1e-4)
    t = obj.draw(100_000, x1, torch.Generator().manual_seed(0))["t"]
    assert float(t.max()) <= 1 - 1e-4 and float(t.min()) >= 1e-4
    _, u = path.sample(torch.randn(100_000, 2, dtype=torch.float64), torch.randn(100_000, 2, dtype=torch.float64),
                       t.double())
    assert torch.isfinite(u).all()


def test_known_elements_at_t1_do_not_turn_a_vp_loss_nan():
    from panflow import Samples
    from panflow.objective import FlowObjective

    obj = FlowObjective("vp-linear", "velocity", "uniform", time_shape=(6,))
    x = torch.randn(4, 6, 2)
    known = torch.zeros(4, 6, dtype=torch.bool)
    known[:, :2] = True
    model = torch.nn.Linear(2, 2)
    loss = obj.loss(lambda z, t, c: model(z), Samples(x, known=known), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(model.weight.grad).all()


@pytest.mark.parametrize("schedule", ["vp-linear", "vp-cosine", "vp-sigmoid"])
def test_vp_derivatives_accept_an_expanded_time(schedule):
    """Per-element time broadcast with ``expand`` (protein residues) broke forward-mode AD
    ('more than one element of the written-to tensor refers to a single memory location')."""
    path = AffinePath(schedule)
    t = torch.rand(3, 1, 1).expand(3, 5, 2)
    x0, x1 = torch.randn(3, 5, 2), torch.randn(3, 5, 2)
    _, u = path.sample(x0, x1, t)
    _, u_ref = path.sample(x0, x1, t.contiguous())
    assert torch.equal(u, u_ref)
