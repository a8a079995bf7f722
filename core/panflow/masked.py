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

from .errors import ContractError, DataError, PanflowError, UnknownNameError
from .sampling import SampleOptions, SampleResult

MASKED_SCHEDULES = ("linear", "cosine")
MASKED_SAMPLERS = ("ancestral", "confidence")


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


def _categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Sample from ``probs [..., V]`` in float64 by the Gumbel-free inverse-CDF method."""
    p = probs.double()
    cdf = p.cumsum(-1)
    u = torch.rand(p.shape[:-1], generator=generator, device=p.device, dtype=torch.float64)[..., None]
    u = u * cdf[..., -1:]
    return torch.searchsorted(cdf, u).squeeze(-1).clamp_max(p.shape[-1] - 1)


class MaskedObjective:
    """MDLM-style masked diffusion: NELBO loss in nats per token, parallel unmasking samplers."""

    kind = "masked"

    def __init__(self, vocab_size: int, schedule: str = "linear", conditions: tuple = ()):
        self.path = MaskedPath(vocab_size, schedule)
        self.conditions = tuple(conditions)
        self.time_shape = ()

    def draw(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """Stratified times over the batch and per-token uniforms."""
        off = torch.rand((), generator=generator, device=x.device)
        t = (off + torch.arange(n, device=x.device) / n) % 1.0
        u = torch.rand((n, *x.shape[1:]), generator=generator, device=x.device)
        return {"t": t, "u": u}

    def _masked_ce(self, model, batch, t: torch.Tensor, u: torch.Tensor):
        """Corrupt ``batch`` at times ``t [B]`` with uniforms ``u``; return the per-token cross-entropy
        (nats), the masked indicator and the real-token indicator, each ``[B, L]``."""
        z = self.path.corrupt(batch.x, t, u)
        if batch.known is not None:  # given tokens stay visible and out of the loss
            z = torch.where(batch.known.bool(), batch.x, z)
        ce = F.cross_entropy(model(z, t, batch.cond).float().transpose(1, 2), batch.x, reduction="none")
        masked = (z == self.path.mask_id).float()
        real = torch.ones_like(masked) if batch.mask is None else batch.mask.float()
        if batch.known is not None:
            real = real * (~batch.known.bool()).float()
        return ce, masked, real

    def token_nelbo(self, model, batch, rand: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence weighted masked cross-entropy (nats) ``[B]`` and real-token counts ``[B]``."""
        ce, masked, real = self._masked_ce(model, batch, rand["t"], rand["u"])
        return (ce * masked * real).sum(1) * self.path.weight(rand["t"]), real.sum(1)

    def loss(self, model, batch, rand: dict | None = None, generator: torch.Generator | None = None):
        rand = rand if rand is not None else self.draw(batch.x.shape[0], batch.x, generator)
        per_seq, count = self.token_nelbo(model, batch, rand)
        return per_seq.sum() / count.sum().clamp_min(1)

    @torch.no_grad()
    def nelbo(self, model, data, batch_size: int = 64, repeats: int = 4, seed: int = 0) -> float:
        """Validation NELBO in nats per token (``repeats`` stratified time draws per sequence)."""
        g = torch.Generator(device=data.x.device).manual_seed(seed)
        total, count = 0.0, 0.0
        for _ in range(repeats):
            for s in range(0, len(data), batch_size):
                b = data.index(slice(s, s + batch_size))
                per_seq, c = self.token_nelbo(model, b, self.draw(len(b), b.x, g))
                total, count = total + float(per_seq.sum()), count + float(c.sum())
        return total / count

    @torch.no_grad()
    def masked_ce_curve(self, model, data, times: list[float], batch_size: int = 64, seed: int = 0) -> list[float]:
        """Mean cross-entropy (nats) of masked tokens at fixed times: the NELBO's integrand.

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
                ce, masked, real = self._masked_ce(model, b, tb, torch.rand(b.x.shape, generator=g, device=b.x.device))
                total, count = total + float((ce * masked * real).sum()), count + float((masked * real).sum())
            out.append(total / max(count, 1.0))
        return out

    @torch.no_grad()
    def generate(self, model, shape: tuple[int, ...], opts: SampleOptions, cond=None,
                 generator: torch.Generator | None = None, device="cpu",
                 known: torch.Tensor | None = None, x_known: torch.Tensor | None = None) -> SampleResult:
        """Unmask an all-masked ``[B, L]`` sequence in ``opts.nfe`` steps.

        ``opts.solver``: ``ancestral`` (each masked token unmasks with probability
        (κ_t − κ_s)/(1 − κ_s), tokens drawn from the model) or ``confidence`` (the expected number
        of tokens is unmasked, most confident first). ``known``/``x_known`` hold given tokens (a
        prefix, the two sides of an infill) — the same known parts as for continuous data. NFE
        counts model calls actually made: a step that unmasks nothing reuses the previous output,
        which is exact for time-free models (the MDLM choice, and the text transformer's default)
        and, for a time-conditioned model, evaluates it at the time of the last change.
        """
        if opts.solver not in MASKED_SAMPLERS:
            raise UnknownNameError("masked-diffusion sampler", opts.solver, MASKED_SAMPLERS)
        method = opts.solver
        steps = int(opts.nfe)
        if steps <= 0:
            raise PanflowError(f"NFE must be positive, got {steps}")
        cond = dict(cond or {})
        mask_id = self.path.mask_id
        z = torch.full(shape, mask_id, dtype=torch.long, device=device)
        if known is not None:
            if x_known is None or tuple(x_known.shape) != tuple(shape) or tuple(known.shape) != tuple(shape):
                raise DataError(f"known tokens and their mask must both have shape {list(shape)}")
            z = torch.where(known.bool().to(device), x_known.to(device), z)
        grid = torch.linspace(0, 1, steps + 1, dtype=torch.float64, device=device)
        nfe, probs = 0, None
        for i in range(steps):
            masked = z == mask_id
            if not bool(masked.any()):
                break
            s, t = grid[i], grid[i + 1]
            if probs is None:  # the model's output only changes when some token was unmasked
                tb = torch.full((shape[0],), float(s), device=device)
                logits = model(z, tb, cond).double()
                probs = logits.softmax(-1)
                nfe += 1
            ks, kt = self.path.kappa(s), self.path.kappa(t)
            frac = float((kt - ks) / (1 - ks)) if float(1 - ks) > 0 else 1.0
            tokens = _categorical(probs, generator)
            if method == "ancestral":
                u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
                reveal = masked & (u < frac)
            else:
                n_masked = masked.sum(1)
                n_reveal = torch.ceil(n_masked.double() * frac).long() if i < steps - 1 else n_masked
                conf = probs.gather(-1, tokens[..., None]).squeeze(-1)
                conf = torch.where(masked, conf, torch.full_like(conf, -1.0))
                order = conf.argsort(dim=1, descending=True).argsort(dim=1)
                reveal = masked & (order < n_reveal[:, None])
            if bool(reveal.any()):
                z = torch.where(reveal, tokens, z)
                probs = None
        return SampleResult(z, nfe, steps, method)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": {"type": "masked", "schedule": self.path.schedule},
                "vocab_size": self.path.vocab_size, "mask_id": self.path.mask_id,
                "time_direction": "0=noise,1=data"}

    @classmethod
    def from_json(cls, d: dict[str, Any], spec=None) -> MaskedObjective:
        if d.get("time_direction") != "0=noise,1=data":
            raise ContractError(f"checkpoint uses time direction {d.get('time_direction')!r}")
        return cls(d["vocab_size"], d["path"]["schedule"], spec.conditions if spec is not None else ())


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
            x[:, pos] = _categorical(logits.softmax(-1), generator)
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
