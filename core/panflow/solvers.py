"""Stateless ODE integrators over a velocity field ``v(x, t)`` from t = 0 (noise) to t = 1 (data).

``field(x, t)`` takes ``x: [B, ...]`` and ``t: [B]`` and returns a velocity shaped like ``x``.
NFE counts field evaluations honestly: euler 1, midpoint 2, heun 2, rk4 4 per step; dopri5
reports what it used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import PanflowError, UnknownNameError, check_finite
from .nametable import NameTable
from .sampling import SampleResult
from .time_samplers import shift_time

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

FIXED_STEP_COST = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
ODE_METHODS = (*FIXED_STEP_COST, "dopri5")


class CountingField:
    """Wraps a field and counts its evaluations."""

    def __init__(self, field: Field):
        self.field, self.nfe = field, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.field(x, t)


def time_grid(steps: int, kind: str = "uniform", shift: float = 1.0, t0: float = 0.0,
              t1: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """An increasing grid of ``steps + 1`` times from ``t0`` to ``t1``.

    ``kind="shifted"`` applies the same shift as :class:`ShiftedTime` (more steps near noise).
    """
    if steps < 1:
        raise PanflowError(f"a time grid needs at least 1 step, got {steps}")
    g = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if kind == "shifted":
        g = shift_time(g, shift)
    elif kind != "uniform":
        raise UnknownNameError("time grid", kind, ["uniform", "shifted"])
    return (t0 + (t1 - t0) * g).to(device)


def check_grid(grid: torch.Tensor, increasing: bool = True) -> None:
    if grid.dim() != 1 or grid.numel() < 2:
        raise PanflowError(f"a time grid must be 1-D with at least 2 points, got shape {tuple(grid.shape)}")
    d = grid[1:] - grid[:-1]
    ok = bool((d > 0).all()) if increasing else bool((d < 0).all())
    if not ok:
        raise PanflowError(f"the time grid is not strictly {'increasing' if increasing else 'decreasing'}: "
                           f"{grid.tolist()[:8]}{'...' if grid.numel() > 8 else ''}")


def _tb(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x.dtype if x.is_floating_point() else torch.float32).expand(x.shape[0])


def step(field: Field, method: str, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One fixed step of size ``h`` from time ``t`` (scalars)."""
    if method == "euler":
        return x + h * field(x, _tb(t, x))
    if method == "midpoint":
        k1 = field(x, _tb(t, x))
        return x + h * field(x + 0.5 * h * k1, _tb(t + 0.5 * h, x))
    if method == "heun":
        k1 = field(x, _tb(t, x))
        k2 = field(x + h * k1, _tb(t + h, x))
        return x + 0.5 * h * (k1 + k2)
    if method == "rk4":
        k1 = field(x, _tb(t, x))
        k2 = field(x + 0.5 * h * k1, _tb(t + 0.5 * h, x))
        k3 = field(x + 0.5 * h * k2, _tb(t + 0.5 * h, x))
        k4 = field(x + h * k3, _tb(t + h, x))
        return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    raise UnknownNameError("solver", method, ODE_METHODS)


def integrate(field: Field, x: torch.Tensor, grid: torch.Tensor, method: str = "euler") -> SampleResult:
    """Fixed-step integration along any strictly monotone ``grid`` (used forwards and backwards)."""
    if method not in FIXED_STEP_COST:
        raise UnknownNameError("fixed-step solver", method, FIXED_STEP_COST)
    counter = CountingField(field)
    for i in range(grid.numel() - 1):
        t, h = grid[i], grid[i + 1] - grid[i]
        x = step(counter, method, x, t.to(x.dtype), h.to(x.dtype))
    return SampleResult(x, counter.nfe, grid.numel() - 1, method)


# Dormand–Prince 5(4) tableau (Dormand & Prince 1980).
_DP_C = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
_DP_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
_DP_B5 = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]
_DP_B4 = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]


def dopri5(field: Field, x: torch.Tensor, t0: float = 0.0, t1: float = 1.0, atol: float = 1e-5,
           rtol: float = 1e-5, h0: float | None = None, max_steps: int = 10_000) -> SampleResult:
    """Adaptive Dormand–Prince 5(4) with FSAL; integrates from ``t0`` to ``t1`` (either direction)."""
    counter = CountingField(field)
    direction = 1.0 if t1 > t0 else -1.0
    t, span = t0, abs(t1 - t0)
    h = h0 if h0 is not None else 0.05 * span
    k1 = counter(x, _tb(torch.tensor(t), x))
    steps = 0
    while direction * (t1 - t) > 1e-12:
        if steps >= max_steps:
            raise PanflowError(f"dopri5 exceeded {max_steps} steps (atol={atol}, rtol={rtol})")
        h = min(h, abs(t1 - t))
        hs = direction * h
        ks = [k1]
        for i in range(1, 7):
            xi = x + hs * sum(a * k for a, k in zip(_DP_A[i], ks) if a != 0.0)
            ks.append(counter(xi, _tb(torch.tensor(t + _DP_C[i] * hs), x)))
        x5 = x + hs * sum(b * k for b, k in zip(_DP_B5, ks) if b != 0.0)
        x4 = x + hs * sum(b * k for b, k in zip(_DP_B4, ks) if b != 0.0)
        scale = atol + rtol * torch.maximum(x.abs(), x5.abs())
        err = float(((x5 - x4) / scale).pow(2).mean().sqrt())
        if err <= 1.0:
            t, x, k1 = t + hs, x5, ks[6]
            steps += 1
        factor = 0.9 * (1.0 / max(err, 1e-10)) ** 0.2
        h = h * min(5.0, max(0.2, factor))
    return SampleResult(x, counter.nfe, steps, "dopri5")


