"""Shortcut models (Frans, Hafner, Levine & Abbeel 2024, "One Step Diffusion via Shortcut Models"):
one network trained for every step size, so it samples in 1, 2, 4, ... steps.

The model ``s(x_t, t, d)`` predicts the average velocity over a step of size ``d`` (so that
``x_{t+d} = x_t + d · s``). It learns flow matching at the smallest step size ``d = 2^-K`` and, on a
fraction of each batch, self-consistency: one step of ``2d`` must equal two steps of ``d``,

    s(x_t, t, 2d) ≈ sg[(s(x_t, t, d) + s(x'_{t+d}, t+d, d)) / 2],   x'_{t+d} = x_t + d · s(x_t, t, d).

The step size reaches the network as a tensor condition ``cond["step"] [B, 1]`` holding
``log2(1/d) / K`` (0 = one step over the whole path, 1 = the flow-matching branch): any backbone
that consumes tensor conditions (e.g. through :class:`panflow.ConditionEmbedding`) serves it
unchanged. The objective adds that condition to the spec the backbone is built for and sets it
itself; users never pass it.

Sampling: ``euler`` (and the registered ``shortcut`` solver) with NFE ``N = 2^k ≤ 2^K`` takes ``N``
steps of ``d = 1/N`` with the matching step condition; any other solver (or ``N > 2^K``) integrates
the flow-matching branch, the instantaneous velocity. The contract lists the supported NFEs.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import torch

from .components import ConditionSpec, DataSpec, Samples
from .errors import ConfigError, ContractError, DataError, PanflowError, UnknownNameError
from .known import expand_known
from .objective import FlowObjective, _expand_mask, masked_mean
from .sampling import SampleOptions, SampleResult
from .solvers import Solver, register_solver, sample_ode

STEP = "step"
STEP_CONDITION = ConditionSpec(STEP, "tensor", (1,), normalisation="log2(1/step size) / log2(max_steps)")
OPTIONS = ("max_steps", "consistency_fraction")


class ShortcutObjective(FlowObjective):
    """Flow matching plus shortcut self-consistency on the linear path (velocity prediction).

    ``max_steps = 2^K`` is the finest step the model learns (its flow-matching branch);
    ``consistency_fraction`` of each batch trains self-consistency at ``d = 2^-k``, ``k < K`` uniform
    (the paper uses 1/4). ``conditions`` are the data's own conditions (without ``step``).
    """

    kind = "shortcut"

    def __init__(self, *args: Any, max_steps: int = 128, consistency_fraction: float = 0.25, **kw: Any):
        super().__init__(*args, **kw)
        if self.path.schedule.name != "linear" or self.prediction != "velocity":
            raise ConfigError("the shortcut objective needs flow.schedule = 'linear' and flow.prediction = 'velocity' "
                              f"(got '{self.path.schedule.name}', '{self.prediction}'): its steps are x + d * velocity")
        if max_steps < 2 or max_steps & (max_steps - 1):
            raise ConfigError(f"shortcut max_steps must be a power of two >= 2, got {max_steps}")
        if not 0.0 < consistency_fraction < 1.0:
            raise ConfigError(f"shortcut consistency_fraction must be in (0, 1), got {consistency_fraction}")
        self.levels = int(math.log2(max_steps))
        self.consistency_fraction = float(consistency_fraction)
        self.level = self.levels  # the level sampling uses; generate() sets it per call on a copy

    @property
    def supported_nfe(self) -> list[int]:
        return [2 ** k for k in range(self.levels + 1)]

    def step_value(self, level: torch.Tensor | int, n: int, like: torch.Tensor) -> torch.Tensor:
        """The ``step`` condition ``[n, 1]`` for level(s) ``k`` (step size ``2^-k``)."""
        k = torch.as_tensor(level, device=like.device).to(like.dtype)
        return (k.expand(n) / self.levels).reshape(n, 1)

    def with_step(self, cond: dict[str, torch.Tensor], level: torch.Tensor | int, like: torch.Tensor) -> dict:
        """``cond`` plus the step condition; its ``.null`` flag (never set) keeps a backbone's learned
        null in the graph, so DDP sees every parameter used."""
        n = like.shape[0]
        return {**cond, STEP: self.step_value(level, n, like),
                STEP + ".null": torch.zeros(n, dtype=torch.bool, device=like.device)}

    # -- training ------------------------------------------------------------------------
    def draw(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        rand = super().draw(n, x, generator)
        dev = x.device
        rand["consistency"] = torch.rand(n, generator=generator, device=dev) < self.consistency_fraction
        rand["level"] = torch.randint(0, self.levels, (n,), generator=generator, device=dev)
        rand["grid"] = torch.rand(n, generator=generator, device=dev)
        return rand

    def loss(self, model: torch.nn.Module, batch: Samples, rand: dict | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """MSE to the flow target (FM rows) and to the two-half-step target (consistency rows).

        Known elements (drawn by ``flow.known`` or carried by the batch) sit at ``t = 1`` with their
        data values, are held through the two half steps and are left out of the loss, as in
        :class:`FlowObjective`. With per-element times, FM rows keep their per-element draws and
        consistency rows put every free element at the row's grid time (the state the sampler visits).
        """
        x1 = batch.x
        n = x1.shape[0]
        rand = rand if rand is not None else self.draw(n, x1, generator)
        known = rand.get("known")
        if batch.known is not None:
            if not self.time_shape:
                raise DataError("the batch carries known parts but the data spec has no per-element time")
            known = batch.known.bool() if known is None else (known | batch.known.bool())
        x0, sc = rand["x0"], rand["consistency"]
        k = torch.where(sc, rand["level"], torch.full_like(rand["level"], self.levels))
        d = torch.exp2(-k.to(x1.dtype))
        grid_t = torch.floor(rand["grid"] * torch.exp2(k.to(x1.dtype))) * d
        t = torch.where(_rows(sc, rand["t"]), _rows(grid_t, rand["t"]), rand["t"])
        t_in = self.model_time(t, known, n)
        x_t, target = self.path.sample(x0, x1, t_in)
        hold = expand_known(known, x1) if known is not None else None
        cond = self.train_cond(batch.cond, rand["drop"])
        idx = sc.nonzero().squeeze(1)
        if idx.numel():
            with torch.no_grad():
                m = idx.numel()
                sub = self.with_step({key: v[idx] for key, v in cond.items()}, k[idx] + 1, x_t[idx])
                half = (d[idx] / 2).reshape(-1, *([1] * (x1.dim() - 1)))
                xs, ts, ks = x_t[idx], t[idx], None if known is None else known[idx]
                v1 = model(xs, self.model_time(ts, ks, m), sub)
                x_mid = xs + half * v1
                if hold is not None:
                    x_mid = torch.where(hold[idx], xs, x_mid)
                v2 = model(x_mid, self.model_time(ts + _rows(d[idx] / 2, ts), ks, m), sub)
                target = target.clone()
                target[idx] = ((v1 + v2) / 2).to(target.dtype)
        out = model(x_t, t_in, self.with_step(cond, k, x_t))
        weight = batch.mask
        if hold is not None:
            target = torch.where(hold, torch.zeros_like(target), target)
            free = (~hold).to(x1.dtype)
            weight = free if weight is None else free * _expand_mask(weight, x1)
        return masked_mean((out.float() - target.float()) ** 2, weight)

    # -- sampling --------------------------------------------------------------------------
    def model_velocity(self, model: torch.nn.Module):
        """``f(x, t, cond)``: the model's average velocity over a step of size ``2^-level``."""

        def fn(x, t, cond):
            if STEP in cond:
                raise DataError("condition 'step' is set by the shortcut sampler from the NFE; do not pass it")
            return model(x, t, self.with_step(cond, self.level, x))

        return fn

    def level_for(self, opts: SampleOptions) -> int:
        """The step level for ``opts``: ``log2(nfe)`` for step-aware Euler, else the flow branch."""
        if opts.solver not in STEP_SOLVERS:
            return self.levels
        nfe = opts.nfe
        if nfe in self.supported_nfe:
            return int(math.log2(nfe))
        if nfe > 2 ** self.levels:
            return self.levels
        raise PanflowError(f"NFE {nfe} is not a step count this shortcut model was trained for with solver "
                           f"'{opts.solver}': use one of {self.supported_nfe} (or more than {2 ** self.levels}), or a "
                           "solver that integrates its flow branch (midpoint, heun, rk4, dopri5)")

    def usable_nfe(self, solver: str, nfe: int) -> int:
        """``nfe`` where the model takes it with ``solver``, else the smallest trained step count above it
        (a step-aware solver takes only powers of two up to ``max_steps``, or more than ``max_steps``)."""
        if solver not in STEP_SOLVERS or nfe in self.supported_nfe or nfe > 2 ** self.levels:
            return int(nfe)
        return min(k for k in self.supported_nfe if k >= nfe)

    @torch.no_grad()
    def generate(self, model: torch.nn.Module, shape: tuple[int, ...], opts: SampleOptions, **kw: Any) -> SampleResult:
        """As :meth:`FlowObjective.generate`; Euler/shortcut steps use the step size they take."""
        level = self.level_for(opts)
        if opts.solver not in STEP_SOLVERS:
            return super().generate(model, shape, opts, **kw)
        stepped = copy.copy(self)
        stepped.level = level
        res = FlowObjective.generate(stepped, model, shape, dataclasses.replace(opts, solver="shortcut"), **kw)
        return dataclasses.replace(res, method=opts.solver)

    # -- contract ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "kind": self.kind, "max_steps": 2 ** self.levels,
                "consistency_fraction": self.consistency_fraction, "supported_nfe": self.supported_nfe,
                "step_condition": STEP_CONDITION.to_json(), "step_solvers": list(STEP_SOLVERS)}

    @classmethod
    def from_json(cls, d: dict[str, Any], spec: DataSpec | None = None) -> ShortcutObjective:
        base = FlowObjective.from_json(d, spec)
        if STEP in [c.name for c in base.conditions]:
            raise ContractError("a shortcut contract lists 'step' among the data's conditions")
        return cls(base.path, base.prediction, base.time_sampler, conditions=base.conditions, t_eps=base.t_eps,
                   time_shape=base.time_shape, known=base.known, per_element_time=base.per_element_time,
                   max_steps=int(d.get("max_steps", 128)),
                   consistency_fraction=float(d.get("consistency_fraction", 0.25)))


