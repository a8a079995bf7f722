"""Known-part samplers: which elements of a training sample are given (clean, excluded from the loss).

A known mask is ``bool [n, *time_shape]`` over the elements that carry their own time (frames,
action steps, residues, vector coordinates). Training presents known elements clean (time 1) and
leaves them out of the loss; sampling holds them at their given values. Which elements a domain
trains with is a distribution drawn here; samplers are registered by name so a plugin can add one
with :func:`register_known_sampler`.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import ConfigError
from .nametable import NameTable


class KnownSampler:
    """Draws known masks ``[n, *time_shape]`` for a training batch (``None``: nothing known)."""

    name = "base"

    def __init__(self, **options: Any):
        if options:
            raise ConfigError(f"known sampler '{self.name}' takes no options, got {sorted(options)}")

    def draw(self, n: int, time_shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device | str) -> torch.Tensor | None:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name}


class NoKnown(KnownSampler):
    """Nothing is given: unconditional on the sample's own elements (draws no randomness)."""

    name = "none"

    def draw(self, n, time_shape, generator, device):
        return None


class _WithNone(KnownSampler):
    """Base for samplers that leave a fraction ``p_none`` of samples with nothing known."""

    def __init__(self, p_none: float = 0.2):
        if not 0.0 <= p_none <= 1.0:
            raise ConfigError(f"known sampler '{self.name}': p_none must be in [0, 1], got {p_none}")
        self.p_none = float(p_none)

    def to_json(self):
        return {"name": self.name, "p_none": self.p_none}

    def _none_rows(self, n, generator, device) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=device) < self.p_none


class PrefixKnown(_WithNone):
    """The first ``k`` steps of the first time axis are known, ``k`` uniform in ``1..T−1``
    (forecasting from given frames, committed actions, a given history)."""

    name = "prefix"

    def draw(self, n, time_shape, generator, device):
        if not time_shape:
            raise ConfigError("known sampler 'prefix' needs per-element time (DataSpec.time_shape)")
        steps = time_shape[0]
        none = self._none_rows(n, generator, device)
        k = torch.randint(1, max(steps, 2), (n,), generator=generator, device=device)
        k = torch.where(none, torch.zeros_like(k), k)
        pos = torch.arange(steps, device=device)
        known = pos[None, :] < k[:, None]
        return known.reshape(n, steps, *([1] * (len(time_shape) - 1))).expand(n, *time_shape)


class RandomKnown(_WithNone):
    """Each sample draws a rate r ~ U(0, 1) and each element is known with probability r
    (inpainting and motif-style conditioning on arbitrary subsets)."""

    name = "random"

    def draw(self, n, time_shape, generator, device):
        if not time_shape:
            raise ConfigError("known sampler 'random' needs per-element time (DataSpec.time_shape)")
        none = self._none_rows(n, generator, device)
        rate = torch.rand(n, generator=generator, device=device)
        u = torch.rand((n, *time_shape), generator=generator, device=device)
        known = u < rate.reshape(n, *([1] * len(time_shape)))
        all_known = known.reshape(n, -1).all(1)  # never give the whole sample: nothing left to learn
        drop = none | all_known
        return known & ~drop.reshape(n, *([1] * len(time_shape)))


KNOWN_SAMPLERS = NameTable("known sampler", {"none": NoKnown, "prefix": PrefixKnown, "random": RandomKnown})


def register_known_sampler(cls: type[KnownSampler]) -> type[KnownSampler]:
    """Add a known sampler class under ``cls.name`` (usable as ``flow.known = "<name>"``)."""
    return KNOWN_SAMPLERS.add(cls.name, cls)


def make_known_sampler(spec: str | dict[str, Any] | KnownSampler) -> KnownSampler:
    """``"prefix"``, ``{"name": "random", "p_none": 0.1}`` or an instance."""
    if isinstance(spec, KnownSampler):
        return spec
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name")
    cls = KNOWN_SAMPLERS.lookup(name)
    try:
        return cls(**spec)
    except TypeError as exc:
        raise ConfigError(f"known sampler '{name}': {exc}") from exc


def expand_known(known: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast ``known [B, *time_shape]`` against ``like [B, *shape]`` (right-padding dims)."""
    k = known.bool()
    return k.reshape(*k.shape, *([1] * (like.dim() - k.dim()))).expand_as(like)


def known_fraction(known: torch.Tensor | None) -> float:
    return 0.0 if known is None else float(known.float().mean())


__all__ = ["KnownSampler", "KNOWN_SAMPLERS", "register_known_sampler", "make_known_sampler", "expand_known",
           "known_fraction"]
