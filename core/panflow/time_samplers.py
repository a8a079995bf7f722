"""Training-time distributions over t ∈ [0, 1]; each serialises into the checkpoint contract.

A plugin adds one with :func:`register_time_sampler` (a :class:`TimeSampler` subclass whose
``name`` is what ``flow.time_sampler`` selects and whose keyword arguments are
``flow.time_sampler_options``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from .nametable import NameTable


def _shape(n: int | tuple[int, ...]) -> tuple[int, ...]:
    return (n,) if isinstance(n, int) else tuple(n)


class TimeSampler:
    name = "base"

    def sample(self, n: int | tuple[int, ...], generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
        """Return times in (0, 1) of shape ``[n]`` (or ``n`` itself when a tuple: per-element times)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name}


class UniformTime(TimeSampler):
    name = "uniform"

    def sample(self, n, generator=None, device="cpu"):
        return torch.rand(_shape(n), generator=generator, device=device)


class LogitNormalTime(TimeSampler):
    """t = sigmoid(m + s·z), z ~ N(0, 1) (Esser et al. 2024)."""

    name = "logit_normal"

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        if std <= 0:
            raise ValueError(f"logit-normal std must be > 0, got {std}")
        self.mean, self.std = float(mean), float(std)

    def sample(self, n, generator=None, device="cpu"):
        z = torch.randn(_shape(n), generator=generator, device=device)
        return torch.sigmoid(self.mean + self.std * z)

    def to_json(self):
        return {"name": self.name, "mean": self.mean, "std": self.std}


class ShiftedTime(TimeSampler):
    """A base sampler pushed towards noise by ``shift`` > 1 (resolution shift, Esser et al. 2024).

    With noise level σ = 1 − t: σ' = shift·σ / (1 + (shift − 1)·σ), i.e.
    t' = t / (1 + (shift − 1)(1 − t)).
    """

    name = "shifted"

    def __init__(self, shift: float = 3.0, base: dict[str, Any] | TimeSampler | None = None):
        if shift <= 0:
            raise ValueError(f"time shift must be > 0, got {shift}")
        self.shift = float(shift)
        self.base = make_time_sampler(base) if isinstance(base, dict) else (base or UniformTime())

    def sample(self, n, generator=None, device="cpu"):
        t = self.base.sample(n, generator, device)
        return shift_time(t, self.shift)

    def to_json(self):
        return {"name": self.name, "shift": self.shift, "base": self.base.to_json()}


class UShapedTime(TimeSampler):
    """Density ``p(t) = a·cosh(a(t − ½)) / (2·sinh(a/2))`` on [0, 1]: most samples near either end.

    The U-shaped distribution of Lee et al. 2024 ("Improving the training of rectified flows",
    NeurIPS; a = 4 there) for training on reflow pairs: Euler at one step reads only v(x, 0), and
    the reflow loss is largest near the path's ends, so the training spends its samples there.
    Drawn exactly: an exponential density on [0, 1] by its inverse CDF, mirrored with probability ½.
    """

    name = "u_shaped"

    def __init__(self, a: float = 4.0):
        if a <= 0:
            raise ValueError(f"U-shaped time sampler needs a > 0, got {a}")
        self.a = float(a)

    def sample(self, n, generator=None, device="cpu"):
        shape = _shape(n)
        u = torch.rand(shape, generator=generator, device=device)
        flip = torch.rand(shape, generator=generator, device=device) < 0.5
        t = torch.log1p(u * math.expm1(self.a)) / self.a  # density ∝ exp(a t) on [0, 1]
        return torch.where(flip, 1.0 - t, t)

    def to_json(self):
        return {"name": self.name, "a": self.a}


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Monotone map of [0, 1] onto itself; shift > 1 spends more time near noise (t = 0)."""
    return t / (1 + (shift - 1) * (1 - t))


TIME_SAMPLERS = NameTable("time sampler", {"uniform": UniformTime, "logit_normal": LogitNormalTime,
                                           "shifted": ShiftedTime, "u_shaped": UShapedTime})


def register_time_sampler(cls: type[TimeSampler]) -> type[TimeSampler]:
    """Add a :class:`TimeSampler` subclass under ``cls.name``; a different class under a taken name is an error.

    Its ``to_json()`` must give ``{"name": cls.name, **kwargs}`` so a checkpoint rebuilds it."""
    if not (isinstance(cls, type) and issubclass(cls, TimeSampler)) or cls.name in ("", "base"):
        raise TypeError(f"register_time_sampler takes a TimeSampler subclass with its own name, got {cls!r}")
    return TIME_SAMPLERS.add(cls.name, cls)


def make_time_sampler(spec: str | dict[str, Any] | TimeSampler) -> TimeSampler:
    """``"uniform"``, ``{"name": "logit_normal", "mean": 0, "std": 1}``, or an instance."""
    if isinstance(spec, TimeSampler):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    spec = dict(spec)
    name = spec.pop("name")
    return TIME_SAMPLERS.lookup(name)(**spec)