# -- assembly ----------------------------------------------------------------------------------------
def shortcut_spec(spec: DataSpec, cfg: Any = None) -> DataSpec:
    """``spec`` with the ``step`` condition the backbone must consume."""
    if STEP in [c.name for c in spec.conditions]:
        raise ConfigError("the data already has a condition named 'step'; the shortcut objective needs that name")
    return dataclasses.replace(spec, conditions=(*spec.conditions, STEP_CONDITION))


def build_shortcut(spec: DataSpec, cfg: Any, domain: Any) -> ShortcutObjective:
    """The ``shortcut`` objective from the ``[flow]`` section; ``flow.objective_options`` sets
    ``max_steps`` and ``consistency_fraction``."""
    from .assembly import build_flow

    opts = dict(cfg.flow.objective_options)
    for key in opts:
        if key not in OPTIONS:
            raise ConfigError(str(UnknownNameError("config key", f"flow.objective_options.{key}",
                                                   [f"flow.objective_options.{o}" for o in OPTIONS])))
    data = dataclasses.replace(spec, conditions=tuple(c for c in spec.conditions if c.name != STEP))
    flow = build_flow(data, cfg, domain)
    return ShortcutObjective(flow.path, flow.prediction, flow.time_sampler, conditions=flow.conditions,
                             time_shape=flow.time_shape, known=flow.known, per_element_time=flow.per_element_time,
                             t_eps=flow.t_eps, **opts)


def _rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``v [n]`` shaped to broadcast against ``like [n, ...]`` (per-element times)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _shortcut_run(field, x0, opts, path=None, generator=None, hold=None) -> SampleResult:
    """Euler on a uniform grid of ``opts.nfe`` steps (the step condition is the objective's business)."""
    f = field if hold is None else (lambda x, s: torch.where(hold, torch.zeros((), dtype=x.dtype), field(x, s)))
    res = sample_ode(f, x0, "euler", nfe=opts.nfe)
    return dataclasses.replace(res, method="shortcut")


STEP_SOLVERS = ("shortcut", "euler")
SHORTCUT_SOLVER = register_solver(Solver("shortcut", _shortcut_run, 1,
                                         "uniform steps of a step-size-aware model (shortcut objective: step = 1/NFE); "
                                         "plain Euler for other flows"))
