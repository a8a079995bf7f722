"""Closed-form Gaussian flows with conditions and known parts (rectified path, x0 ~ N(0, I)).

For data ``x1 ~ N(m, Σ)`` the marginal of ``x_t = t x1 + (1 − t) x0`` is ``N(t m, S_t)`` with
``S_t = t² Σ + (1 − t)² I``, and the optimal velocity is affine in ``x``:
``v(x, t) = E[x1 − x0 | x_t = x] = m + (t Σ − (1 − t) I) S_t⁻¹ (x − t m)``.
"""

from __future__ import annotations

import torch


def sample_pairs(model: torch.nn.Module, n: int, opts, first: float | None = None):
    """Draw ``n`` samples of a 2-D field in float64 with per-element time (seed 0); ``first`` holds
    coordinate 0 at that value as a known part. Returns the :class:`panflow.SampleResult`."""
    from panflow import FlowObjective

    kw = {}
    if first is not None:
        known = torch.zeros(n, 2, dtype=torch.bool)
        known[:, 0] = True
        x_known = torch.zeros(n, 2, dtype=torch.float64)
        x_known[:, 0] = first
        kw = {"known": known, "x_known": x_known}
    torch.set_default_dtype(torch.float64)
    try:
        return FlowObjective(time_shape=(2,)).generate(model, (n, 2), opts, generator=torch.Generator().manual_seed(0), **kw)
    finally:
        torch.set_default_dtype(torch.float32)


def gaussian_velocity(x: torch.Tensor, t: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Optimal rectified-flow velocity for ``N(mean, cov)`` data; ``x [B, d]``, ``t [B]``, ``mean [B, d] or [d]``."""
    d = x.shape[-1]
    eye = torch.eye(d, dtype=x.dtype)
    tt = t.reshape(-1, 1, 1).to(x.dtype)
    s = tt ** 2 * cov + (1 - tt) ** 2 * eye
    gain = (tt * cov - (1 - tt) * eye) @ torch.linalg.inv(s)
    mean = mean.expand_as(x)
    return mean + (gain @ (x - tt[:, :, 0] * mean)[..., None])[..., 0]


class JointGaussianOracle(torch.nn.Module):
    """``x = (a, b) ~ N(0, Σ)`` with per-element time ``t [B, 2]``: the exact field when coordinate
    ``given`` is known (the other is generated from its conditional), or the joint field (``None``)."""

    def __init__(self, cov: torch.Tensor, given: int | None = 0):
        super().__init__()
        self.cov, self.given = cov, given

    def forward(self, x, t, cond=None):
        out = torch.zeros_like(x)
        c = self.cov
        known = torch.zeros_like(t, dtype=torch.bool)
        if self.given is not None:
            known[:, self.given] = True
        none = ~known.any(1)
        if bool(none.any()):
            out[none] = gaussian_velocity(x[none], t[none, 0], torch.zeros(2, dtype=x.dtype), c)
        for k, u in ((0, 1), (1, 0)):  # coordinate k given, u generated from b | a
            rows = known[:, k] & ~known[:, u]
            if not bool(rows.any()):
                continue
            mu = (c[u, k] / c[k, k] * x[rows, k])[:, None]
            var = (c[u, u] - c[u, k] ** 2 / c[k, k]).reshape(1, 1)
            out[rows, u] = gaussian_velocity(x[rows, u:u + 1], t[rows, u], mu, var)[:, 0]
        return out


class LinearContextOracle(torch.nn.Module):
    """``x | c ~ N(A c, Σ)`` with ``c ~ N(0, I)``; unconditional ``x ~ N(0, A Aᵀ + Σ)``. Reads the
    context ``cond["c"]`` and its null flags ``cond["c.null"]``."""

    def __init__(self, a: torch.Tensor, cov: torch.Tensor):
        super().__init__()
        self.a, self.cov = a, cov

    def forward(self, x, t, cond):
        c = cond["c"].to(x.dtype)
        null = cond["c.null"]
        v_c = gaussian_velocity(x, t, c @ self.a.T, self.cov)
        v_u = gaussian_velocity(x, t, torch.zeros(x.shape[-1], dtype=x.dtype), self.a @ self.a.T + self.cov)
        return torch.where(null[:, None], v_u, v_c)


def guided_moments(a, cov, c, w: float, steps: int = 4000):
    """Mean and covariance at t = 1 of the CFG ODE ``v_u + w (v_c − v_u)`` from ``N(0, I)``, by
    integrating the exact linear moment equations (RK4): the theory the sampler must match."""
    d = cov.shape[0]
    eye = torch.eye(d, dtype=torch.float64)
    sig_u = a @ a.T + cov
    mean_c = a @ c

    def coeffs(t):
        def gain(sig):
            s = t ** 2 * sig + (1 - t) ** 2 * eye
            return (t * sig - (1 - t) * eye) @ torch.linalg.inv(s)
        g_c, g_u = gain(cov), gain(sig_u)
        m_mat = g_u + w * (g_c - g_u)
        k = w * (mean_c - g_c @ (t * mean_c))
        return m_mat, k

    def rhs(t, m, p):
        mm, k = coeffs(t)
        return mm @ m + k, mm @ p + p @ mm.T

    m, p = torch.zeros(d, dtype=torch.float64), eye.clone()
    h = 1.0 / steps
    for i in range(steps):
        t = i * h
        k1 = rhs(t, m, p)
        k2 = rhs(t + h / 2, m + h / 2 * k1[0], p + h / 2 * k1[1])
        k3 = rhs(t + h / 2, m + h / 2 * k2[0], p + h / 2 * k2[1])
        k4 = rhs(t + h, m + h * k3[0], p + h * k3[1])
        m = m + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        p = p + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return m, p