def steps_for_nfe(method: str, nfe: int) -> int:
    """How many steps of ``method`` fit in ``nfe`` evaluations (must be ≥ one step, exact)."""
    if method not in FIXED_STEP_COST:
        raise UnknownNameError("fixed-step solver", method, FIXED_STEP_COST)
    cost = FIXED_STEP_COST[method]
    if nfe < cost or nfe % cost:
        raise PanflowError(f"NFE {nfe} does not fit {method} ({cost} evaluations per step); "
                           f"use a positive multiple of {cost}")
    return nfe // cost


def sample_ode(field: Field, x0: torch.Tensor, method: str = "euler", nfe: int | None = None,
               steps: int | None = None, grid: torch.Tensor | None = None, atol: float = 1e-5,
               rtol: float = 1e-5, check: bool = True) -> SampleResult:
    """Integrate noise ``x0`` to data. Give one of ``nfe``, ``steps`` or an explicit ``grid``.

    Raises a clear error for an unknown solver, an NFE of 0, a grid that is not increasing,
    or (with ``check``) a non-finite result.
    """
    if method not in ODE_METHODS:
        raise UnknownNameError("ODE solver", method, ODE_METHODS)
    if method == "dopri5":
        res = dopri5(field, x0, 0.0, 1.0, atol=atol, rtol=rtol)
    else:
        if grid is None:
            if nfe is not None:
                if nfe <= 0:
                    raise PanflowError(f"NFE must be positive, got {nfe}")
                steps = steps_for_nfe(method, nfe)
            if steps is None or steps < 1:
                raise PanflowError(f"need a positive number of steps (got steps={steps}, nfe={nfe})")
            grid = time_grid(steps, device=x0.device)
        grid = torch.as_tensor(grid, dtype=torch.float64, device=x0.device)
        check_grid(grid, increasing=True)
        res = integrate(field, x0, grid, method)
    if check:
        check_finite(res.x, f"the {method} sample")
    return res


# -- the solver registry: what ``SampleOptions.solver`` names for continuous (flow) objectives ---------
@dataclass(frozen=True)
class Solver:
    """A sampler over a velocity field: ``run(field, x0, opts, path=..., generator=..., hold=...)``.

    ``field(x, s)`` takes the solver time ``s: [B]``; ``hold`` (bool, shaped like ``x0``) marks
    elements the solver must leave exactly where they are (known parts). ``cost`` is model
    evaluations per step (``None`` for adaptive solvers, which report what they used).
    """

    name: str
    run: Callable[..., SampleResult]
    cost: int | None
    description: str = ""


def _held(field: Field, hold: torch.Tensor | None) -> Field:
    if hold is None:
        return field
    return lambda x, s: torch.where(hold, torch.zeros((), dtype=x.dtype, device=x.device), field(x, s))


def _fixed(method: str):
    def run(field, x0, opts, path=None, generator=None, hold=None) -> SampleResult:
        return sample_ode(_held(field, hold), x0, method, nfe=opts.nfe)

    return run


def _adaptive(field, x0, opts, path=None, generator=None, hold=None) -> SampleResult:
    return sample_ode(_held(field, hold), x0, "dopri5", atol=opts.atol, rtol=opts.rtol)


def _sde(field, x0, opts, path=None, generator=None, hold=None) -> SampleResult:
    from .sde import sample_sde

    if path is None:
        raise PanflowError("the sde solver needs the affine path (it derives the score from the velocity)")
    if opts.nfe <= 0:
        raise PanflowError(f"NFE must be positive, got {opts.nfe}")
    return sample_sde(field, path, x0, opts.nfe, opts.noise_scale, generator, hold=hold)


SOLVERS: NameTable = NameTable("solver", {
    **{m: Solver(m, _fixed(m), c, f"fixed-step {m} ({c} evaluation(s) per step)") for m, c in FIXED_STEP_COST.items()},
    "dopri5": Solver("dopri5", _adaptive, None, "adaptive Dormand-Prince 5(4); atol/rtol, NFE reported"),
    "sde": Solver("sde", _sde, 1, "Euler-Maruyama with the velocity-derived score; noise_scale sets g_t = s * sigma_t"),
}, clash=PanflowError)


def register_solver(solver: Solver) -> Solver:
    """Add a solver (for flow objectives) under ``solver.name``; a clash is an error."""
    return SOLVERS.add(solver.name, solver)


def get_solver(name: str) -> Solver:
    return SOLVERS.lookup(name)

