"""Flow matching in internal coordinates with a distance loss on the rebuilt trace (objective
``angleflow``).

In internal coordinates (:mod:`panflow_protein.internal`) the flow loss sees each residue's angles
on their own; how errors in them add up along the chain — the chain's overall size — is invisible
to it, and generated windows came out 1.5–1.6× the data's radius of gyration. ``aux_weight > 0``
adds, for samples whose time is above ``aux_t`` (near the data, where the clean trace is
determined), the mean squared error of the pairwise Cα distances (nm) of the trace NeRF rebuilds
from the predicted clean coordinates against the true ones, over real residue pairs ``|i − j| ≥ 3``
— the role of FrameDiff's auxiliary distance loss (Yim et al. 2023), through a differentiable
rebuild. ``aux = "rg"`` penalises only the squared error of the rebuilt trace's radius of gyration
(nm): the one number the flow loss misses, without pulling on the local pairs that carry the
secondary structure. Sampling is the inner objective's.
"""

from __future__ import annotations

import torch

from panflow import FlowObjective, Samples, UnknownNameError, masked_mean

from .internal import decode_internal

MIN_SEP = 3  # pairs closer in sequence are fixed by the bond and angle channels already


def distance_loss(x_hat: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean squared pairwise-distance error over real pairs ``|i − j| ≥ MIN_SEP``; ``x [B, L, 3]``, ``m [B, L]``."""
    idx = torch.arange(x.shape[1], device=x.device)
    far = ((idx[:, None] - idx[None]).abs() >= MIN_SEP).to(m.dtype)
    w = m[:, :, None] * m[:, None, :] * far
    return masked_mean((torch.cdist(x_hat, x_hat) - torch.cdist(x, x)) ** 2, w)


def radius_of_gyration(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``[B]`` radius of gyration of the real residues of ``x [B, L, 3]`` under ``m [B, L]``."""
    n = m.sum(1).clamp_min(1.0)
    c = (x * m[..., None]).sum(1) / n[:, None]
    return (((x - c[:, None]) ** 2).sum(-1) * m).sum(1).div(n).clamp_min(1e-12).sqrt()


def rg_loss(x_hat: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean squared radius-of-gyration error (nm²)."""
    return ((radius_of_gyration(x_hat, m) - radius_of_gyration(x, m)) ** 2).mean()


AUX_LOSSES = {"distance": distance_loss, "rg": rg_loss}


class AngleFlow:
    """A :class:`panflow.FlowObjective` on ``[B, L, 5]`` internal coordinates plus the distance loss."""

    kind = "angleflow"

    def __init__(self, inner: FlowObjective, aux_weight: float = 1.0, aux_t: float = 0.5, aux: str = "distance"):
        if aux not in AUX_LOSSES:
            raise UnknownNameError("angleflow aux loss", aux, AUX_LOSSES)
        self.inner = inner
        self.aux_weight, self.aux_t, self.aux = float(aux_weight), float(aux_t), aux

    def __getattr__(self, name):  # everything but loss / to_json is the inner objective's
        return getattr(self.__dict__["inner"], name)

    def loss(self, model, batch: Samples, rand: dict | None = None, generator: torch.Generator | None = None):
        inner, z1 = self.inner, batch.x
        n, length = z1.shape[:2]
        rand = rand if rand is not None else inner.draw(n, z1, generator)
        terms = inner.loss_terms(model, batch, rand)
        loss, out, z_t, t = (terms[k] for k in ("loss", "out", "x_t", "t"))
        mask = torch.ones(n, length, device=z1.device, dtype=z1.dtype) if batch.mask is None else batch.mask.to(z1.dtype)
        if self.aux_weight <= 0:
            return loss
        gate = rand["t"].reshape(n, -1)[:, 0] > self.aux_t
        if not bool(gate.any()):
            return loss + 0.0 * out.sum()
        tc = t.clamp(inner.t_eps, 1 - inner.t_eps)
        z1_hat = inner.path.convert(out.float(), inner.prediction, "data", z_t.float(), tc)[gate]
        x_hat = decode_internal(z1_hat.double()).float() / 10.0  # Å → nm
        x = decode_internal(z1[gate].double()).float() / 10.0
        return loss + self.aux_weight * AUX_LOSSES[self.aux](x_hat, x, mask[gate])

    def to_json(self) -> dict:
        return {"kind": self.kind, "inner": self.inner.to_json(), "aux_weight": self.aux_weight, "aux_t": self.aux_t,
                "aux": self.aux}

    @classmethod
    def from_json(cls, d: dict, spec=None) -> AngleFlow:
        return cls(FlowObjective.from_json(d["inner"], spec), d.get("aux_weight", 1.0), d.get("aux_t", 0.5),
                   d.get("aux", "distance"))
