"""Conditional 2-D datasets with exact conditional densities (reference cases for conditioning).

- ``ring``: a context vector ``c = (cos θ, sin θ)``, θ ~ U(0, 2π), and ``x | c ~ N(R c, s² I)``:
  a continuous context whose every value has its own Gaussian; the marginal is a ring.
- ``gauss2``: ``x = (a, b) ~ N(0, [[1, ρ], [ρ, 1]])`` with per-coordinate time, for inpainting:
  ``b | a ~ N(ρ a, 1 − ρ²)`` exactly.
"""

from __future__ import annotations

import math

import torch

from panflow import ConditionSpec, DataBundle, DataError, DatasetOptions, Samples

from .data import check_options


class ConditionalRing:
    name, radius, scale = "cond_ring", 2.0, 0.2
    condition = ConditionSpec("c", "tensor", (2,), dropout=0.1, normalisation="unit vector (cos θ, sin θ)")

    def sample_context(self, n: int, g: torch.Generator) -> torch.Tensor:
        theta = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
        return torch.stack([theta.cos(), theta.sin()], 1).float()

    def sample(self, c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        z = torch.randn(c.shape, generator=g, dtype=torch.float64)
        return (self.radius * c.double() + self.scale * z).float()

    def log_prob(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x | c)`` ``[N]``."""
        d = (x.double() - self.radius * c.double()) / self.scale
        return -0.5 * (d ** 2).sum(1) - 2 * math.log(self.scale) - math.log(2 * math.pi)


class CorrelatedGaussian:
    name, rho = "gauss2", 0.8

    @property
    def cov(self) -> torch.Tensor:
        return torch.tensor([[1.0, self.rho], [self.rho, 1.0]], dtype=torch.float64)

    def sample(self, n: int, g: torch.Generator) -> torch.Tensor:
        return (torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(self.cov).T).float()

    def conditional(self, a: float) -> tuple[float, float]:
        """Mean and variance of ``b | a``."""
        return self.rho * a, 1 - self.rho ** 2


CONDITIONAL = {"cond_ring": ConditionalRing, "gauss2": CorrelatedGaussian}


def load_conditional(name: str, opts: DatasetOptions) -> DataBundle:
    """Train/validation sets of a conditional toy; the spec's conditions and time shape ride in ``meta``."""
    if opts.path:
        raise DataError(f"toy2d dataset '{name}' is generated; --data is not supported")
    check_options(opts)
    n_train, n_val = int(opts.options.get("n_train", 100_000)), int(opts.options.get("n_val", 10_000))
    g = torch.Generator().manual_seed(opts.seed)
    meta = {"toy": name, "n_train": n_train, "n_val": n_val, "generator_seed": opts.seed}
    if name == "cond_ring":
        toy = ConditionalRing()
        ct, cv = toy.sample_context(n_train, g), toy.sample_context(n_val, g)
        train, val = Samples(toy.sample(ct, g), cond={"c": ct}), Samples(toy.sample(cv, g), cond={"c": cv})
        meta["conditions"] = [toy.condition.to_json()]
    else:
        toy = CorrelatedGaussian()
        train, val = Samples(toy.sample(n_train, g)), Samples(toy.sample(n_val, g))
        meta["time_shape"] = [2]
    return DataBundle(train, val, meta)
