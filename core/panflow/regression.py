"""The non-generative baseline every domain compares a flow against: MSE regression (``regression``).

The same backbone is called with a fixed input (``x = 0`` at ``t = 0`` on free elements; known
elements given clean at ``t = 1``, exactly as flow matching presents them) and trained to output
the data itself. Its prediction is the conditional mean — it averages modes (an MSE policy drives
between the two ways round an obstacle; an MSE forecast blurs small scales), the failure a
generative model exists to avoid. ``generate`` spends one network evaluation. Same data, encoder,
conditions, parameters and trainer as the flow model: only the loss differs
(``--set flow.objective='"regression"'``). Padding masks are respected.
"""

from __future__ import annotations

from typing import Any

import torch

from .components import ConditionSpec, DataSpec
from .errors import ContractError, DataError
from .known import expand_known, make_known_sampler
from .objective import _expand_mask
from .potentials import refuse_potentials
from .sampling import SampleResult


class RegressionObjective:
    kind = "regression"

    def __init__(self, conditions: tuple[ConditionSpec, ...] = (), time_shape: tuple[int, ...] = (),
                 known: Any = "none"):
        self.conditions = tuple(conditions)
        self.time_shape = tuple(time_shape)
        self.known = make_known_sampler(known)

    def _cond(self, cond: dict[str, torch.Tensor], n: int, device) -> dict[str, torch.Tensor]:
        out = {}
        for c in self.conditions:
            if c.name not in cond:
                raise DataError(f"condition '{c.name}' was not given (the regression baseline needs it)")
            v = cond[c.name].to(device)
            c.check(v, n)
            out[c.name] = v
            if c.kind == "tensor":
                out[c.name + ".null"] = torch.zeros(n, dtype=torch.bool, device=device)
        return out

    def _inputs(self, x_known: torch.Tensor, known: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        n = x_known.shape[0]
        t = torch.zeros((n, *self.time_shape) if self.time_shape else (n,), device=x_known.device)
        if known is None:
            return torch.zeros_like(x_known), t
        return torch.where(expand_known(known, x_known), x_known, torch.zeros_like(x_known)), torch.where(known, 1.0, t)

    def draw(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        known = self.known.draw(n, self.time_shape, generator, x.device)
        return {} if known is None else {"known": known}

    def loss(self, model, batch, rand: dict | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        x1 = batch.x
        rand = rand if rand is not None else self.draw(x1.shape[0], x1, generator)
        known = rand.get("known")
        if batch.known is not None:
            known = batch.known.bool() if known is None else known | batch.known.bool()
        inp, t = self._inputs(x1, known)
        out = model(inp, t, self._cond(batch.cond, x1.shape[0], x1.device))
        err = (out.float() - x1.float()) ** 2
        weight = None if batch.mask is None else _expand_mask(batch.mask, err)
        if known is not None:
            free = (~expand_known(known, x1)).float()
            weight = free if weight is None else weight * free
        if weight is None:
            return err.mean()
        return (err * weight).sum() / weight.sum().clamp_min(1.0)

    @torch.no_grad()
    def generate(self, model, shape: tuple[int, ...], opts, cond=None, generator=None, device="cpu",
                 known: torch.Tensor | None = None, x_known: torch.Tensor | None = None) -> SampleResult:
        if opts is not None and opts.guides:
            raise ContractError("the regression baseline has no unconditional branch: guidance does not apply")
        refuse_potentials(opts, "the regression baseline")
        n = shape[0]
        base = torch.zeros(shape, device=device) if x_known is None else x_known.to(device)
        if known is not None:
            known = known.to(device).bool()
        inp, t = self._inputs(base, known)
        x = model(inp, t, self._cond(dict(cond or {}), n, device))
        if known is not None:
            x = torch.where(expand_known(known, x), base, x)
        return SampleResult(x, 1, 1, "regression")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "conditions": [c.to_json() for c in self.conditions],
                "time_shape": list(self.time_shape), "known": self.known.to_json(), "target": "x1 (MSE)"}

    @classmethod
    def from_json(cls, d: dict[str, Any], spec: DataSpec | None = None) -> RegressionObjective:
        return cls(tuple(ConditionSpec.from_json(c) for c in d.get("conditions", [])), tuple(d.get("time_shape", ())),
                   d.get("known", "none"))


def build_regression(spec: DataSpec, cfg: Any, domain: Any) -> RegressionObjective:
    """The baseline from a run config: the domain's (or ``flow.known``'s) known-part distribution."""
    f = cfg.flow
    name = f.known or domain.known
    opts = f.known_options if f.known else domain.known_options
    return RegressionObjective(spec.conditions, spec.time_shape, {"name": name, **opts} if name != "none" else "none")
