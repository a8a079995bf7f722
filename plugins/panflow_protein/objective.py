"""Flow matching with a uniformly random rotation of every training structure (objective ``rotflow``).

Why augmentation and not an SE(3)-equivariant network: a Cα trace has no frame of its own, so the
data distribution is rotation-invariant; showing each centred training structure in a fresh random
orientation teaches a plain transformer that invariance at no architectural cost, keeps the core's
affine path and solvers unchanged, and leaves the network free to use absolute coordinates and
sequence-local offsets (cheap on CPU). The rotations are drawn in ``draw`` from the trainer's
generator, so they are a function of (seed, step) like the rest of the loss's randomness, and
resume stays bit-exact. Known (motif) residues rotate with the rest, so their relative geometry is
what the model learns to scaffold.
"""

from __future__ import annotations

import torch

from panflow import FlowObjective, Samples, masked_mean

LOCAL = (1, 2, 3, 4)  # sequence separations of the auxiliary distance loss


def random_rotations(n: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """``[n, 3, 3]`` rotations uniform on SO(3) (normalised Gaussian quaternions)."""
    q = torch.randn(n, 4, generator=generator, device=device, dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    r = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                     2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                     2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1)
    return r.reshape(n, 3, 3)


class RotatingFlow:
    """A :class:`panflow.FlowObjective` whose training batches are randomly rotated (``x [B, L, 3]``).

    ``aux_weight > 0`` adds an auxiliary loss on the distances between residues ``i`` and ``i + k``
    (k = 1..4: the Cα bond and the helix / strand signatures) of the clean structure implied by the
    prediction, for samples whose time is above ``aux_t`` (close to data, where the structure is
    determined): the flow loss alone learns 3.8 Å bonds slowly, and FrameDiff (Yim et al. 2023)
    uses the same kind of low-noise auxiliary distance loss for the same reason. It changes the
    training objective only; sampling is the inner objective's.

    ``rotate=False`` keeps the data's frame: for the models of one protein that are already
    superimposed (an NMR ensemble), where the ensemble is the variation around that frame and
    rotating a dozen models would ask the network to learn every orientation from them.
    """

    kind = "rotflow"

    def __init__(self, inner: FlowObjective, aux_weight: float = 0.0, aux_t: float = 0.5, rotate: bool = True):
        self.inner = inner
        self.aux_weight, self.aux_t, self.rotate = float(aux_weight), float(aux_t), bool(rotate)

    def __getattr__(self, name):  # everything but draw / loss / to_json is the inner objective's
        return getattr(self.__dict__["inner"], name)

    def draw(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        rand = self.inner.draw(n, x, generator)
        if self.rotate:
            rand["rot"] = random_rotations(n, generator, x.device).to(x.dtype)
        return rand

    def loss(self, model, batch: Samples, rand: dict | None = None, generator: torch.Generator | None = None):
        rand = dict(rand if rand is not None else self.draw(batch.x.shape[0], batch.x, generator))
        rot = rand.pop("rot") if self.rotate else None  # a rotating objective's draw always holds one
        x = batch.x if rot is None else torch.einsum("bij,blj->bli", rot.to(batch.x.dtype), batch.x)
        rotated = Samples(x, None, batch.mask, dict(batch.cond), batch.known)
        if self.aux_weight <= 0:
            return self.inner.loss(model, rotated, rand)
        return self._loss_with_aux(model, rotated, rand)

    def _loss_with_aux(self, model, batch: Samples, rand: dict) -> torch.Tensor:
        inner, x1 = self.inner, batch.x
        n = x1.shape[0]
        terms = inner.loss_terms(model, batch, rand)
        loss, out, x_t, t, known = (terms[k] for k in ("loss", "out", "x_t", "t", "known"))
        mask = torch.ones(x1.shape[:2], device=x1.device, dtype=x1.dtype) if batch.mask is None else batch.mask.to(x1.dtype)
        # only samples near the data get the distance loss, and only they are converted: far from it a
        # path's data estimate can be inf (VP schedules at the noise end), and inf · 0 weight is NaN
        gate = rand["t"].reshape(n, -1)[:, 0] > self.aux_t
        if not bool(gate.any()):
            return loss + 0.0 * out.sum()
        tc = t.clamp(inner.t_eps, 1 - inner.t_eps)[gate]
        x1_hat = inner.path.convert(out.float()[gate], inner.prediction, "data", x_t.float()[gate], tc)
        x1g, mg = x1[gate], mask[gate]
        kg = None if known is None else known[gate]
        aux = []
        for k in LOCAL:
            d_hat = (x1_hat[:, k:] - x1_hat[:, :-k]).norm(dim=-1)
            d = (x1g[:, k:] - x1g[:, :-k]).norm(dim=-1)
            w = mg[:, k:] * mg[:, :-k]
            if kg is not None:  # pairs with both ends given teach nothing
                w = w * (1 - (kg[:, k:] & kg[:, :-k]).to(x1.dtype))
            aux.append(masked_mean((d_hat - d.float()) ** 2, w))
        return loss + self.aux_weight * torch.stack(aux).mean()

    def to_json(self) -> dict:
        return {"kind": self.kind, "inner": self.inner.to_json(), "aux_weight": self.aux_weight, "aux_t": self.aux_t,
                "rotate": self.rotate}

    @classmethod
    def from_json(cls, d: dict, spec=None) -> RotatingFlow:
        return cls(FlowObjective.from_json(d["inner"], spec), d.get("aux_weight", 0.0), d.get("aux_t", 0.5),
                   d.get("rotate", True))
