"""Stochastic sampling: Euler–Maruyama with the score derived from the velocity field.

For an affine path the score is ``∇log p_t(x) = −x0̂ / σ_t`` where x0̂ is the noise implied by
the velocity. The SDE ``dx = [v + ½ g² ∇log p_t] dt + g dW`` has the same marginals as the
ODE ``dx = v dt`` for any g; we use ``g_t = noise_scale · σ_t`` so ``½ g² ∇log p = −½ noise_scale² σ_t x0̂``
stays bounded at t → 1. ``noise_scale = 0`` is the Euler ODE sampler.
"""

from __future__ import annotations

import torch

from .errors import PanflowError, check_finite
from .paths import AffinePath
from .sampling import SampleResult
from .solvers import Field, check_grid, time_grid


def sample_sde(field: Field, path: AffinePath, x0: torch.Tensor, steps: int, noise_scale: float = 1.0,
               generator: torch.Generator | None = None, grid: torch.Tensor | None = None,
               t_max: float = 0.999, hold: torch.Tensor | None = None) -> SampleResult:
    """Euler–Maruyama from t = 0 to ``t_max`` then one deterministic step to 1; NFE = ``steps``.

    ``hold`` (bool, shaped like ``x0``) marks elements that never move (known parts): neither drift
    nor noise is applied to them.
    """
    if steps < 1:
        raise PanflowError(f"the SDE sampler needs at least 1 step, got {steps}")
    if noise_scale < 0:
        raise PanflowError(f"noise_scale must be ≥ 0, got {noise_scale}")
    if grid is None:
        grid = time_grid(steps, device=x0.device)
    grid = torch.as_tensor(grid, dtype=torch.float64, device=x0.device)
    check_grid(grid)
    x, nfe = x0, 0
    for i in range(grid.numel() - 1):
        t = grid[i].clamp(max=t_max).to(x.dtype)
        h = (grid[i + 1] - grid[i]).to(x.dtype)
        tb = t.expand(x.shape[0])
        v = field(x, tb)
        nfe += 1
        last = i == grid.numel() - 2
        if noise_scale > 0 and not last:
            noise_hat = path.convert(v, "velocity", "noise", x, tb)
            sigma = path.schedule.sigma(t)
            drift = v - 0.5 * noise_scale ** 2 * sigma * noise_hat
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            new = x + h * drift + noise_scale * sigma * h.abs().sqrt() * z
        else:
            new = x + h * v
        x = new if hold is None else torch.where(hold, x, new)
    check_finite(x, "the SDE sample")
    return SampleResult(x, nfe, grid.numel() - 1, "sde")
