"""Sampling settings and results shared by every objective, and conditioning at sampling time.

:class:`SampleOptions` is the one place sampling defaults live (the run config's ``[sample]``
section extends it with ``n`` and ``seed``). :class:`SampleResult` is what every sampler returns.
:func:`guided_velocity` applies classifier-free guidance over any subset of named conditions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from .components import ConditionSpec
from .errors import ContractError, DataError, PanflowError, UnknownNameError


@dataclass
class SampleOptions:
    """How to sample.

    - ``solver`` and ``nfe``: a registered solver (flow: euler, midpoint, heun, rk4, dopri5, sde;
      masked: ancestral, confidence, entropy, maskgit, remdm) and its budget of model evaluations (dopri5 is adaptive: it
      uses ``atol``/``rtol`` and reports the NFE it spent);
    - ``guidance``: classifier-free guidance scale over the conditions in ``guided`` (empty = all);
      ``guidance_scales`` (``{name: w}``) instead composes one scale per condition, in order;
      ``guidance_interval`` (``[t_lo, t_hi]``, empty = everywhere) limits where guidance acts;
    - ``noise_scale``: the SDE sampler's diffusion scale (solver ``sde`` only);
    - ``inpaint``: how known elements are held, a registered method (:mod:`panflow.inpaint`):
      ``trained`` (the model was trained with known parts: they are presented clean at time 1),
      ``replacement`` or ``repaint`` (training-free, for models trained without known parts);
      ``resample`` is how often ``repaint`` takes each step (it multiplies the NFE);
    - masked diffusion (:mod:`panflow.unmask`): ``temperature`` and ``top_p`` (nucleus) shape the
      unmasking distribution; ``order_noise`` perturbs the confidence order; ``remask`` is ReMDM's
      η; ``stop_token`` (≥ 0) ends a sequence at that token (block diffusion stops early).
    """

    solver: str = "euler"
    nfe: int = 16
    guidance: float = 1.0
    guided: list = field(default_factory=list)
    guidance_scales: dict = field(default_factory=dict)
    guidance_interval: list = field(default_factory=list)
    noise_scale: float = 1.0
    atol: float = 1e-5
    rtol: float = 1e-5
    inpaint: str = "trained"
    resample: int = 10
    temperature: float = 1.0
    top_p: float = 1.0
    order_noise: float = 0.0
    remask: float = 0.0
    stop_token: int = -1
    potentials: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .inpaint import get_inpaint_method  # the registry imports this module
        from .potentials import check_potential_options

        get_inpaint_method(self.inpaint)
        check_potential_options(self.potentials)
        if self.resample < 1:
            raise PanflowError(f"resample must be >= 1, got {self.resample}")
        if self.guidance_interval and len(self.guidance_interval) != 2:
            raise PanflowError(f"guidance_interval must be [t_lo, t_hi], got {self.guidance_interval}")
        if self.noise_scale < 0:
            raise PanflowError(f"noise_scale must be >= 0, got {self.noise_scale}")
        if not self.temperature >= 0 or not 0 < self.top_p <= 1:
            raise PanflowError(f"temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if not self.order_noise >= 0 or not 0 <= self.remask <= 1:
            raise PanflowError(f"order_noise must be >= 0 and remask in [0, 1], got {self.order_noise}, {self.remask}")

    @property
    def guides(self) -> bool:
        return self.guidance != 1.0 or any(w != 1.0 for w in self.guidance_scales.values())

    def unguided(self) -> SampleOptions:
        """The same settings without guidance (every scale 1: the conditional field as given)."""
        return replace(self, guidance=1.0, guidance_scales={})


@dataclass
class SampleResult:
    """Samples in model space, the model evaluations actually spent, steps taken and the method."""

    x: torch.Tensor
    nfe: int
    steps: int
    method: str


# -- conditions at sampling time -----------------------------------------------------------------
def prepare_cond(conditions: tuple[ConditionSpec, ...], cond: dict[str, torch.Tensor] | None, batch: int,
                 device: torch.device | str) -> dict[str, torch.Tensor]:
    """Validate given conditions against the spec; conditions not given are set to their null.

    A condition may be left out only if the model was trained with its null (dropout > 0):
    otherwise the output would silently be out of distribution.
    """
    cond = dict(cond or {})
    names = [c.name for c in conditions]
    for k in cond:
        if k not in names:
            raise UnknownNameError("condition", k, names)
    out: dict[str, torch.Tensor] = {}
    for c in conditions:
        if c.name in cond:
            v = cond[c.name]
            c.check(v, batch)
            out[c.name] = v.to(device)
        elif c.dropout > 0:
            out[c.name] = c.null(batch, device)
        else:
            raise DataError(f"condition '{c.name}' was not given, and the model never learnt to go without it "
                            f"(trained with dropout 0); give it (e.g. --cond FILE.npz holding '{c.name}')")
    return out


def with_nulls(conditions: tuple[ConditionSpec, ...], cond: dict[str, torch.Tensor],
               null_rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's condition dict with the rows in ``null_rows[name]`` (bool ``[B]``) set to their null.

    Labels take the null id; tensors become zeros and get ``name + ".null"`` flags for backbones
    that keep a learned null.
    """
    out: dict[str, torch.Tensor] = {}
    for c in conditions:
        if c.name not in cond:
            continue
        v = cond[c.name]
        drop = null_rows.get(c.name)
        if c.kind == "label":
            out[c.name] = v if drop is None else torch.where(drop, torch.full_like(v, c.num_classes), v)
        else:
            drop = torch.zeros(v.shape[0], dtype=torch.bool, device=v.device) if drop is None else drop
            d = drop.reshape(-1, *([1] * (v.dim() - 1)))
            out[c.name] = torch.where(d, torch.zeros_like(v), v)
            out[c.name + ".null"] = drop
    return out


