"""Count-based n-gram language models: the classical baseline a learned text model must beat.

Interpolated Kneser–Ney smoothing (Kneser & Ney 1995; the interpolated form of Chen & Goodman
1998, §3.5, with one absolute discount ``d``): the highest order uses raw counts, every lower order
the number of distinct left contexts a k-gram follows ("continuation counts"), and the recursion
ends in the uniform distribution over the vocabulary, so every token has non-zero probability and
each conditional sums to one exactly.

    p_k(w | h) = max(c_k(h, w) - d, 0) / C(h) + d · T(h) / C(h) · p_{k-1}(w | h')

with ``C(h)`` the summed counts after context ``h``, ``T(h)`` the number of distinct tokens seen
after it and ``h'`` the context without its first token; an unseen context falls through to
``p_{k-1}``. k-grams are int64 ids ``Σ w_j V^(k-1-j)`` kept sorted, looked up with ``searchsorted``,
so any vocabulary with ``V^order < 2^62`` works without a dense table.
"""

from __future__ import annotations

import math

import torch

from panflow import ConfigError, DataError


def _ids(x: torch.Tensor, k: int, vocab: int) -> torch.Tensor:
    """k-gram ids of every window of ``x`` ``[N, L]`` -> ``[N, L - k + 1]``."""
    w = x.long().unfold(1, k, 1)  # [N, L-k+1, k]
    scale = vocab ** torch.arange(k - 1, -1, -1, dtype=torch.long)
    return (w * scale).sum(-1)


def _lookup(keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``values`` at ``query``'s position in the sorted ``keys``; 0 where ``query`` is absent."""
    if keys.numel() == 0:
        return torch.zeros(query.shape, dtype=values.dtype)
    idx = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
    return torch.where(keys[idx] == query, values[idx], torch.zeros((), dtype=values.dtype))


class KneserNey:
    """An interpolated Kneser–Ney model of ``order`` (2 = bigram, 3 = trigram) over ids ``< vocab``."""

    def __init__(self, order: int, vocab: int, discount: float = 0.75):
        if order < 1:
            raise ConfigError(f"n-gram order must be >= 1, got {order}")
        if not 0 < discount < 1:
            raise ConfigError(f"Kneser-Ney discount must lie in (0, 1), got {discount}")
        if order * math.log2(max(vocab, 2)) >= 62:
            raise ConfigError(f"vocab {vocab} ** order {order} does not fit int64 n-gram ids")
        self.order, self.vocab, self.d = order, vocab, discount
        self.tables: list[dict] = []

    def fit(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> KneserNey:
        """Count the k-grams of ``x`` ``[N, L]`` (only windows whose tokens are all real under ``mask``)."""
        if x.dim() != 2 or x.shape[1] < 1:
            raise DataError(f"n-gram fit expects token ids [N, L], got {tuple(x.shape)}")
        if int(x.min()) < 0 or int(x.max()) >= self.vocab:
            raise DataError(f"token ids must lie in [0, {self.vocab}), got [{int(x.min())}, {int(x.max())}]")
        distinct: dict[int, torch.Tensor] = {}
        for k in range(1, self.order + 1):
            if x.shape[1] < k:
                distinct[k] = torch.zeros(0, dtype=torch.long)
                continue
            ids = _ids(x, k, self.vocab)
            if mask is not None:
                ids = ids[mask.bool().unfold(1, k, 1).all(-1)]
            distinct[k] = ids.reshape(-1)
        self.tables = []
        for k in range(1, self.order + 1):
            if k == self.order:  # raw counts
                keys, counts = torch.unique(distinct[k], return_counts=True)
            else:  # continuation counts: distinct (k+1)-gram types ending in this k-gram
                keys, counts = torch.unique(torch.unique(distinct[k + 1]) % self.vocab ** k, return_counts=True)
            counts = counts.double()
            ctx = keys // self.vocab
            ctx_keys, inverse, types = torch.unique(ctx, return_inverse=True, return_counts=True)
            totals = torch.zeros(ctx_keys.numel(), dtype=torch.float64).index_add_(0, inverse, counts)
            self.tables.append({"keys": keys, "counts": counts, "ctx": ctx_keys, "total": totals,
                                "types": types.double()})
        return self

    def _prob(self, grams: list[torch.Tensor | None]) -> torch.Tensor:
        """p(w | context) from the ids of the query's k-grams (``grams[k-1]``, None where the
        context is shorter than k - 1), all of one shape."""
        if not self.tables:
            raise ConfigError("KneserNey.fit must run before scoring or sampling")
        p = torch.full(grams[0].shape, 1.0 / self.vocab, dtype=torch.float64)
        for k, g in enumerate(grams, start=1):
            if g is None:
                break
            tb = self.tables[k - 1]
            ctx = g // self.vocab
            total, types = _lookup(tb["ctx"], tb["total"], ctx), _lookup(tb["ctx"], tb["types"], ctx)
            c = _lookup(tb["keys"], tb["counts"], g)
            seen = total > 0
            safe = total.clamp_min(1.0)
            mixed = (c - self.d).clamp_min(0) / safe + self.d * types / safe * p
            p = torch.where(seen, mixed, p)
        return p

    def nll(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> float:
        """Mean negative log-likelihood (nats per real token) of ``x`` ``[N, L]``; each position is
        conditioned on up to ``order - 1`` tokens before it in its own sequence."""
        n, length = x.shape
        logp = torch.zeros(n, length, dtype=torch.float64)
        for i in range(length):
            grams: list[torch.Tensor | None] = []
            for k in range(1, self.order + 1):
                grams.append(_ids(x[:, i - k + 1:i + 1], k, self.vocab)[:, 0] if i >= k - 1 else None)
            logp[:, i] = torch.log(self._prob(grams))
        m = torch.ones_like(logp) if mask is None else mask.to(torch.float64)
        return float(-(logp * m).sum() / m.sum().clamp_min(1.0))

    @torch.no_grad()
    def sample(self, n: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` sequences of ``length`` tokens drawn left to right -> ``[n, length]`` (int64)."""
        out = torch.zeros(n, length, dtype=torch.long)
        w = torch.arange(self.vocab, dtype=torch.long)
        for i in range(length):
            grams: list[torch.Tensor | None] = []
            for k in range(1, self.order + 1):
                if i < k - 1:
                    grams.append(None)
                    continue
                ctx = _ids(out[:, i - k + 1:i], k - 1, self.vocab)[:, 0] if k > 1 else torch.zeros(n, dtype=torch.long)
                grams.append(ctx[:, None] * self.vocab + w[None, :])
            p = self._prob(grams)
            out[:, i] = torch.multinomial(p.float(), 1, generator=generator)[:, 0]
        return out
