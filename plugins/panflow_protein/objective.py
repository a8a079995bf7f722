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

from panflow import FlowObjective, Samples


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
    """A :class:`panflow.FlowObjective` whose training batches are randomly rotated (``x [B, L, 3]``)."""

    kind = "rotflow"

    def __init__(self, inner: FlowObjective):
        self.inner = inner

    def __getattr__(self, name):  # everything but draw / loss / to_json is the inner objective's
        return getattr(self.__dict__["inner"], name)

    def draw(self, n: int, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        rand = self.inner.draw(n, x, generator)
        rand["rot"] = random_rotations(n, generator, x.device).to(x.dtype)
        return rand

    def loss(self, model, batch: Samples, rand: dict | None = None, generator: torch.Generator | None = None):
        rand = dict(rand if rand is not None else self.draw(batch.x.shape[0], batch.x, generator))
        rot = rand.pop("rot")
        x = torch.einsum("bij,blj->bli", rot.to(batch.x.dtype), batch.x)
        return self.inner.loss(model, Samples(x, None, batch.mask, dict(batch.cond), batch.known), rand)

    def to_json(self) -> dict:
        return {"kind": self.kind, "inner": self.inner.to_json()}

    @classmethod
    def from_json(cls, d: dict, spec=None) -> RotatingFlow:
        return cls(FlowObjective.from_json(d["inner"], spec))
