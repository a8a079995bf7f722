"""The Kneser-Ney n-gram baseline: exact normalisation, the entropy rate of a known Markov chain,
order that matters, sampling that reproduces the chain, and clear errors."""

import math

import pytest
import torch

from panflow import ConfigError, DataError
from panflow_text.ngram import KneserNey


def _all_next(model: KneserNey, ctx: torch.Tensor) -> torch.Tensor:
    """p(w | ctx) for every w: ``ctx`` [B, order - 1] -> [B, V]."""
    v, o = model.vocab, model.order
    w = torch.arange(v)
    grams = []
    for k in range(1, o + 1):
        base = torch.zeros(ctx.shape[0], dtype=torch.long)
        if k > 1:
            base = (ctx[:, o - k:] * v ** torch.arange(k - 2, -1, -1)).sum(-1)
        grams.append(base[:, None] * v + w[None])
    return model._prob(grams)


def _markov(n: int, length: int, trans: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, length, dtype=torch.long)
    x[:, 0] = torch.randint(0, trans.shape[0], (n,), generator=g)
    for i in range(1, length):
        x[:, i] = torch.multinomial(trans[x[:, i - 1]], 1, generator=g)[:, 0]
    return x


@pytest.mark.parametrize("order", [1, 2, 3])
def test_conditionals_sum_to_one(order):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 7, (40, 12), generator=g)
    m = KneserNey(order, 7).fit(x)
    p = _all_next(m, torch.randint(0, 7, (16, order - 1), generator=g))
    assert torch.allclose(p.sum(-1), torch.ones(16, dtype=torch.float64), atol=1e-12)
    assert (p > 0).all()


def test_bigram_reaches_the_chain_entropy_rate_and_beats_unigram():
    torch.manual_seed(0)
    trans = torch.softmax(3 * torch.randn(6, 6), -1)
    x, held = _markov(800, 64, trans, 1), _markov(200, 64, trans, 2)
    # stationary distribution: the chain's entropy rate H = -sum_i pi_i sum_j P_ij log P_ij
    pi = torch.linalg.matrix_power(trans.double(), 200)[0]
    rate = float(-(pi[:, None] * trans.double() * trans.double().log()).sum())
    uni, bi = KneserNey(1, 6).fit(x).nll(held[:, 1:]), KneserNey(2, 6).fit(x).nll(held)
    assert abs(bi - rate) < 0.03 + rate / 64  # the first token of each sequence costs ~log V more
    assert uni > bi + 0.1


def test_trigram_captures_second_order_structure_a_bigram_cannot():
    # x_i = x_{i-1} XOR x_{i-2} with rare flips: a bigram sees ~1 bit per token, a trigram ~0
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(300, 40, dtype=torch.long)
    x[:, :2] = torch.randint(0, 2, (300, 2), generator=g)
    for i in range(2, 40):
        flip = (torch.rand(300, generator=g) < 0.02).long()
        x[:, i] = x[:, i - 1] ^ x[:, i - 2] ^ flip
    tr, te = x[:200], x[200:]
    assert KneserNey(2, 2).fit(tr).nll(te) > 0.6
    assert KneserNey(3, 2).fit(tr).nll(te) < 0.2


def test_samples_follow_the_fitted_chain():
    torch.manual_seed(0)
    trans = torch.softmax(2 * torch.randn(4, 4), -1)
    m = KneserNey(2, 4).fit(_markov(1000, 32, trans, 3))
    s = m.sample(2000, 8, torch.Generator().manual_seed(4))
    a, b = s[:, :-1].reshape(-1), s[:, 1:].reshape(-1)
    counts = torch.zeros(4, 4).index_put_((a, b), torch.ones(a.numel()), accumulate=True)
    assert torch.allclose(counts / counts.sum(1, keepdim=True), trans, atol=0.03)


def test_mask_excludes_padding_and_errors_are_clear():
    x = torch.tensor([[1, 2, 0, 0], [1, 2, 1, 2]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    m = KneserNey(2, 3).fit(x, mask)
    assert math.isfinite(m.nll(x, mask))
    # the padded 2 -> 0 transition was never counted: 0 after 2 gets only the smoothed share
    # d * T(2)/C(2) * p1(0) = 0.75 * 1 * (0.75 * 2/2 * 1/3)
    assert float(_all_next(m, torch.tensor([[2]]))[0, 0]) == pytest.approx(0.1875)
    with pytest.raises(DataError, match="token ids"):
        KneserNey(2, 3).fit(torch.tensor([[0, 5]]))
    with pytest.raises(ConfigError, match="discount"):
        KneserNey(2, 3, discount=1.5)
    with pytest.raises(ConfigError, match="fit"):
        KneserNey(2, 3).nll(x)
