import math

import pytest
import torch

from panflow import AutoregressiveObjective, MaskedObjective, MaskedPath, PanflowError, SampleOptions, Samples
from panflow.unmask import categorical as _categorical


class Uniform(torch.nn.Module):
    """Predicts the uniform distribution over V tokens."""

    def __init__(self, v):
        super().__init__()
        self.v = v
        self.calls = 0

    def forward(self, z, t, cond=None):
        self.calls += 1
        return torch.zeros(*z.shape, self.v)


class Oracle(torch.nn.Module):
    """Always predicts one fixed target sequence with certainty."""

    def __init__(self, target, v):
        super().__init__()
        self.target, self.v = target, v

    def forward(self, z, t, cond=None):
        return torch.nn.functional.one_hot(self.target.expand(z.shape[0], -1), self.v).float() * 50


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_kappa_and_corruption_rate(schedule):
    p = MaskedPath(10, schedule)
    t = torch.tensor([0.0, 1.0])
    assert torch.allclose(p.kappa(t), torch.tensor([0.0, 1.0]), atol=1e-6)
    x1 = torch.randint(0, 10, (4000, 50))
    tt = torch.full((4000,), 0.3)
    z = p.corrupt(x1, tt, torch.rand(4000, 50))
    kept = (z != p.mask_id).double().mean()
    assert float(kept) == pytest.approx(float(p.kappa(torch.tensor(0.3))), abs=0.01)
    assert bool((z[z != p.mask_id] == x1[z != p.mask_id]).all())


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_nelbo_equals_nll_for_uniform_data_and_model(schedule):
    # i.i.d. uniform tokens under a uniform model: the bound is tight, NELBO = log V per token
    v = 7
    obj = MaskedObjective(v, schedule)
    data = Samples(torch.randint(0, v, (4000, 16), generator=torch.Generator().manual_seed(0)))
    nelbo = obj.nelbo(Uniform(v), data, batch_size=500, repeats=4)
    assert nelbo == pytest.approx(math.log(v), rel=0.02)


class Neighbour(torch.nn.Module):
    """For sequences x_l = x_0 + l (mod V): predicts a masked token exactly from a visible left or
    right neighbour, uniform otherwise. Its NELBO integrand is known in closed form."""

    def __init__(self, v):
        super().__init__()
        self.v = v

    def forward(self, z, t, cond=None):
        v, m = self.v, z == self.v
        logits = torch.zeros(*z.shape, v)
        left = torch.full_like(z, -1)
        left[:, 1:] = torch.where(m[:, :-1], -1, (z[:, :-1] + 1) % v)
        right = torch.full_like(z, -1)
        right[:, :-1] = torch.where(m[:, 1:], -1, (z[:, 1:] - 1) % v)
        guess = torch.where(left >= 0, left, right)
        hit = guess >= 0
        logits[hit] = torch.nn.functional.one_hot(guess[hit], v).float() * 60
        return logits


def test_nelbo_and_its_integrand_match_closed_form_with_context():
    # a masked interior token is unpredictable only if both neighbours are masked: (1 - t)^2 of the
    # time; the two end tokens have one neighbour: (1 - t). So curve(t) = [(L-2)(1-t)^2 + 2(1-t)]/L·log V
    # and NELBO = ∫ curve = [(L-2)/3 + 1]/L·log V.
    v, length = 11, 12
    start = torch.randint(0, v, (10000, 1), generator=torch.Generator().manual_seed(1))
    data = Samples((start + torch.arange(length)) % v)
    obj, model = MaskedObjective(v), Neighbour(v)
    times = [0.1, 0.5, 0.8]
    curve = obj.masked_ce_curve(model, data, times, batch_size=1000)
    for t, c in zip(times, curve):
        expect = ((length - 2) * (1 - t) ** 2 + 2 * (1 - t)) / length * math.log(v)
        assert c == pytest.approx(expect, rel=0.05), t
    nelbo = obj.nelbo(model, data, batch_size=1000, repeats=4)
    assert nelbo == pytest.approx(((length - 2) / 3 + 1) / length * math.log(v), rel=0.03)


def test_loss_is_masked_cross_entropy_weighted():
    v = 5
    obj = MaskedObjective(v)
    x = torch.randint(0, v, (8, 6))
    rand = {"t": torch.full((8,), 0.5), "u": torch.rand(8, 6)}
    loss = obj.loss(Uniform(v), Samples(x), rand)
    n_masked = (rand["u"] >= 0.5).sum()
    expected = n_masked * math.log(v) * 2.0 / x.numel()  # weight 1/(1-t) = 2
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("solver", ["ancestral", "confidence"])
def test_samplers_unmask_everything_and_honour_fixed_positions(solver):
    v, length = 9, 12
    target = torch.randint(0, v, (1, length))
    obj = MaskedObjective(v)
    res = obj.generate(Oracle(target, v), (3, length), SampleOptions(solver, nfe=6), generator=torch.Generator().manual_seed(0))
    assert torch.equal(res.x, target.expand(3, -1))
    assert 1 <= res.nfe <= 6
    fixed = torch.full((3, length), 0)
    keep = torch.zeros(3, length, dtype=torch.bool)
    keep[:, :4] = True  # prefix
    keep[:, -2:] = True  # suffix: infill the middle
    res = obj.generate(Oracle(target, v), (3, length), SampleOptions(solver, nfe=4), known=keep, x_known=fixed,
                       generator=torch.Generator().manual_seed(0))
    assert bool((res.x[:, :4] == 0).all()) and bool((res.x[:, -2:] == 0).all())
    assert torch.equal(res.x[:, 4:-2], target[:, 4:-2].expand(3, -1))


def test_nfe_counts_only_real_model_calls():
    obj = MaskedObjective(4)
    model = Uniform(4)
    res = obj.generate(model, (1, 3), SampleOptions("ancestral", nfe=200), generator=torch.Generator().manual_seed(1))
    assert res.nfe == model.calls and res.nfe <= 3 + 1
    with pytest.raises(PanflowError, match="NFE must be positive"):
        obj.generate(model, (1, 3), SampleOptions("ancestral", nfe=0))


def test_categorical_sampling_in_float64_matches_probabilities():
    probs = torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64).expand(200000, 3)
    s = _categorical(probs, torch.Generator().manual_seed(0))
    freq = torch.bincount(s, minlength=3).double() / s.numel()
    assert torch.allclose(freq, probs[0], atol=0.005)


def test_autoregressive_objective_shifts_inputs():
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, z, t, cond=None):
            seen["z"] = z
            return torch.zeros(*z.shape, 5)

    obj = AutoregressiveObjective(5)
    x = torch.tensor([[1, 2, 3]])
    loss = obj.loss(Spy(), Samples(x))
    assert seen["z"].tolist() == [[5, 1, 2]] and float(loss) == pytest.approx(math.log(5))
