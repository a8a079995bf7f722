"""Ways of holding known elements while sampling (``SampleOptions.inpaint``), as registered methods.

Every method returns samples whose known elements equal their given values exactly.

- ``trained``: the model was trained with known parts (presented clean at time 1, left out of the
  loss), so the known elements are simply held at their values and given time 1.
- ``replacement``: training-free, for a model trained without known parts: known elements follow
  their own noising path ``α_s x_known + σ_s x0`` (the same ``x0`` as the sample) and the model sees
  them at the sample's time. Biased: nothing makes the generated part agree with the known one.
- ``repaint``: training-free with resampling (Lugmayr et al., "RePaint", CVPR 2022, adapted here to an
  ODE flow): each step is taken ``resample`` times; between takes the state is sent back to the
  step's start time through the forward kernel of the path (fresh noise) and the known elements are
  re-drawn from ``q(x_s | x_known)``. Costs ``resample``× the NFE (reported; the takes of the first
  step, which starts from pure noise, are redundant but kept so every step costs the same). The
  extra passes let the generated part adjust to the known one, which shrinks replacement's bias;
  the large-R limit still carries the grid's discretisation error, so R and the NFE both matter.

A plugin adds a method with :func:`register_inpaint_method`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import ConfigError, PanflowError, check_finite
from .nametable import NameTable
from .paths import AffinePath
from .sampling import SampleOptions, SampleResult
from .solvers import FIXED_STEP_COST, get_solver, step, steps_for_nfe, time_grid

Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # vel(x, t_model, s)
ModelTime = Callable[[torch.Tensor, "torch.Tensor | None", int], torch.Tensor]


@dataclass
class InpaintProblem:
    """What a method needs: the guided velocity ``vel(x, t_model, s)``, the objective's map from
    solver time ``s [B]`` to model time (known elements at 1 when ``known`` is passed), the path,
    the masks (``known [B, *time_shape]``, ``hold`` shaped like ``x``), given values and noise."""

    vel: Velocity
    model_time: ModelTime
    path: AffinePath
    known: torch.Tensor
    hold: torch.Tensor
    x_known: torch.Tensor
    x0: torch.Tensor
    opts: SampleOptions
    generator: torch.Generator | None

    @property
    def batch(self) -> int:
        return self.x0.shape[0]


class InpaintMethod:
    """Samples with known elements held; ``run`` returns a :class:`SampleResult` in model space."""

    name = "base"

    def run(self, p: InpaintProblem) -> SampleResult:
        raise NotImplementedError


class Trained(InpaintMethod):
    name = "trained"

    def run(self, p):
        def field(x, s):
            return p.vel(torch.where(p.hold, p.x_known, x), p.model_time(s, p.known, p.batch), s)

        return get_solver(p.opts.solver).run(field, torch.where(p.hold, p.x_known, p.x0), p.opts, path=p.path,
                                             generator=p.generator, hold=p.hold)


class Replacement(InpaintMethod):
    name = "replacement"

    def run(self, p):
        def field(x, s):
            a, sg, _, _ = p.path.coefficients(s, x)
            return p.vel(torch.where(p.hold, a * p.x_known + sg * p.x0, x), p.model_time(s, None, p.batch), s)

        res = get_solver(p.opts.solver).run(field, p.x0, p.opts, path=p.path, generator=p.generator)
        return SampleResult(torch.where(p.hold, p.x_known, res.x), res.nfe, res.steps, res.method)


def renoise(path: AffinePath, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
            generator: torch.Generator | None) -> torch.Tensor:
    """Draw ``x_s ~ q(x_s | x_t)`` for ``s < t`` (scalars) along the path's forward kernel:
    ``x_s = (α_s/α_t) x_t + sqrt(σ_s² − (α_s σ_t/α_t)²) ε``, exact for any affine path."""
    a_t, s_t, _, _ = path.coefficients(t.reshape(1), x_t[:1])
    a_s, s_s, _, _ = path.coefficients(s.reshape(1), x_t[:1])
    if float(a_t.min()) <= 0:
        raise PanflowError(f"renoise needs α_t > 0 at t = {float(t):g}")
    ratio = a_s / a_t
    std = (s_s ** 2 - (ratio * s_t) ** 2).clamp_min(0).sqrt()
    eps = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
    return ratio * x_t + std * eps


class RePaint(InpaintMethod):
    name = "repaint"

    def run(self, p):
        method, r = p.opts.solver, p.opts.resample
        if method not in FIXED_STEP_COST:
            raise ConfigError(f"inpaint 'repaint' steps a fixed grid; solver '{method}' is not one "
                              f"({', '.join(FIXED_STEP_COST)})")
        if r < 1:
            raise ConfigError(f"resample must be >= 1, got {r}")
        steps = steps_for_nfe(method, p.opts.nfe)
        grid = time_grid(steps, device=p.x0.device)
        b, evals = p.batch, [0]

        def field(x, s):
            evals[0] += 1
            return p.vel(x, p.model_time(s, None, b), s)

        def known_at(s):  # a fresh draw of q(x_s | x_known)
            a, sg, _, _ = p.path.coefficients(s.reshape(1), p.x0[:1])
            eps = torch.randn(p.x0.shape, generator=p.generator, device=p.x0.device, dtype=p.x0.dtype)
            return a * p.x_known + sg * eps

        a0, s0, _, _ = p.path.coefficients(grid[:1], p.x0[:1])
        x = torch.where(p.hold, a0 * p.x_known + s0 * p.x0, p.x0)
        takes = 0
        for i in range(steps):
            t, h = grid[i], grid[i + 1] - grid[i]
            for j in range(r):
                x_next = step(field, method, x, t, h)
                takes += 1
                if j < r - 1:  # back to t through the forward kernel, known part re-drawn at t
                    x = torch.where(p.hold, known_at(t), renoise(p.path, x_next, grid[i + 1], t, p.generator))
            x = x_next if i == steps - 1 else torch.where(p.hold, known_at(grid[i + 1]), x_next)
        check_finite(x, f"the repaint-{method} sample")
        return SampleResult(torch.where(p.hold, p.x_known, x), evals[0], takes, f"repaint-{method}")


INPAINT_METHODS = NameTable("inpainting method", {m.name: m for m in (Trained(), Replacement(), RePaint())})


def register_inpaint_method(method: InpaintMethod) -> InpaintMethod:
    """Add an inpainting method under ``method.name`` (usable as ``sample.inpaint``)."""
    return INPAINT_METHODS.add(method.name, method)


def get_inpaint_method(name: str) -> InpaintMethod:
    return INPAINT_METHODS.lookup(name)


__all__ = ["InpaintMethod", "InpaintProblem", "INPAINT_METHODS", "register_inpaint_method", "get_inpaint_method",
           "renoise"]
