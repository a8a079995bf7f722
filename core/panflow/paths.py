"""Affine probability paths ``x_t = α_t · x1 + σ_t · x0`` (t = 0 noise, t = 1 data).

Schedules give α_t, σ_t and their time derivatives. ``x0 ~ N(0, I)``; ``x1`` is encoded data.
``t`` may be ``[B]`` or any shape that broadcasts against the sample after right-padding
(per-frame, per-token, per-element times are allowed).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .errors import UnknownNameError

PREDICTIONS = ("velocity", "noise", "data")


def expand_t(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Right-pad ``t`` with singleton dims so it broadcasts against ``like``.

    ``t`` of shape ``[B]`` becomes ``[B, 1, ..., 1]``; a ``t`` already of ``like``'s rank, or a
    scalar, is returned as is.
    """
    t = torch.as_tensor(t, dtype=like.dtype if like.is_floating_point() else torch.float32,
                        device=like.device)
    if t.dim() == 0 or t.dim() == like.dim():
        return t
    return t.reshape(*t.shape, *([1] * (like.dim() - t.dim())))


class Schedule:
    """α_t and σ_t on t ∈ [0, 1]; derivatives by forward-mode AD unless overridden.

    ``finite_velocity`` is False for a schedule whose velocity target α'x1 + σ'x0 diverges at an end
    point (VP: σ' ~ 1/σ as σ → 0 at the data end); training then keeps t inside [ε, 1 − ε]."""

    name = "schedule"
    finite_velocity = True

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        t = t.contiguous()  # an expanded t (one time per element, broadcast) cannot carry a tangent
        return torch.func.jvp(self.alpha, (t,), (torch.ones_like(t),))[1]

    def d_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.contiguous()
        return torch.func.jvp(self.sigma, (t,), (torch.ones_like(t),))[1]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name}


class LinearSchedule(Schedule):
    """Rectified flow: α_t = t, σ_t = 1 − t."""

    name = "linear"

    def alpha(self, t):
        return t

    def sigma(self, t):
        return 1 - t

    def d_alpha(self, t):
        return torch.ones_like(t)

    def d_sigma(self, t):
        return -torch.ones_like(t)


class CosineSchedule(Schedule):
    """α_t = sin(πt/2), σ_t = cos(πt/2) (variance preserving, trigonometric)."""

    name = "cosine"

    def alpha(self, t):
        return torch.sin(0.5 * math.pi * t)

    def sigma(self, t):
        return torch.cos(0.5 * math.pi * t)

    def d_alpha(self, t):
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def d_sigma(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)


class VPSchedule(Schedule):
    """Variance preserving path from a DDPM β schedule, σ_t = sqrt(1 − α_t²).

    Diffusion time is ``s = 1 − t``. ``beta``:
    - ``linear``: β(s) = β0 + s(β1 − β0), α = exp(−½∫β) (Song et al. 2021, β0=0.1, β1=20);
    - ``cosine``: ᾱ(s) = cos²(((s+ε)/(1+ε))·π/2) / cos²((ε/(1+ε))·π/2), ε = 0.008
      (Nichol & Dhariwal 2021);
    - ``sigmoid``: ᾱ(s) from a sigmoid of s over [start, end] with temperature τ
      (Jabri et al. 2022; Chen 2023, start=−3, end=3, τ=1).
    ᾱ is clamped to [1e-9, 1] so σ and α stay finite at the end points.
    """

    name = "vp"
    finite_velocity = False  # σ_t = sqrt(1 − ᾱ) has σ' → −∞ at t = 1

    def __init__(self, beta: str = "linear", beta_min: float = 0.1, beta_max: float = 20.0,
                 cosine_s: float = 0.008, start: float = -3.0, end: float = 3.0, tau: float = 1.0):
        if beta not in ("linear", "cosine", "sigmoid"):
            raise UnknownNameError("VP beta schedule", beta, ["linear", "cosine", "sigmoid"])
        self.beta, self.beta_min, self.beta_max = beta, beta_min, beta_max
        self.cosine_s, self.start, self.end, self.tau = cosine_s, start, end, tau

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        s = 1 - t
        if self.beta == "linear":
            integral = self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s ** 2
            ab = torch.exp(-integral)
        elif self.beta == "cosine":
            c = self.cosine_s
            f = torch.cos((s + c) / (1 + c) * math.pi / 2) ** 2
            ab = f / math.cos(c / (1 + c) * math.pi / 2) ** 2
        else:
            v0 = 1 / (1 + math.exp(-self.start / self.tau))
            v1 = 1 / (1 + math.exp(-self.end / self.tau))
            out = torch.sigmoid((s * (self.end - self.start) + self.start) / self.tau)
            ab = (v1 - out) / (v1 - v0)
        return ab.clamp(1e-9, 1.0)

    def alpha(self, t):
        return self.alpha_bar(t).sqrt()

    def sigma(self, t):
        return (1 - self.alpha_bar(t)).clamp_min(0).sqrt()

    def to_json(self):
        return {"name": self.name, "beta": self.beta, "beta_min": self.beta_min,
                "beta_max": self.beta_max, "cosine_s": self.cosine_s, "start": self.start,
                "end": self.end, "tau": self.tau}


