import pytest
import torch

from panflow import divergence_exact, divergence_hutchinson, log_likelihood

from .gaussian import GaussianFlow

FLOW = GaussianFlow([1.0, -2.0, 0.5], [0.5, 2.0, 1.0])


@pytest.mark.parametrize("method,steps", [("rk4", 64), ("dopri5", 0)])
def test_likelihood_matches_analytic_density(method, steps):
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * FLOW.s + FLOW.mu
    logp = log_likelihood(FLOW.field, x, method=method, steps=steps, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(logp, FLOW.log_prob(x), atol=1e-4, rtol=0)


def test_hutchinson_is_unbiased():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)).double()
    field = lambda x, t: net(x) * (1 + t[:, None])
    x = torch.randn(3, 4, dtype=torch.float64)
    t = torch.full((3,), 0.3, dtype=torch.float64)
    _, exact = divergence_exact(field, x, t)
    g = torch.Generator().manual_seed(1)
    probes = torch.randint(0, 2, (4000, 3, 4), generator=g).double() * 2 - 1
    _, est = divergence_hutchinson(field, x, t, probes)
    per_probe = torch.stack([divergence_hutchinson(field, x, t, probes[i:i + 1])[1] for i in range(200)])
    se = per_probe.std(0) / 4000 ** 0.5
    assert bool(((est - exact).abs() <= 4 * se + 1e-9).all()), (est, exact, se)


def test_hutchinson_likelihood_close_to_exact():
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * FLOW.s + FLOW.mu
    exact = log_likelihood(FLOW.field, x, "rk4", 32)
    est = log_likelihood(FLOW.field, x, "rk4", 32, estimator="hutchinson", n_probes=64,
                         generator=torch.Generator().manual_seed(3))
    assert abs(float((est - exact).mean())) < 0.1