def guidance_groups(conditions: tuple[ConditionSpec, ...], opts: SampleOptions) -> list[tuple[list[str], float]]:
    """The guidance as ordered groups ``[(names, w), ...]`` (empty: no guidance)."""
    names = [c.name for c in conditions]
    if opts.guidance_scales:
        for k in opts.guidance_scales:
            if k not in names:
                raise UnknownNameError("condition to guide", k, names)
        groups = [([k], float(w)) for k, w in opts.guidance_scales.items()]
    elif opts.guidance != 1.0:
        guided = list(opts.guided) or names
        for k in guided:
            if k not in names:
                raise UnknownNameError("condition to guide", k, names)
        groups = [(guided, float(opts.guidance))]
    else:
        return []
    if not conditions:
        raise ContractError("guidance needs a conditional model; this one has no conditions")
    by_name = {c.name: c for c in conditions}
    for g, _ in groups:
        for k in g:
            if by_name[k].dropout <= 0:
                raise ContractError(f"cannot guide on condition '{k}': the model was trained without its null "
                                    "(dropout 0), so it has no unconditional branch")
    return groups


VelocityFn = Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor]


def guided_velocity(vel: VelocityFn, conditions: tuple[ConditionSpec, ...], cond: dict[str, torch.Tensor],
                    groups: list[tuple[list[str], float]], interval: list | None = None):
    """``f(x, t, s) -> v``: classifier-free guidance composed over condition groups.

    With groups ``g_1..g_K`` (scales ``w_k``), branch ``k`` keeps groups ``1..k`` and nulls the rest;
    ``v = v_0 + Σ_k w_k (v_k − v_{k−1})``. One group over all conditions is the usual
    ``v_null + w (v_cond − v_null)``; ``w = 1`` everywhere is the conditional field. All branches run
    in one batched forward. Outside ``interval`` (on the solver time ``s [B]``) every ``w`` is 1, and
    a step with the whole batch outside it evaluates the conditional branch alone.
    ``t`` is the model's time (``[B]`` or per element).
    """
    if not groups:
        full = with_nulls(conditions, cond, {})
        return lambda x, t, s: vel(x, t, full)
    b = next(iter(cond.values())).shape[0] if cond else None
    branches = []
    for k in range(len(groups) + 1):
        off = [n for g, _ in groups[k:] for n in g]
        rows = {n: torch.ones(b, dtype=torch.bool, device=cond[n].device) for n in off}
        branches.append(with_nulls(conditions, cond, rows))
    batched = {key: torch.cat([br[key] for br in branches]) for key in branches[0]}
    reps = len(branches)

    def f(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if interval and not bool(((s >= interval[0]) & (s <= interval[1])).any()):
            return vel(x, t, branches[-1])  # every w is 1 here: the conditional field, one branch's cost
        out = vel(torch.cat([x] * reps), torch.cat([t] * reps), batched).chunk(reps)
        v = out[0]
        for k, (_, w) in enumerate(groups, start=1):
            wk = torch.full_like(s, w)
            if interval:
                inside = (s >= interval[0]) & (s <= interval[1])
                wk = torch.where(inside, wk, torch.ones_like(wk))
            v = v + wk.reshape(-1, *([1] * (x.dim() - 1))) * (out[k] - out[k - 1])
        return v

    return f
