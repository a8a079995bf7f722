"""Training objectives over (model, path, target, time sampler, mask) and their samplers.

An objective turns a batch into a scalar loss (``loss``), describes itself for the checkpoint
contract (``to_json``) and knows how to draw samples from a trained model (``generate``).
The model signature is ``model(x_t, t, cond) -> out``; class labels ``cond: [B]`` use
``null_label`` (= number of classes) for the unconditional branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .components import Samples
from .errors import ContractError, PanflowError, UnknownNameError
from .guidance import cfg_field
from .paths import PREDICTIONS, AffinePath, schedule_from_json
from .sde import sample_sde
from .solvers import SOLVERS, ODEResult, sample_ode
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


@dataclass
class SampleOptions:
    """How to sample: solver, NFE, guidance scale/interval, SDE noise scale, seed."""

    solver: str = "euler"
    nfe: int = 16
    guidance: float = 1.0
    guidance_interval: tuple[float, float] | None = None
    noise_scale: float = 0.0  # > 0 uses Euler–Maruyama (solver ignored)
    atol: float = 1e-5
    rtol: float = 1e-5


class FlowObjective:
    """Conditional flow matching on an affine path with any prediction target."""

    kind = "flow"

    def __init__(self, path: AffinePath | str = "linear", prediction: str = "velocity",
                 time_sampler: TimeSampler | str | dict = "uniform", label_dropout: float = 0.0,
                 num_classes: int = 0, t_eps: float = 1e-4):
        self.path = AffinePath(path) if isinstance(path, str) else path
        if prediction not in PREDICTIONS:
            raise UnknownNameError("prediction target", prediction, PREDICTIONS)
        self.prediction = prediction
        self.time_sampler = make_time_sampler(time_sampler)
        self.label_dropout, self.num_classes, self.t_eps = float(label_dropout), int(num_classes), t_eps

    @property
    def null_label(self) -> int:
        return self.num_classes

    # -- training ----------------------------------------------------------------------
    def draw(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """All randomness of one loss evaluation for ``n`` samples shaped like ``x[0]``.

        The trainer draws it for the global batch and slices each rank's share, so a batch
        split across ranks or accumulation steps sees exactly the noise of the unsplit batch.
        """
        dev = x.device
        t = self.time_sampler.sample(n, generator, dev).to(x.dtype)
        if self.prediction != "velocity":  # other targets are singular at the end points
            t = t.clamp(self.t_eps, 1 - self.t_eps)
        x0 = torch.randn((n, *x.shape[1:]), generator=generator, device=dev, dtype=x.dtype)
        drop = torch.rand(n, generator=generator, device=dev)
        return {"t": t, "x0": x0, "drop": drop}

    def loss(self, model: torch.nn.Module, batch: Samples, rand: dict | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error of the prediction target (masked where ``batch.mask`` is 0)."""
        x1 = batch.x
        rand = rand if rand is not None else self.draw(x1.shape[0], x1, generator)
        t, x0 = rand["t"], rand["x0"]
        x_t, u = self.path.sample(x0, x1, t)
        target = u if self.prediction == "velocity" else self.path.target(self.prediction, x0, x1, t)
        cond = batch.y
        if cond is not None and self.label_dropout > 0:
            cond = torch.where(rand["drop"] < self.label_dropout, torch.full_like(cond, self.null_label), cond)
        out = model(x_t, t, cond)
        return masked_mean((out.float() - target.float()) ** 2, batch.mask)

    # -- sampling ----------------------------------------------------------------------
    def model_velocity(self, model: torch.nn.Module):
        """``f(x, t, cond) -> velocity`` from a model of any prediction target."""

        def fn(x, t, cond=None):
            out = model(x, t, cond)
            if self.prediction == "velocity":
                return out
            tc = t.clamp(self.t_eps, 1 - self.t_eps)
            return self.path.convert(out, self.prediction, "velocity", x, tc)

        return fn

    def field(self, model: torch.nn.Module, cond: torch.Tensor | None = None, guidance: float = 1.0,
              interval: tuple[float, float] | None = None):
        fn = self.model_velocity(model)
        if cond is None:
            return lambda x, t: fn(x, t, None)
        if guidance != 1.0 and self.num_classes == 0:
            raise ContractError("guidance needs a class-conditional model (num_classes > 0)")
        null = torch.full_like(cond, self.null_label)
        return cfg_field(fn, cond, null, guidance, interval)

    @torch.no_grad()
    def generate(self, model: torch.nn.Module, shape: tuple[int, ...], opts: SampleOptions,
                 cond: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> ODEResult:
        """Draw ``shape[0]`` samples in model space; returns the ODE result (x, NFE, steps)."""
        if opts.solver not in SOLVERS:
            raise UnknownNameError("solver", opts.solver, SOLVERS)
        x0 = torch.randn(shape, generator=generator, device=device)
        field = self.field(model, cond, opts.guidance, opts.guidance_interval)
        if opts.noise_scale > 0:
            if opts.nfe <= 0:
                raise PanflowError(f"NFE must be positive, got {opts.nfe}")
            return sample_sde(field, self.path, x0, opts.nfe, opts.noise_scale, generator)
        return sample_ode(field, x0, opts.solver, nfe=opts.nfe, atol=opts.atol, rtol=opts.rtol)

    # -- contract ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path.to_json(), "prediction": self.prediction,
                "time_sampler": self.time_sampler.to_json(), "time_direction": "0=noise,1=data",
                "label_dropout": self.label_dropout, "num_classes": self.num_classes,
                "t_eps": self.t_eps}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FlowObjective:
        if d.get("time_direction", "0=noise,1=data") != "0=noise,1=data":
            raise ContractError(f"checkpoint uses time direction {d['time_direction']!r}; panflow "
                                "samples with t=0 noise, t=1 data")
        if d["path"].get("type") != "affine":
            raise ContractError(f"unsupported path type {d['path'].get('type')!r}")
        return cls(AffinePath(schedule_from_json(d["path"]["schedule"])), d["prediction"],
                   d["time_sampler"], d.get("label_dropout", 0.0), d.get("num_classes", 0),
                   d.get("t_eps", 1e-4))
