"""Conditional flow matching: the loss over (model, path, target, time sampler, conditions, known
parts, padding mask) and its sampler.

The model signature is ``model(x_t, t, cond) -> out``: ``t`` is ``[B]``, or ``[B, *time_shape]``
when the data spec declares per-element time; ``cond`` is a dict of condition tensors (see
:class:`panflow.ConditionSpec`; ``{}`` when unconditional). Known elements (``known [B, *time_shape]``)
are presented clean at time 1 and excluded from the loss in training, and held at their values by
every solver in sampling.
"""

from __future__ import annotations

from typing import Any

import torch

from .components import ConditionSpec, DataSpec, Samples
from .errors import ContractError, DataError, UnknownNameError
from .inpaint import InpaintProblem, get_inpaint_method
from .known import KnownSampler, expand_known, make_known_sampler
from .paths import PREDICTIONS, AffinePath, schedule_from_json
from .potentials import with_potentials
from .sampling import SampleOptions, SampleResult, guidance_groups, guided_velocity, prepare_cond, with_nulls
from .solvers import get_solver
from .time_samplers import TimeSampler, make_time_sampler


def masked_mean(err: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``err`` over every element where ``mask`` (broadcastable, 1 = real) is set."""
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype)
    while m.dim() < err.dim():
        m = m.unsqueeze(-1)
    m = m.expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def check_known(known: torch.Tensor, x_known: torch.Tensor | None, shape: tuple[int, ...],
                time_shape: tuple[int, ...]) -> torch.Tensor:
    """Validate a sampling-time known mask ``[B, *time_shape]`` and its values ``[B, *shape]``."""
    want = (shape[0], *time_shape)
    if not time_shape:
        raise DataError("known parts need a data spec with per-element time (DataSpec.time_shape); this "
                        "domain has one time per sample")
    if tuple(known.shape) != want:
        raise DataError(f"known mask has shape {tuple(known.shape)}, expected {list(want)} (batch, *time_shape)")
    if x_known is None or tuple(x_known.shape) != tuple(shape):
        got = None if x_known is None else tuple(x_known.shape)
        raise DataError(f"known values x_known must have the sample shape {list(shape)}, got {got}")
    return known.bool()


class FlowObjective:
    """Conditional flow matching on an affine path with any prediction target.

    ``conditions`` (with their training dropout) come from the data spec; ``num_classes`` with
    ``label_dropout`` is shorthand for one label condition. ``time_shape`` enables per-element time
    and known parts; ``per_element_time`` draws independent times per element in training
    (Diffusion Forcing, Chen et al. 2024) instead of one per sample; ``known`` is the training
    distribution of given elements (:mod:`panflow.known`).
    """

    kind = "flow"

    def __init__(self, path: AffinePath | str = "linear", prediction: str = "velocity",
                 time_sampler: TimeSampler | str | dict = "uniform", label_dropout: float = 0.0,
                 num_classes: int = 0, t_eps: float = 1e-4, *, conditions: tuple[ConditionSpec, ...] = (),
                 time_shape: tuple[int, ...] = (), known: KnownSampler | str | dict = "none",
                 per_element_time: bool = False):
        self.path = AffinePath(path) if isinstance(path, str) else path
        if prediction not in PREDICTIONS:
            raise UnknownNameError("prediction target", prediction, PREDICTIONS)
        self.prediction = prediction
        self.time_sampler = make_time_sampler(time_sampler)
        conditions = tuple(conditions)
        if num_classes and not any(c.name == "label" for c in conditions):
            conditions = (ConditionSpec("label", "label", num_classes=int(num_classes), dropout=float(label_dropout)),
                          *conditions)
        self.conditions = conditions
        self.time_shape = tuple(time_shape)
        self.known = make_known_sampler(known)
        self.per_element_time = bool(per_element_time)
        if self.per_element_time and not self.time_shape:
            raise ContractError("per_element_time needs a data spec with time_shape")
        self.t_eps = t_eps

    @property
    def num_classes(self) -> int:
        return next((c.num_classes for c in self.conditions if c.kind == "label" and c.name == "label"), 0)

    @property
    def null_label(self) -> int:
        return self.num_classes

    # -- time and conditions ---------------------------------------------------------------
    def model_time(self, t: torch.Tensor, known: torch.Tensor | None, n: int) -> torch.Tensor:
        """The time the model sees: ``[n]``, or ``[n, *time_shape]`` with known elements at 1."""
        if not self.time_shape:
            return t
        if t.dim() == 1:
            t = t.reshape(n, *([1] * len(self.time_shape))).expand(n, *self.time_shape)
        if known is not None:
            t = torch.where(known, torch.ones((), dtype=t.dtype, device=t.device), t)
        return t

    def train_cond(self, cond: dict[str, torch.Tensor], drop: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch's conditions with each dropped to its null where ``drop[:, k] < dropout_k``."""
        rows = {}
        for k, c in enumerate(self.conditions):
            if c.name not in cond:
                raise DataError(f"the batch lacks condition '{c.name}' that the data spec declares")
            if c.dropout > 0:
                rows[c.name] = drop[:, k] < c.dropout
        return with_nulls(self.conditions, cond, rows)

    # -- training ----------------------------------------------------------------------
    def draw(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """All randomness of one loss evaluation for ``n`` samples shaped like ``x[0]``.

        The trainer draws it for the global batch and slices each rank's share, so a batch
        split across ranks or accumulation steps sees exactly the noise of the unsplit batch.
        """
        dev = x.device
        shape = (n, *self.time_shape) if self.per_element_time else n
        t = self.time_sampler.sample(shape, generator, dev).to(x.dtype)
        if self.prediction != "velocity" or not self.path.schedule.finite_velocity:  # singular at the ends
            t = t.clamp(self.t_eps, 1 - self.t_eps)
        x0 = torch.randn((n, *x.shape[1:]), generator=generator, device=dev, dtype=x.dtype)
        drop = torch.rand((n, max(1, len(self.conditions))), generator=generator, device=dev)
        rand = {"t": t, "x0": x0, "drop": drop}
        known = self.known.draw(n, self.time_shape, generator, dev)
        if known is not None:
            rand["known"] = known
        return rand

    def loss(self, model: torch.nn.Module, batch: Samples, rand: dict | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error of the prediction target over real, unknown elements."""
        return self.loss_terms(model, batch, rand, generator)["loss"]

    def loss_terms(self, model: torch.nn.Module, batch: Samples, rand: dict | None = None,
                   generator: torch.Generator | None = None) -> dict:
        """The loss with what an auxiliary term needs: ``{"loss", "out", "x_t", "t", "known"}``
        (``out`` the model's prediction at ``x_t``, ``t`` the model's time, ``known`` the given
        elements or None) — plugins add their terms to it instead of re-deriving the flow loss."""
        x1 = batch.x
        n = x1.shape[0]
        rand = rand if rand is not None else self.draw(n, x1, generator)
        x0 = rand["x0"]
        known = rand.get("known")
        if batch.known is not None:
            if not self.time_shape:
                raise DataError("the batch carries known parts but the data spec has no per-element time")
            known = batch.known.bool() if known is None else (known | batch.known.bool())
        t = self.model_time(rand["t"], known, n)
        x_t, u = self.path.sample(x0, x1, t)
        target = u if self.prediction == "velocity" else self.path.target(self.prediction, x0, x1, t)
        out = model(x_t, t, self.train_cond(batch.cond, rand["drop"]))
        weight = batch.mask
        if known is not None:
            given = expand_known(known, x1)
            # known elements sit at t = 1, where a VP path's velocity is infinite: their weight is 0,
            # but inf · 0 is NaN (in the loss and in its gradient), so their target is zeroed first
            target = torch.where(given, torch.zeros_like(target), target)
            free = (~given).to(x1.dtype)
            weight = free if weight is None else free * _expand_mask(weight, x1)
        loss = masked_mean((out.float() - target.float()) ** 2, weight)
        return {"loss": loss, "out": out, "x_t": x_t, "t": t, "known": known}

    # -- sampling ----------------------------------------------------------------------
    def model_velocity(self, model: torch.nn.Module):
        """``f(x, t, cond) -> velocity`` from a model of any prediction target."""

        def fn(x, t, cond):
            out = model(x, t, cond)
            if self.prediction == "velocity":
                return out
            tc = t.clamp(self.t_eps, 1 - self.t_eps)
            return self.path.convert(out, self.prediction, "velocity", x, tc)

        return fn

    def usable_nfe(self, solver: str, nfe: int) -> int:
        """The step count to sample with when ``nfe`` is asked of ``solver``: any count works for a flow."""
        return int(nfe)

    def field(self, model: torch.nn.Module, cond: dict[str, torch.Tensor] | None = None,
              opts: SampleOptions | None = None, batch: int | None = None, device: torch.device | str = "cpu"):
        """The (guided) velocity field ``f(x, s)`` over solver time ``s [B]``, with nothing known."""
        opts = opts or SampleOptions()
        b = batch if batch is not None else (next(iter(cond.values())).shape[0] if cond else 0)
        vel = self._guided(model, cond, opts, b, device)
        return lambda x, s: vel(x, self.model_time(s, None, x.shape[0]), s)

    def _guided(self, model, cond, opts: SampleOptions, batch: int, device, generator=None, hold=None):
        """``f(x, t, s) -> v``: the model's velocity with the given conditions, guidance and potentials
        (``hold``: known elements, which the potentials' steps leave alone)."""
        conds = prepare_cond(self.conditions, cond, batch, device)
        vel = guided_velocity(self.model_velocity(model), self.conditions, conds,
                              guidance_groups(self.conditions, opts), opts.guidance_interval)
        return with_potentials(vel, opts.potentials, self.path, self.t_eps, conds, batch, generator, hold)

    @torch.no_grad()
    def generate(self, model: torch.nn.Module, shape: tuple[int, ...], opts: SampleOptions,
                 cond: dict[str, torch.Tensor] | None = None, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", known: torch.Tensor | None = None,
                 x_known: torch.Tensor | None = None) -> SampleResult:
        """Draw ``shape[0]`` samples in model space.

        ``cond`` gives condition tensors by name (a condition left out is set to its null, which the
        model must have been trained with); ``known [B, *time_shape]`` with ``x_known [B, *shape]``
        holds given elements (``opts.inpaint`` says how). Returns the samples, NFE and steps.
        """
        solver = get_solver(opts.solver)
        x0 = torch.randn(shape, generator=generator, device=device)
        b = shape[0]
        if known is None:
            vel = self._guided(model, cond, opts, b, device, generator)
            return solver.run(lambda x, s: vel(x, self.model_time(s, None, b), s), x0, opts, path=self.path,
                              generator=generator)
        known = check_known(known, x_known, tuple(shape), self.time_shape).to(device)
        hold = expand_known(known, x0)
        vel = self._guided(model, cond, opts, b, device, generator, hold)
        problem = InpaintProblem(vel, self.model_time, self.path, known, hold,
                                 x_known.to(device=device, dtype=x0.dtype), x0, opts, generator)
        return get_inpaint_method(opts.inpaint).run(problem)

    # -- contract ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path.to_json(), "prediction": self.prediction,
                "time_sampler": self.time_sampler.to_json(), "time_direction": "0=noise,1=data",
                "conditions": [c.to_json() for c in self.conditions], "time_shape": list(self.time_shape),
                "per_element_time": self.per_element_time, "known": self.known.to_json(),
                "label_dropout": next((c.dropout for c in self.conditions if c.name == "label"), 0.0),
                "num_classes": self.num_classes, "t_eps": self.t_eps}

    @classmethod
    def from_json(cls, d: dict[str, Any], spec: DataSpec | None = None) -> FlowObjective:
        if d.get("time_direction", "0=noise,1=data") != "0=noise,1=data":
            raise ContractError(f"checkpoint uses time direction {d['time_direction']!r}; panflow "
                                "samples with t=0 noise, t=1 data")
        if d["path"].get("type") != "affine":
            raise ContractError(f"unsupported path type {d['path'].get('type')!r}")
        conds = tuple(ConditionSpec.from_json(c) for c in d.get("conditions", []))
        return cls(AffinePath(schedule_from_json(d["path"]["schedule"])), d["prediction"], d["time_sampler"],
                   d.get("label_dropout", 0.0), 0 if conds else d.get("num_classes", 0), d.get("t_eps", 1e-4),
                   conditions=conds, time_shape=tuple(d.get("time_shape", ())), known=d.get("known", "none"),
                   per_element_time=d.get("per_element_time", False))


def _expand_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    m = mask.to(like.dtype)
    return m.reshape(*m.shape, *([1] * (like.dim() - m.dim()))).expand_as(like)
