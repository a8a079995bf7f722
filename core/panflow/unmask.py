"""Unmasking samplers for masked (absorbing-state) diffusion, registered by name.

One loop (:func:`unmask`) walks a keep-probability grid ``κ_0 = 0 → κ_K = 1`` over a block of
tokens ``z [B, Lb]``; at each step a registered :class:`UnmaskSampler` decides which tokens to
reveal (and, for remasking samplers, which to hide again) from the model's unmasking
distribution, after temperature and nucleus (top-p) truncation (:func:`shape_probs`). NFE counts
model calls actually made: a step that changes nothing reuses the previous output (exact for the
time-free models masked diffusion uses).

- ``ancestral``: each masked token is revealed with probability (κ_t − κ_s)/(1 − κ_s).
- ``confidence``: the expected number of tokens is revealed, the positions whose unmasking
  distribution is most certain (largest top probability) first, each with a token drawn from it;
  with ``order_noise > 0`` the confidences are perturbed by Gumbel noise (scale annealed to 0 over
  the steps, as in MaskGIT's choice temperature), so the order is sampled rather than greedy.
- ``entropy``: the same, lowest-entropy positions first.
- ``maskgit``: the same, but ranking positions by the probability of the token drawn there
  (MaskGIT, Chang et al. 2022) — biased towards frequent tokens; kept for comparison.
- ``remdm``: ReMDM (Wang et al. 2025, arXiv:2503.00307) with the max-capped schedule: each
  revealed token is masked again with probability σ = min(η, (1 − κ_t)/κ_s) (η = ``remask``) and
  masked tokens reveal with (κ_t − (1 − σ) κ_s)/(1 − κ_s), which keeps the marginal κ_t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .nametable import NameTable
from .sampling import SampleOptions


def categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Sample from ``probs [..., V]`` (float64 inverse CDF; rows need not be normalised)."""
    p = probs.double()
    cdf = p.cumsum(-1)
    u = torch.rand(p.shape[:-1], generator=generator, device=p.device, dtype=torch.float64)[..., None]
    u = u * cdf[..., -1:]
    return torch.searchsorted(cdf, u).squeeze(-1).clamp_max(p.shape[-1] - 1)


def shape_probs(logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0) -> torch.Tensor:
    """``softmax(logits / T)`` in float64, restricted to the smallest set of tokens whose mass
    reaches ``top_p`` (nucleus; Holtzman et al. 2020) and renormalised. ``logits [..., V]``."""
    lg = logits.double()
    if temperature <= 0:  # the limit T -> 0: all mass on the argmax
        return torch.nn.functional.one_hot(lg.argmax(-1), lg.shape[-1]).double()
    p = (lg / temperature).softmax(-1)
    if top_p < 1.0:
        sp, idx = p.sort(-1, descending=True)
        before = sp.cumsum(-1) - sp  # mass strictly above each token
        sp = torch.where(before < top_p, sp, torch.zeros_like(sp))
        p = torch.zeros_like(p).scatter(-1, idx, sp)
        p = p / p.sum(-1, keepdim=True)
    return p


@dataclass
class Step:
    """One unmasking step over a block: the state and what the model says about it.

    ``z [B, Lb]`` current tokens (``mask_id`` where masked); ``free [B, Lb]`` positions the sampler
    may change (not given); ``probs [B, Lb, V]`` the shaped unmasking distribution; ``ks < kt`` the
    keep probabilities before and after; ``index`` / ``steps`` the step's place in the grid.
    """

    z: torch.Tensor
    free: torch.Tensor
    probs: torch.Tensor
    ks: float
    kt: float
    index: int
    steps: int
    mask_id: int
    opts: SampleOptions
    generator: torch.Generator | None


class UnmaskSampler:
    """Interface: ``step(s) -> z`` (new tokens). ``remasks`` samplers may hide revealed tokens, so
    the loop keeps stepping while nothing is masked."""

    name = ""
    remasks = False

    def step(self, s: Step) -> torch.Tensor:
        raise NotImplementedError


def _reveal_fraction(ks: float, kt: float) -> float:
    return (kt - ks) / (1 - ks) if 1 - ks > 0 else 1.0


class Ancestral(UnmaskSampler):
    name = "ancestral"

    def step(self, s: Step) -> torch.Tensor:
        masked = (s.z == s.mask_id) & s.free
        tokens = categorical(s.probs, s.generator)
        u = torch.rand(s.z.shape, generator=s.generator, device=s.z.device, dtype=torch.float64)
        return torch.where(masked & (u < _reveal_fraction(s.ks, s.kt)), tokens, s.z)