SCHEDULES = {"linear": LinearSchedule, "cosine": CosineSchedule, "vp": VPSchedule}


def make_schedule(name: str, **kwargs: Any) -> Schedule:
    """Build a schedule by name: ``linear``, ``cosine``, ``vp`` (``beta=linear|cosine|sigmoid``).

    ``vp-linear``, ``vp-cosine`` and ``vp-sigmoid`` are accepted as shorthands.
    """
    if name.startswith("vp-"):
        name, kwargs = "vp", {**kwargs, "beta": name[3:]}
    if name not in SCHEDULES:
        raise UnknownNameError("schedule", name, [*SCHEDULES, "vp-linear", "vp-cosine", "vp-sigmoid"])
    return SCHEDULES[name](**kwargs)


def schedule_from_json(d: dict[str, Any]) -> Schedule:
    d = dict(d)
    return make_schedule(d.pop("name"), **d)


class AffinePath:
    """The path ``x_t = α_t x1 + σ_t x0`` with exact conversions between prediction targets."""

    def __init__(self, schedule: Schedule | str = "linear"):
        self.schedule = make_schedule(schedule) if isinstance(schedule, str) else schedule

    def coefficients(self, t: torch.Tensor, like: torch.Tensor):
        """(α, σ, α̇, σ̇) broadcast against ``like``."""
        t = expand_t(t, like)
        s = self.schedule
        return s.alpha(t), s.sigma(t), s.d_alpha(t), s.d_sigma(t)

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor):
        """Return ``(x_t, u_t)``: the point on the path and its velocity ``α̇ x1 + σ̇ x0``."""
        a, s, da, ds = self.coefficients(t, x1)
        return a * x1 + s * x0, da * x1 + ds * x0

    def target(self, prediction: str, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor):
        """The regression target for ``prediction`` ∈ {velocity, noise, data}."""
        if prediction == "velocity":
            return self.sample(x0, x1, t)[1]
        if prediction == "noise":
            return x0
        if prediction == "data":
            return x1
        raise UnknownNameError("prediction target", prediction, PREDICTIONS)

    def to_data_noise(self, pred: torch.Tensor, prediction: str, x_t: torch.Tensor, t: torch.Tensor):
        """Exact (x1, x0) implied by a prediction at (x_t, t)."""
        a, s, da, ds = self.coefficients(t, x_t)
        if prediction == "data":
            return pred, (x_t - a * pred) / s
        if prediction == "noise":
            return (x_t - s * pred) / a, pred
        if prediction == "velocity":
            det = da * s - ds * a
            return (s * pred - ds * x_t) / det, (da * x_t - a * pred) / det
        raise UnknownNameError("prediction target", prediction, PREDICTIONS)

    def convert(self, pred: torch.Tensor, src: str, dst: str, x_t: torch.Tensor, t: torch.Tensor):
        """Convert a prediction of kind ``src`` into kind ``dst`` (exact, given x_t and t)."""
        if src == dst:
            if src not in PREDICTIONS:
                raise UnknownNameError("prediction target", src, PREDICTIONS)
            return pred
        x1, x0 = self.to_data_noise(pred, src, x_t, t)
        if dst == "data":
            return x1
        if dst == "noise":
            return x0
        if dst == "velocity":
            _, _, da, ds = self.coefficients(t, x_t)
            return da * x1 + ds * x0
        raise UnknownNameError("prediction target", dst, PREDICTIONS)

    def to_json(self) -> dict[str, Any]:
        return {"type": "affine", "schedule": self.schedule.to_json()}
