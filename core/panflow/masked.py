"""Discrete absorbing-state (masked) diffusion for any integer-token tensor, and its AR baseline.

Tokens ``x1: [B, L]`` take values in ``0..V-1``; the mask token is ``V``. At time t (0 = all
masked noise, 1 = data) each token is kept with probability κ_t and otherwise masked:
linear κ_t = t, cosine κ_t = 1 − cos(πt/2). The continuous-time negative ELBO (Sahoo et al.
2024, MDLM; Shi et al. 2024) is

    NELBO(x1) = ∫_0^1 κ'_t / (1 − κ_t) · E[ Σ_{l masked} −log p_θ(x1_l | z_t) ] dt  ≥ −log p(x1),

estimated with stratified t. The model maps ``(z_t [B, L], t [B], cond) -> logits [B, L, V]``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .blocks import KVCache, context_call, two_stream
from .errors import ConfigError, ContractError, DataError, PanflowError, UnknownNameError
from .potentials import refuse_potentials
from .sampling import SampleOptions, SampleResult
from .unmask import UNMASK_SAMPLERS, categorical, unmask

MASKED_SCHEDULES = ("linear", "cosine")
MASKED_SAMPLERS = UNMASK_SAMPLERS  # the registered unmasking samplers (panflow.unmask)
ESTIMATORS = ("time", "count")  # NELBO estimators: continuous time, or the number of masked tokens per block


class MaskedPath:
    """Keep probability κ_t and its derivative for the absorbing-state path."""

    def __init__(self, vocab_size: int, schedule: str = "linear"):
        if schedule not in MASKED_SCHEDULES:
            raise UnknownNameError("masked schedule", schedule, MASKED_SCHEDULES)
        self.vocab_size, self.schedule = int(vocab_size), schedule

    @property
    def mask_id(self) -> int:
        return self.vocab_size

    def kappa(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.schedule == "linear" else 1 - torch.cos(0.5 * math.pi * t)

    def d_kappa(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t) if self.schedule == "linear" else 0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """κ'_t / (1 − κ_t): 1 / (1 − t) for the linear schedule."""
        return self.d_kappa(t) / (1 - self.kappa(t)).clamp_min(1e-6)

    def corrupt(self, x1: torch.Tensor, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``z_t``: each token kept where ``u < κ_t`` (``u`` uniform, shaped like x1), else masked."""
        keep = u < self.kappa(t).reshape(-1, *([1] * (x1.dim() - 1)))
        return torch.where(keep, x1, torch.full_like(x1, self.mask_id))


class MaskedObjective:
    """MDLM-style masked diffusion: NELBO loss in nats per token, parallel unmasking samplers.

    ``block_size`` B (0 = the whole sequence) turns it into block diffusion (BD3-LM,
    :mod:`panflow.blocks`): the NELBO is the sum over blocks of each block's masked-diffusion
    bound given the clean blocks before it, each block with its own time; B = 1 is an
    autoregressive model, B ≥ L plain MDLM. The model must accept ``attention=`` for B < L.
    """

    kind = "masked"

    def __init__(self, vocab_size: int, schedule: str = "linear", conditions: tuple = (), block_size: int = 0,
                 estimator: str = "time"):
        self.path = MaskedPath(vocab_size, schedule)
        self.conditions = tuple(conditions)
        self.time_shape = ()
        if int(block_size) < 0:
            raise ConfigError(f"flow.block_size must be >= 0 (0 = the whole sequence), got {block_size}")
        self.block_size = int(block_size)
        if estimator not in ESTIMATORS:
            raise UnknownNameError("NELBO estimator", estimator, ESTIMATORS)
        self.estimator = estimator

    def draw_counts(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """The same bound in discrete form: per block, k masked tokens with k uniform in 1..len(block)
        (stratified over the batch), chosen by per-token uniforms; each masked token weighs len/k.

        For any schedule the continuous-time NELBO of a block of n tokens equals
        Σ_k (1/k) E_{|S| = k}[Σ_{l ∈ S} −log p(x_l | x_{not S})] (∫ κ'/(1−κ) P(k masked) dt = 1/k), so
        this is an unbiased estimate of it, with weights bounded by n instead of 1/(1 − t) (finite
        variance; it matters for small blocks, whose per-block time puts few tokens under a large weight).
        """
        length = x.shape[1]
        b = self.blocks(length)
        nb = -(-length // b)
        off = torch.rand((), generator=generator, device=x.device)
        v = (off + torch.arange(n * nb, device=x.device) / (n * nb)) % 1.0
        v = v[torch.randperm(n * nb, generator=generator, device=x.device)].reshape(n, nb)
        lens = self._block_lengths(length, x.device)
        k = torch.minimum((v * lens).floor().long() + 1, lens.long())
        return {"k": k, "u": torch.rand((n, length), generator=generator, device=x.device)}

    def _block_lengths(self, length: int, device) -> torch.Tensor:
        b = self.blocks(length)
        nb = -(-length // b)
        lens = torch.full((nb,), float(b), device=device)
        lens[-1] = length - (nb - 1) * b
        return lens

    def _count_mask(self, x: torch.Tensor, k: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked indicator (bool) and per-token weight ``len/k``, both ``[B, L]``, of a count draw."""
        n, length = x.shape
        b = self.blocks(length)
        nb = k.shape[1]
        uu = F.pad(u, (0, nb * b - length), value=2.0).reshape(n, nb, b)  # padding never ranks among the k
        rank = uu.argsort(-1).argsort(-1)
        masked = (rank < k[..., None]).reshape(n, nb * b)[:, :length]
        w = (self._block_lengths(length, x.device)[None] / k).repeat_interleave(b, dim=1)[:, :length]
        return masked, w

    def blocks(self, length: int) -> int:
        """The block size in use for sequences of ``length`` tokens (the whole sequence if 0 or ≥ L)."""
        return length if self.block_size == 0 or self.block_size >= length else self.block_size

    def draw(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """All randomness of one loss evaluation: :meth:`draw_times` or :meth:`draw_counts` (the estimator)."""
        return (self.draw_counts if self.estimator == "count" else self.draw_times)(n, x, generator)

    def draw_times(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """Stratified times (``[n]``, or ``[n, blocks]`` for block diffusion) and per-token uniforms."""
        b = self.blocks(x.shape[1])
        nb = -(-x.shape[1] // b)
        off = torch.rand((), generator=generator, device=x.device)
        t = (off + torch.arange(n * nb, device=x.device) / (n * nb)) % 1.0
        if nb > 1:  # one time per block, stratified over all blocks of the batch in a random order
            t = t[torch.randperm(n * nb, generator=generator, device=x.device)].reshape(n, nb)
        u = torch.rand((n, *x.shape[1:]), generator=generator, device=x.device)
        return {"t": t, "u": u}

    def _token_time(self, t: torch.Tensor, length: int) -> torch.Tensor:
        """Each token's time ``[B, L]`` from per-sequence ``[B]`` or per-block ``[B, nb]`` times."""
        if t.dim() == 1:
            return t[:, None].expand(-1, length)
        return t.repeat_interleave(self.blocks(length), dim=1)[:, :length]

    def logits(self, model, z: torch.Tensor, x: torch.Tensor, t: torch.Tensor, cond) -> torch.Tensor:
        """The model's predictions ``[B, L, V]`` for the noisy ``z`` (two-stream with the clean ``x``
        for block diffusion). ``t`` is the per-sequence time the model sees."""
        b = self.blocks(x.shape[1])
        if b == x.shape[1]:
            return model(z, t, cond)
        inp, att = two_stream(z, x, b)
        return model(inp, t, cond, attention=att)[:, : x.shape[1]]

    def _masked_ce(self, model, batch, t: torch.Tensor, u: torch.Tensor):
        """Corrupt ``batch`` at times ``t`` (``[B]`` or ``[B, blocks]``) with uniforms ``u``; return the
        per-token cross-entropy (nats), the masked indicator and the real-token indicator, each ``[B, L]``."""
        tt = self._token_time(t, batch.x.shape[1])
        keep = u < self.path.kappa(tt)
        z = torch.where(keep, batch.x, torch.full_like(batch.x, self.path.mask_id))
        if batch.known is not None:  # given tokens stay visible and out of the loss
            z = torch.where(batch.known.bool(), batch.x, z)
        t_model = t if t.dim() == 1 else t.mean(1)
        out = self.logits(model, z, batch.x, t_model, batch.cond)
        ce = F.cross_entropy(out.float().transpose(1, 2), batch.x, reduction="none")
        masked = (z == self.path.mask_id).float()
        real = torch.ones_like(masked) if batch.mask is None else batch.mask.float()
        if batch.known is not None:
            real = real * (~batch.known.bool()).float()
        return ce, masked, real, tt

    def token_nelbo(self, model, batch, rand: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence weighted masked cross-entropy (nats) ``[B]`` and real-token counts ``[B]``
        (``rand`` from :meth:`draw`: times ``t`` or, for the count estimator, counts ``k``)."""
        if "k" not in rand:
            ce, masked, real, tt = self._masked_ce(model, batch, rand["t"], rand["u"])
            return (ce * masked * real * self.path.weight(tt)).sum(1), real.sum(1)
        if batch.known is not None:
            raise ContractError("the count estimator draws which tokens to mask among all of a block; "
                                "use estimator 'time' with known tokens")
        x = batch.x
        masked, w = self._count_mask(x, rand["k"], rand["u"])
        z = torch.where(masked, torch.full_like(x, self.path.mask_id), x)
        t_model = 1 - (rand["k"] / self._block_lengths(x.shape[1], x.device)).mean(1)
        out = self.logits(model, z, x, t_model, batch.cond)
        ce = F.cross_entropy(out.float().transpose(1, 2), x, reduction="none")
        real = torch.ones_like(ce) if batch.mask is None else batch.mask.float()
        return (ce * masked.float() * real * w).sum(1), real.sum(1)

    def loss(self, model, batch, rand: dict | None = None, generator: torch.Generator | None = None):
        rand = rand if rand is not None else self.draw(batch.x.shape[0], batch.x, generator)
        per_seq, count = self.token_nelbo(model, batch, rand)
        return per_seq.sum() / count.sum().clamp_min(1)

    @torch.no_grad()
    def nelbo(self, model, data, batch_size: int = 64, repeats: int = 4, seed: int = 0,
              estimator: str | None = None) -> float:
        """Validation NELBO in nats per token (``repeats`` stratified draws per sequence; ``estimator``
        ``time`` or ``count``, default the objective's: both estimate the same bound)."""
        g = torch.Generator(device=data.x.device).manual_seed(seed)
        total, count = 0.0, 0.0
        est = estimator or self.estimator
        if est not in ESTIMATORS:
            raise UnknownNameError("NELBO estimator", est, ESTIMATORS)
        for _ in range(repeats):
            for s in range(0, len(data), batch_size):
                b = data.index(slice(s, s + batch_size))
                rand = (self.draw_counts if est == "count" else self.draw_times)(len(b), b.x, g)
                per_seq, c = self.token_nelbo(model, b, rand)
                total, count = total + float(per_seq.sum()), count + float(c.sum())
        return total / count

    @torch.no_grad()
    def masked_ce_curve(self, model, data, times: list[float], batch_size: int = 64, seed: int = 0) -> list[float]:
        """Mean cross-entropy (nats) of masked tokens at fixed times (every block at the same t): the
        NELBO's integrand.

        For the linear schedule NELBO = ∫_0^1 curve(t) dt, so the curve shows where a model loses
        (near t = 0 it is bounded below by the per-position marginal entropy; near t = 1 almost
        all context is visible).
        """
        g = torch.Generator(device=data.x.device).manual_seed(seed)
        out = []
        for t in times:
            total, count = 0.0, 0.0
            for s in range(0, len(data), batch_size):
                b = data.index(slice(s, s + batch_size))
                tb = torch.full((len(b),), float(t), device=b.x.device)
                u = torch.rand(b.x.shape, generator=g, device=b.x.device)
                ce, masked, real, _ = self._masked_ce(model, b, tb, u)
                total, count = total + float((ce * masked * real).sum()), count + float((masked * real).sum())
            out.append(total / max(count, 1.0))
        return out

    @torch.no_grad()
    def generate(self, model, shape: tuple[int, ...], opts: SampleOptions, cond=None,
                 generator: torch.Generator | None = None, device="cpu",
                 known: torch.Tensor | None = None, x_known: torch.Tensor | None = None,
                 kv_cache: bool = True) -> SampleResult:
        """Unmask an all-masked ``[B, L]`` sequence, block by block, with ``opts.nfe`` steps in all.

        ``opts.solver`` names a registered sampler (:mod:`panflow.unmask`: ancestral, confidence,
        remdm); the steps are shared evenly between blocks (at least one each). ``known``/``x_known``
        hold given tokens (a prefix, the two sides of an infill — for block diffusion only the
        context on the left is seen). Block diffusion keeps finished blocks' keys/values in a
        :class:`~panflow.KVCache` (``kv_cache=False`` re-reads the whole prefix each call; the
        samples are the same). With ``opts.stop_token`` ≥ 0 a sequence ends at that token: what
        follows is set to it, and sampling stops once every sequence has ended. NFE counts model
        calls actually made (a step that changes nothing reuses the last output).
        """
        sampler_name = opts.solver
        UNMASK_SAMPLERS.lookup(sampler_name)
        refuse_potentials(opts, "masked diffusion")
        steps = int(opts.nfe)
        if steps <= 0:
            raise PanflowError(f"NFE must be positive, got {steps}")
        cond = dict(cond or {})
        mask_id = self.path.mask_id
        n, length = shape
        z = torch.full(shape, mask_id, dtype=torch.long, device=device)
        free = torch.ones(shape, dtype=torch.bool, device=device)
        if known is not None:
            if x_known is None or tuple(x_known.shape) != tuple(shape) or tuple(known.shape) != tuple(shape):
                raise DataError(f"known tokens and their mask must both have shape {list(shape)}")
            free = ~known.bool().to(device)
            z = torch.where(free, z, x_known.to(device))
        b = self.blocks(length)
        nb = -(-length // b)
        per_block = max(1, steps // nb)
        cache = KVCache() if kv_cache and nb > 1 else None
        nfe, done_to = 0, 0
        for k in range(nb):
            s0, e0 = k * b, min(length, (k + 1) * b)

            def fn(zb: torch.Tensor, t: float, s0: int = s0) -> torch.Tensor:
                tb = torch.full((n,), t, device=device)
                if nb == 1:
                    return model(zb, tb, cond)
                c0 = cache.length if cache is not None else 0  # clean tokens before c0 are cached
                inp, att = context_call(z[:, c0:s0], zb, s0, b, cache)
                out = model(inp, tb, cond, attention=att)[:, s0 - c0:]
                if cache is not None:
                    cache.length = s0
                return out

            zb, used = unmask(fn, z[:, s0:e0], free[:, s0:e0], per_block, self.path.kappa, opts, mask_id, generator)
            z[:, s0:e0], nfe, done_to = zb, nfe + used, e0
            if opts.stop_token >= 0 and bool((z[:, :e0] == opts.stop_token).any(1).all()):
                break
        if done_to < length:  # every sequence ended early; nothing was sampled after its stop token
            z[:, done_to:] = opts.stop_token
        if opts.stop_token >= 0:
            z = _after_stop(z, opts.stop_token)
        return SampleResult(z, nfe, per_block * nb, sampler_name)

    def to_json(self) -> dict[str, Any]:
        d = {"kind": self.kind, "path": {"type": "masked", "schedule": self.path.schedule},
             "vocab_size": self.path.vocab_size, "mask_id": self.path.mask_id,
             "time_direction": "0=noise,1=data"}
        if self.block_size:
            d["block_size"] = self.block_size
        if self.estimator != "time":
            d["estimator"] = self.estimator
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], spec=None) -> MaskedObjective:
        if d.get("time_direction") != "0=noise,1=data":
            raise ContractError(f"checkpoint uses time direction {d.get('time_direction')!r}")
        return cls(d["vocab_size"], d["path"]["schedule"], spec.conditions if spec is not None else (),
                   d.get("block_size", 0), d.get("estimator", "time"))


def _after_stop(z: torch.Tensor, stop: int) -> torch.Tensor:
    """Every token after a row's first ``stop`` token set to ``stop`` (variable-length output)."""
    seen = (z == stop).long().cumsum(1) > 0
    return torch.where(seen, torch.full_like(z, stop), z)


class AutoregressiveObjective:
    """Next-token cross-entropy for a causal model (the baseline for masked diffusion).

    The model sees ``[BOS, x_1 … x_{L−1}]`` (BOS = the mask id) and predicts ``x_1 … x_L``, so
    its NLL covers the same L tokens as the diffusion NELBO.
    """

    kind = "autoregressive"

    def __init__(self, vocab_size: int):
        self.vocab_size = int(vocab_size)

    def draw(self, n: int, x: torch.Tensor, generator=None) -> dict:
        return {}

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        bos = torch.full_like(x[:, :1], self.vocab_size)
        return torch.cat([bos, x[:, :-1]], 1)

    def token_nll(self, model, x: torch.Tensor) -> torch.Tensor:
        """Per-token NLL ``[B, L]`` in nats."""
        t = torch.ones(x.shape[0], device=x.device)
        logits = model(self._inputs(x), t, {})
        return F.cross_entropy(logits.float().transpose(1, 2), x, reduction="none")

    def loss(self, model, batch, rand=None, generator=None):
        return self.token_nll(model, batch.x).mean()

    @torch.no_grad()
    def generate(self, model, shape, opts=None, cond=None, generator=None, device="cpu",
                 prefix: torch.Tensor | None = None) -> SampleResult:
        """Left-to-right sampling (float64 categorical); NFE = number of positions generated."""
        b, length = shape
        x = torch.zeros(shape, dtype=torch.long, device=device)
        start = 0
        if prefix is not None:
            start = prefix.shape[1]
            x[:, :start] = prefix
        t = torch.ones(b, device=device)
        for pos in range(start, length):
            logits = model(self._inputs(x), t, {})[:, pos].double()
            x[:, pos] = categorical(logits.softmax(-1), generator)
        return SampleResult(x, length - start, length - start, "autoregressive")


def autoregressive_nll(model, data, vocab_size: int, batch_size: int = 64) -> float:
    """Validation NLL of a causal model in nats per token."""
    obj = AutoregressiveObjective(vocab_size)
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(data), batch_size):
            nll = obj.token_nll(model, data.x[s:s + batch_size])
            total, count = total + float(nll.sum()), count + nll.numel()
    return total / count
