"""Exact log-likelihood through the flow (instantaneous change of variables).

``d/dt log p_t(x_t) = −div v(x_t, t)``, so ``log p_1(x1) = log N(x0; 0, I) − ∫_0^1 div v dt``
where ``x0`` is x1 carried backwards along the ODE. The divergence is exact (one backward pass
per dimension: small data) or a Hutchinson estimate ``E[εᵀ (∂v/∂x) ε]`` (large data).
"""

from __future__ import annotations

import math

import torch

from .errors import PanflowError, UnknownNameError
from .solvers import Field, dopri5, integrate, time_grid


def divergence_exact(field: Field, x: torch.Tensor, t: torch.Tensor):
    """(v, div v) with the divergence summed over all non-batch dims, exactly. ``x: [B, ...]``."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = field(x, t)
        flat_v, d = v.reshape(v.shape[0], -1), x[0].numel()
        div = torch.zeros(x.shape[0], dtype=v.dtype, device=x.device)
        for i in range(d):
            g = torch.autograd.grad(flat_v[:, i].sum(), x, retain_graph=i < d - 1)[0]
            div = div + g.reshape(g.shape[0], -1)[:, i]
    return v.detach(), div.detach()


def divergence_hutchinson(field: Field, x: torch.Tensor, t: torch.Tensor, probes: torch.Tensor):
    """(v, unbiased estimate of div v) from probes ``[P, *x.shape]`` (Rademacher or Gaussian)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = field(x, t)
        est = torch.zeros(x.shape[0], dtype=v.dtype, device=x.device)
        for p in range(probes.shape[0]):
            eps = probes[p]
            g = torch.autograd.grad((v * eps).sum(), x, retain_graph=p < probes.shape[0] - 1)[0]
            est = est + (g * eps).reshape(x.shape[0], -1).sum(1)
    return v.detach(), (est / probes.shape[0]).detach()


def standard_normal_logpdf(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, I) summed over non-batch dims: ``[B]``."""
    flat = x.reshape(x.shape[0], -1)
    return -0.5 * (flat ** 2).sum(1) - 0.5 * flat.shape[1] * math.log(2 * math.pi)


def log_likelihood(field: Field, x1: torch.Tensor, method: str = "rk4", steps: int = 64,
                   estimator: str = "exact", n_probes: int = 1, generator: torch.Generator | None = None,
                   atol: float = 1e-5, rtol: float = 1e-5) -> torch.Tensor:
    """log p_1(x1) in nats, ``[B]``, under the flow defined by ``field``.

    ``method``: a fixed-step solver (with ``steps``) or ``dopri5``; ``estimator``: ``exact`` or
    ``hutchinson`` (Rademacher probes, fixed along the trajectory).
    """
    if estimator not in ("exact", "hutchinson"):
        raise UnknownNameError("divergence estimator", estimator, ["exact", "hutchinson"])
    shape, b = x1.shape, x1.shape[0]
    d = x1[0].numel()
    probes = None
    if estimator == "hutchinson":
        probes = torch.randint(0, 2, (n_probes, *shape), generator=generator, device=x1.device)
        probes = probes.to(x1.dtype) * 2 - 1

    def augmented(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = z[:, :d].reshape(shape)
        if probes is None:
            v, div = divergence_exact(field, x, t)
        else:
            v, div = divergence_hutchinson(field, x, t, probes)
        return torch.cat([v.reshape(b, d), div[:, None]], 1)

    z1 = torch.cat([x1.reshape(b, d), torch.zeros(b, 1, dtype=x1.dtype, device=x1.device)], 1)
    if method == "dopri5":
        z0 = dopri5(augmented, z1, 1.0, 0.0, atol=atol, rtol=rtol).x
    else:
        if steps < 1:
            raise PanflowError(f"likelihood needs at least 1 step, got {steps}")
        grid = time_grid(steps, device=x1.device).flip(0)
        z0 = integrate(augmented, z1, grid, method).x
    x0, int_div_backward = z0[:, :d], z0[:, d]
    # integrating from 1 to 0 accumulated −∫_0^1 div v dt
    return standard_normal_logpdf(x0) + int_div_backward
