"""Unmasking samplers (panflow.unmask): distribution shaping, the ReMDM marginal, confidence order
noise, honest NFE and registration by name."""

import pytest
import torch

from panflow import MaskedObjective, SampleOptions, UnknownNameError, UnmaskSampler, register_unmask_sampler
from panflow.unmask import UNMASK_SAMPLERS, ReMDM, Step, shape_probs


def test_shape_probs_temperature_and_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    torch.testing.assert_close(shape_probs(logits), torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64))
    torch.testing.assert_close(shape_probs(logits, temperature=0.5), (logits.double() / 0.5).softmax(-1))
    assert shape_probs(logits, temperature=0.0).tolist() == [[1.0, 0.0, 0.0, 0.0]]
    # nucleus 0.8: the smallest set with mass >= 0.8 is {0.5, 0.3}; 0.85 needs the third token
    torch.testing.assert_close(shape_probs(logits, top_p=0.8), torch.tensor([[0.625, 0.375, 0.0, 0.0]], dtype=torch.float64))
    assert (shape_probs(logits, top_p=0.85) > 0).sum() == 3


def test_remdm_step_keeps_the_marginal_keep_rate():
    """From keep-rate κ_s = 0.5 to κ_t = 0.6 with η = 0.3: revealed tokens are remasked with σ = 0.3 and
    masked ones revealed with (κ_t − (1 − σ) κ_s)/(1 − κ_s), so the visible fraction becomes κ_t."""
    n, mask = 200_000, 4
    g = torch.Generator().manual_seed(0)
    z = torch.where(torch.rand(1, n, generator=g) < 0.5, torch.zeros(1, n, dtype=torch.long), torch.full((1, n), mask))
    probs = torch.full((1, n, 4), 0.25, dtype=torch.float64)
    s = Step(z, torch.ones_like(z, dtype=torch.bool), probs, 0.5, 0.6, 1, 4, mask, SampleOptions("remdm", remask=0.3), g)
    out = ReMDM().step(s)
    visible = float((out != mask).double().mean())
    assert abs(visible - 0.6) < 4 * (0.24 / n) ** 0.5 * 3
    assert float(((z != mask) & (out == mask)).double().sum() / (z != mask).double().sum()) == pytest.approx(0.3, abs=0.01)


class _Fixed(torch.nn.Module):
    """A time-free 'model' whose logits do not depend on the input: position l prefers token l % V."""

    def __init__(self, v, length, sharp):
        super().__init__()
        lg = torch.zeros(length, v)
        lg[torch.arange(length), torch.arange(length) % v] = sharp
        self.register_buffer("lg", lg)

    def forward(self, z, t, cond=None, attention=None):
        return self.lg[: z.shape[1]].expand(z.shape[0], -1, -1) if attention is None else \
            self.lg[attention.positions].expand(z.shape[0], -1, -1)


@pytest.mark.parametrize("solver", ["confidence", "entropy"])
def test_confidence_order_noise_randomises_the_order(solver):
    """Greedy confidence (top probability or entropy) reveals the sharpest position first every time;
    with order noise the first position varies between samples."""
    v, length = 5, 8
    m = _Fixed(v, length, torch.linspace(0.0, 14.0, length))
    obj = MaskedObjective(v)
    g = torch.Generator().manual_seed(0)

    def first_revealed(noise):
        res = []
        for _ in range(20):
            z = torch.full((1, length), v)
            probs = shape_probs(m(z, None))
            out = UNMASK_SAMPLERS[solver].step(Step(z, torch.ones_like(z, dtype=torch.bool), probs, 0.0, 1 / length,
                                                    0, length, v, SampleOptions(solver, order_noise=noise), g))
            res.append(int((out != v).nonzero()[0, 1]))
        return set(res)

    assert first_revealed(0.0) == {length - 1}
    assert len(first_revealed(3.0)) > 2
    x = obj.generate(m, (4, length), SampleOptions(solver, nfe=length, order_noise=1.0), generator=g).x
    assert bool((x < v).all())


class _Coin(torch.nn.Module):
    """Every position independently token 1 with probability ``p`` (the exact joint is a product)."""

    def __init__(self, p):
        super().__init__()
        self.lg = torch.log(torch.tensor([1 - p, p]))

    def forward(self, z, t, cond=None, attention=None):
        return self.lg.expand(*z.shape, 2)


def test_confidence_order_draws_tokens_without_selection_bias():
    """With an exact model any order that depends on the state alone samples the joint exactly: the
    position-confidence sampler keeps each token's marginal (p = 0.7 here), with or without order
    noise. MaskGIT's rule keeps a position when its draw was the likely token, so its samples hold
    far more 1s than the model gives — the bias behind the entropy collapse."""
    n, length, p = 400, 16, 0.7
    obj = MaskedObjective(2)

    def ones(solver, **kw):
        g = torch.Generator().manual_seed(0)
        x = obj.generate(_Coin(p), (n, length), SampleOptions(solver, nfe=4, **kw), generator=g).x
        return float(x.double().mean())

    se = (p * (1 - p) / (n * length)) ** 0.5
    for solver in ("confidence", "entropy"):
        assert abs(ones(solver) - p) < 4 * se
        assert abs(ones(solver, order_noise=3.0) - p) < 4 * se
    assert ones("maskgit") > p + 0.1


