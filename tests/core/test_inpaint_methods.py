"""Training-free inpainting methods against the closed-form Gaussian conditional, and their registry."""

import math

import pytest
import torch

from panflow import AffinePath, ConfigError, SampleOptions, UnknownNameError
from panflow.inpaint import INPAINT_METHODS, InpaintMethod, Trained, register_inpaint_method, renoise

from .conditional_gaussians import JointGaussianOracle, sample_pairs

RHO, A, N = 0.8, 1.5, 4000
COV = torch.tensor([[1.0, RHO], [RHO, 1.0]], dtype=torch.float64)


def _z(inpaint: str, **kw) -> tuple[float, float, int]:
    """z-scores of the mean and variance of b | a = 1.5 from the exact *joint* field."""
    res = sample_pairs(JointGaussianOracle(COV, given=None), N, SampleOptions(inpaint=inpaint, **kw), first=A)
    assert bool((res.x[:, 0] == A).all())  # held exactly by every method
    b, mean, var = res.x[:, 1], RHO * A, 1 - RHO ** 2
    return (float(b.mean()) - mean) / math.sqrt(var / N), (float(b.var()) - var) / (var * math.sqrt(2 / (N - 1))), res.nfe


def test_repaint_resampling_shrinks_the_replacement_bias():
    zm_rep, zv_rep, nfe_rep = _z("replacement", solver="euler", nfe=64)
    zm5, zv5, nfe5 = _z("repaint", solver="euler", nfe=64, resample=5)
    zm20, zv20, nfe20 = _z("repaint", solver="euler", nfe=64, resample=20)
    assert abs(zm_rep) > 50 and abs(zv_rep) > 20  # replacement: far off (the known bias)
    assert abs(zm20) < abs(zm5) < abs(zm_rep) / 3  # more resampling, less bias
    assert abs(zm20) < 6 and abs(zv20) < 6, (zm20, zv20)  # near the conditional at 20 takes of each step
    assert (nfe_rep, nfe5, nfe20) == (64, 320, 1280)  # the extra passes are counted


def test_renoise_follows_the_forward_kernel_of_the_path():
    path = AffinePath("linear")
    g = torch.Generator().manual_seed(1)
    x1 = torch.full((200_000, 1), 2.0, dtype=torch.float64)
    t, s = torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    x_t = t * x1 + (1 - t) * torch.randn(x1.shape, generator=g, dtype=torch.float64)
    x_s = renoise(path, x_t, t, s, g)
    assert abs(float(x_s.mean()) - 0.3 * 2.0) < 0.01  # marginal of the path at s: N(s·x1, (1−s)²)
    assert abs(float(x_s.std()) - 0.7) < 0.01


def test_inpaint_method_errors_and_registration():
    with pytest.raises(UnknownNameError, match="repaint"):
        SampleOptions(inpaint="repaitn")
    with pytest.raises(Exception, match="resample"):
        SampleOptions(inpaint="repaint", resample=0)
    with pytest.raises(ConfigError, match="fixed grid"):
        _z("repaint", solver="dopri5")

    class Loud(Trained):
        name = "loud-test"

    register_inpaint_method(Loud())
    try:
        zm, zv, _ = _z("loud-test", solver="euler", nfe=8)  # a plugin's method runs through generate
        with pytest.raises(ConfigError, match="already registered"):
            register_inpaint_method(type("Other", (InpaintMethod,), {"name": "loud-test"})())
    finally:
        INPAINT_METHODS.pop("loud-test")
