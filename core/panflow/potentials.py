"""Sampling under potentials: training-free guidance by a differentiable energy on the predicted
clean sample (``SampleOptions.potentials``).

A potential is a differentiable residual ``r(x̂₁) [B]`` (0 = satisfied; energy ``E = r² / 2``) on the
model's prediction of the clean sample ``x̂₁ [B, *shape]`` (model space), e.g. the log ratio of a
protein chain's radius of gyration to a target size. At every velocity evaluation whose solver time
is at most ``t_max``, the prediction takes one Gauss–Newton step towards ``r = 0``,

    x̂₁ ← x̂₁ − λ · r ∇r / |∇r|²     (per sample; λ = ``weight``),

the smallest change of ``x̂₁`` that zeroes the linearised residual when λ = 1, and the velocity is
rebuilt from the corrected ``x̂₁`` and ``x_t`` on the path. The step is scale-free (multiplying r by
a constant changes nothing), and the gradient is taken at ``x̂₁``, not through the network, so a
step costs one residual gradient, not a backward pass of the model.
This is the conditioner idea of Chroma (Ingraham et al. 2023, Nature 623:1070 — protein design as
sampling under composable differentiable constraints) acting on the clean-sample estimate, as in
reconstruction guidance (Chung et al. 2023, "Diffusion posterior sampling", ICLR). Stopping at
``t_max < 1`` leaves the last stretch of the flow to the model alone: the velocity correction
grows like ``1 / (1 − t)``, and the model's own late steps restore the local detail a global
constraint disturbs. An evaluation at ``s = 1`` itself (Heun's last corrector) is never steered,
for the same reason.

It steers; it does not sample the exact conditional: on a correlated Gaussian (ρ = 0.8) held to
``a = 1.5`` this way, ``a`` ends exactly at 1.5 while the mean of ``b`` reaches 0.48, not the
conditional's 1.2 (tests/core/test_potentials.py). Use known parts (:mod:`panflow.inpaint`) where
the exact conditional matters, potentials for soft global properties a model misses.

A plugin adds one by subclassing :class:`Potential` and calling :func:`register_potential`;
``SampleOptions.potentials = {name: {"weight": λ, "t_max": t, **options}}`` uses it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch

from .errors import ConfigError
from .nametable import NameTable

Residual = Callable[[torch.Tensor], torch.Tensor]  # x̂₁ [B, *shape] -> r [B]
Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # vel(x, t_model, s)
RESERVED = ("weight", "t_max")  # the step's own options; the rest go to the potential


class Potential(ABC):
    """A residual on the clean-sample estimate. Subclasses set ``name`` and implement :meth:`bind`;
    the constructor takes the options of ``SampleOptions.potentials[name]`` (less weight, t_max);
    the residual sees model space (what the encoder made of the data)."""

    name: str = ""

    def __init__(self, **options: Any) -> None:
        if options:
            raise ConfigError(f"potential '{self.name}' takes no options, got {sorted(options)}")

    @abstractmethod
    def bind(self, cond: dict[str, torch.Tensor], batch: int, generator: torch.Generator | None) -> Residual:
        """The residual ``r(x̂₁ [B, *shape]) -> [B]`` for one sampling call with these conditions;
        draw any per-sample targets here (``generator``), so they stay fixed along the trajectory."""


POTENTIALS: NameTable = NameTable("potential", {})


def register_potential(cls: type[Potential]) -> type[Potential]:
    """Add a :class:`Potential` subclass under ``cls.name``; a different class under a taken name is an error."""
    if not (isinstance(cls, type) and issubclass(cls, Potential)) or not cls.name:
        raise ConfigError("register_potential takes a Potential subclass with a name")
    return POTENTIALS.add(cls.name, cls)


def get_potential(name: str) -> type[Potential]:
    return POTENTIALS.lookup(name)


def check_potential_options(potentials: dict) -> None:
    """Shape checks that need no registry: ``{name: {weight >= 0, 0 < t_max <= 1, ...}}``."""
    if not isinstance(potentials, dict):
        raise ConfigError(f"potentials must be a table {{name: {{weight, t_max, ...}}}}, got {type(potentials).__name__}")
    for name, o in potentials.items():
        if not isinstance(o, dict):
            raise ConfigError(f"potentials.{name} must be a table of options, got {o!r}")
        w, t_max = o.get("weight", 1.0), o.get("t_max", 1.0)
        if not (isinstance(w, (int, float)) and w >= 0) or not (isinstance(t_max, (int, float)) and 0 < t_max <= 1):
            raise ConfigError(f"potentials.{name}: weight must be >= 0 and t_max in (0, 1], got {w!r}, {t_max!r}")


def refuse_potentials(opts, what: str) -> None:
    """For objectives without a clean estimate to steer (masked tokens, regression): potentials are an error."""
    if opts is not None and opts.potentials:
        raise ConfigError(f"potentials {sorted(opts.potentials)} steer a continuous flow; {what} has no clean "
                          "estimate to move: drop sample.potentials")


def gauss_newton_step(residual: Residual, x1: torch.Tensor, weight: float,
                      free: torch.Tensor | None = None) -> torch.Tensor:
    """``−weight · r ∇r / |∇r|²`` at ``x1 [B, *shape]`` (0 where the gradient vanishes). ``free``
    (bool, shaped like ``x1``) restricts the step to the elements that may move: held (known)
    elements neither move nor absorb part of the correction."""
    with torch.enable_grad():
        z = x1.detach().requires_grad_(True)
        e = residual(z)
        if e.shape != (x1.shape[0],):
            raise ConfigError(f"a potential's residual must have shape [B] = [{x1.shape[0]}], got {list(e.shape)}")
        (grad,) = torch.autograd.grad(e.sum(), z)
    e, grad = e.detach(), grad.detach()
    if free is not None:
        grad = grad * free.to(grad.dtype)
    norm2 = grad.flatten(1).pow(2).sum(1)
    scale = torch.where(norm2 > 0, -weight * e / norm2.clamp_min(1e-30), torch.zeros_like(e))
    return scale.reshape(-1, *([1] * (x1.dim() - 1))).to(x1.dtype) * grad.to(x1.dtype)


def with_potentials(vel: Velocity, potentials: dict, path, t_eps: float, cond: dict, batch: int,
                    generator: torch.Generator | None = None, hold: torch.Tensor | None = None) -> Velocity:
    """``vel(x, t, s)`` with every potential's Gauss–Newton step on the clean estimate where ``s <= t_max``.

    ``path`` converts between the velocity and the clean estimate (``x̂₁ = x_t + (1 − t) v`` on the
    linear path); ``t`` is the model's time (``[B]`` or per element), clamped to ``[t_eps, 1 − t_eps]``;
    ``hold`` (bool, shaped like a sample batch) marks known elements, which the step leaves alone.
    Potentials of weight 0 are not built at all (so they draw nothing from ``generator``).
    """
    if not potentials:
        return vel
    check_potential_options(potentials)
    free = None if hold is None else ~hold.bool()
    active = []
    for name, o in potentials.items():
        cls = get_potential(name)  # an unknown name is an error even at weight 0
        if float(o.get("weight", 1.0)) == 0:
            continue
        extra = {k: v for k, v in o.items() if k not in RESERVED}
        try:
            pot = cls(**extra)
        except TypeError as e:  # an option the potential does not take
            raise ConfigError(f"potential '{name}': {e}") from None
        active.append((pot.bind(cond, batch, generator), float(o.get("weight", 1.0)), float(o.get("t_max", 1.0))))
    if not active:
        return vel

    def f(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        v = vel(x, t, s)
        tc = t.clamp(t_eps, 1 - t_eps)
        x1 = path.convert(v, "velocity", "data", x, tc)
        moved = False
        for residual, w, t_max in active:
            on = (s.reshape(-1) <= t_max) & (s.reshape(-1) < 1.0)  # at s = 1 the correction would be divided by 1 − t ≈ 0
            if not bool(on.any()):
                continue
            x1 = x1 + gauss_newton_step(residual, x1, w, free) * on.reshape(-1, *([1] * (x.dim() - 1))).to(x1.dtype)
            moved = True
        return path.convert(x1, "data", "velocity", x, tc) if moved else v

    return f


__all__ = ["POTENTIALS", "Potential", "check_potential_options", "gauss_newton_step", "get_potential",
           "refuse_potentials", "register_potential", "with_potentials"]