class _ExactJoint(torch.nn.Module):
    """The exact unmasking distribution of a correlated joint ``p`` over all ``V^L`` sequences: each
    masked position's marginal given the visible tokens."""

    def __init__(self, p, v, length):
        super().__init__()
        self.p, self.v = p, v
        self.seqs = torch.cartesian_prod(*[torch.arange(v)] * length)  # [V^L, L]

    def forward(self, z, t, cond=None, attention=None):
        ok = ((z[:, None, :] == self.seqs[None]) | (z[:, None, :] == self.v)).all(-1)  # [B, S] consistent
        w = self.p[None] * ok
        marg = torch.einsum("bs,slv->blv", w, torch.nn.functional.one_hot(self.seqs, self.v).double())
        return (marg / marg.sum(-1, keepdim=True)).clamp_min(1e-12).log()


def test_state_ordered_samplers_sample_a_correlated_joint_exactly():
    """One token per step from exact conditionals: any order chosen from the state alone reproduces the
    joint (total variation at the noise of as many direct draws); MaskGIT's drawn-token order does not."""
    v, length, n = 3, 4, 6000
    g = torch.Generator().manual_seed(0)
    p = torch.rand(v ** length, generator=g, dtype=torch.float64) ** 4  # peaked, correlated across positions
    p = p / p.sum()
    model, obj = _ExactJoint(p, v, length), MaskedObjective(v)
    powers = v ** torch.arange(length - 1, -1, -1)

    def tv(solver):
        x = obj.generate(model, (n, length), SampleOptions(solver, nfe=length), generator=torch.Generator().manual_seed(1)).x
        freq = torch.bincount((x * powers).sum(1), minlength=v ** length).double() / n
        return float((freq - p).abs().sum() / 2)

    direct = torch.multinomial(p, n, replacement=True, generator=torch.Generator().manual_seed(2))
    noise = float((torch.bincount(direct, minlength=v ** length).double() / n - p).abs().sum() / 2)  # ≈ 0.03
    assert tv("confidence") < 2 * noise and tv("entropy") < 2 * noise
    assert tv("maskgit") > 0.15


@pytest.mark.parametrize("length", [3, 5, 6, 24, 64])
def test_as_many_steps_as_tokens_reveal_one_token_per_step(length):
    """The expected count per step is rounded up with a tolerance: without it 1/3 · 3 = 1.0000000000000002
    revealed two tokens in one step (and reported fewer model calls than steps)."""
    v = 5
    m = _Fixed(v, length, torch.linspace(0.0, 6.0, length))
    for solver in ("confidence", "entropy", "maskgit"):
        res = MaskedObjective(v).generate(m, (2, length), SampleOptions(solver, nfe=length),
                                          generator=torch.Generator().manual_seed(0))
        assert res.nfe == length and bool((res.x < v).all())


def test_nfe_counts_calls_made_and_samplers_register_by_name():
    v, length = 5, 8
    m = _Fixed(v, length, torch.full((length,), 2.0))
    obj = MaskedObjective(v)
    g = torch.Generator().manual_seed(0)
    # 64 steps for 8 tokens: most steps reveal nothing and reuse the last call
    assert obj.generate(m, (2, length), SampleOptions("ancestral", nfe=64), generator=g).nfe <= 2 * length
    res = obj.generate(m, (2, length), SampleOptions("remdm", nfe=32, remask=0.5), generator=g)
    assert 1 <= res.nfe <= 32 and bool((res.x < v).all())
    with pytest.raises(UnknownNameError, match="ancestral"):
        obj.generate(m, (2, length), SampleOptions("ancestrl", nfe=4))

    class LeftToRight(UnmaskSampler):
        name = "test-left-to-right"

        def step(self, s):
            masked = (s.z == s.mask_id) & s.free
            first = masked & (masked.cumsum(1) == 1)
            return torch.where(first, s.probs.argmax(-1), s.z)

    register_unmask_sampler(LeftToRight())
    try:
        res = obj.generate(m, (1, length), SampleOptions("test-left-to-right", nfe=length), generator=g)
        assert res.x.tolist() == [[i % v for i in range(length)]] and res.nfe == length
    finally:
        UNMASK_SAMPLERS.pop("test-left-to-right")


def test_sampling_options_are_validated():
    from panflow import PanflowError

    for bad in ({"top_p": 0.0}, {"temperature": -1.0}, {"remask": 1.5}, {"order_noise": -0.1}):
        with pytest.raises(PanflowError):
            SampleOptions("ancestral", **bad)