class Confidence(UnmaskSampler):
    """Reveal the most certain masked positions first, then draw their tokens.

    A position's confidence is the log of its largest unmasking probability: a function of the
    current state only, never of the token drawn there, so the order carries no selection bias and
    every revealed token is a draw from its conditional (with an exact model and one token revealed
    per step — as many steps as tokens — any such order samples the joint exactly; tokens revealed
    in the same step are drawn independently, as in ancestral sampling). Scoring by the drawn
    token's probability instead (:class:`TokenConfidence`, MaskGIT's rule) keeps a position when its
    draw happened to be a likely token, which drives the samples towards the most frequent tokens
    (unigram entropy collapses).
    """

    name = "confidence"

    def score(self, s: Step, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, Lb]`` log confidence of each position (higher is revealed first)."""
        return s.probs.max(-1).values.clamp_min(1e-300).log()

    def step(self, s: Step) -> torch.Tensor:
        masked = (s.z == s.mask_id) & s.free
        tokens = categorical(s.probs, s.generator)
        n_masked = masked.sum(1)
        last = s.index == s.steps - 1
        # the expected count, rounded up; the tolerance keeps float error (1/3 · 3 = 1.0000000000000002) from
        # turning one token into two
        n_reveal = n_masked if last else torch.ceil(n_masked.double() * _reveal_fraction(s.ks, s.kt) - 1e-9).long()
        score = self.score(s, tokens)
        if s.opts.order_noise > 0:
            u = torch.rand(score.shape, generator=s.generator, device=score.device, dtype=torch.float64)
            gumbel = -torch.log(-torch.log(u.clamp(1e-300, 1 - 1e-16)))
            score = score + s.opts.order_noise * (1 - s.index / s.steps) * gumbel
        score = torch.where(masked, score, torch.full_like(score, -torch.inf))
        order = score.argsort(dim=1, descending=True).argsort(dim=1)
        return torch.where(masked & (order < n_reveal[:, None]), tokens, s.z)


class EntropyOrder(Confidence):
    """Reveal the positions whose unmasking distribution has the lowest entropy first (a certainty
    measure over the whole distribution, not just its top; state-only like :class:`Confidence`)."""

    name = "entropy"

    def score(self, s: Step, tokens: torch.Tensor) -> torch.Tensor:
        p = s.probs
        return (p * p.clamp_min(1e-300).log()).sum(-1)  # −H: higher is more certain


class TokenConfidence(Confidence):
    """MaskGIT's rule (Chang et al. 2022): a position's confidence is the probability of the token
    drawn there. Kept to show the collapse it causes (see :class:`Confidence`)."""

    name = "maskgit"

    def score(self, s: Step, tokens: torch.Tensor) -> torch.Tensor:
        return s.probs.gather(-1, tokens[..., None]).squeeze(-1).clamp_min(1e-300).log()


class ReMDM(UnmaskSampler):
    name = "remdm"
    remasks = True

    def step(self, s: Step) -> torch.Tensor:
        masked = (s.z == s.mask_id) & s.free
        revealed = (s.z != s.mask_id) & s.free
        sigma = min(s.opts.remask, (1 - s.kt) / s.ks) if s.ks > 0 else 0.0
        p_reveal = (s.kt - (1 - sigma) * s.ks) / (1 - s.ks) if 1 - s.ks > 0 else 1.0
        tokens = categorical(s.probs, s.generator)
        u = torch.rand(s.z.shape, generator=s.generator, device=s.z.device, dtype=torch.float64)
        z = torch.where(masked & (u < p_reveal), tokens, s.z)
        return torch.where(revealed & (u < sigma), torch.full_like(z, s.mask_id), z)


UNMASK_SAMPLERS: NameTable = NameTable("masked-diffusion sampler",
                                       {c.name: c() for c in (Ancestral, Confidence, EntropyOrder, TokenConfidence, ReMDM)})


def register_unmask_sampler(sampler: UnmaskSampler) -> UnmaskSampler:
    """Add a sampler (an :class:`UnmaskSampler` with a ``name``) for every masked-diffusion run."""
    return UNMASK_SAMPLERS.add(sampler.name, sampler)


def unmask(logits_fn: Callable[[torch.Tensor, float], torch.Tensor], z: torch.Tensor, free: torch.Tensor, steps: int,
           kappa: Callable[[torch.Tensor], torch.Tensor], opts: SampleOptions, mask_id: int,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Denoise the block ``z [B, Lb]`` in ``steps`` steps; returns the tokens and the model calls made.

    ``logits_fn(z, t) -> [B, Lb, V]`` is the model on the block at time ``t`` (with whatever context
    it carries).
    """
    sampler = UNMASK_SAMPLERS.lookup(opts.solver)
    times = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    grid = kappa(times)
    nfe, probs = 0, None
    for i in range(steps):
        if not sampler.remasks and not bool(((z == mask_id) & free).any()):
            break
        if probs is None:
            probs = shape_probs(logits_fn(z, float(times[i])), opts.temperature, opts.top_p)
            nfe += 1
        new = sampler.step(Step(z, free, probs, float(grid[i]), float(grid[i + 1]), i, steps, mask_id, opts,
                                generator))
        if not torch.equal(new, z):
            z, probs = new, None
    return z, nfe


__all__ = ["UNMASK_SAMPLERS", "Step", "UnmaskSampler", "categorical", "register_unmask_sampler", "shape_probs",
           "unmask"]
