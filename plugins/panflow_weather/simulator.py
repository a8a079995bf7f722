"""The embedded default: a stochastically forced barotropic atmosphere on a β-plane channel.

Geometry (why a channel): the flow lives on ``x ∈ [0, 2π)`` (longitude, periodic) by
``y ∈ [0, π]`` (latitude, pole to pole) with free-slip walls at the poles. A channel keeps the
solver a few dozen lines of exact pseudo-spectral numpy (odd reflection in ``y`` makes the
walls periodic), while longitude is periodic like the real atmosphere and the output grid is a
regular cell-centred lat-lon grid in WeatherBench 2 layout. It is not a sphere: there is no
convergence of meridians, so the poles are walls, not points.

State and equations (nondimensional; one time unit = one day; output every 6 hours):

- vorticity ``ζ = ∇²ψ``: ``ζ_t + J(ψ, ζ + h) + β ψ_x = −μ (ζ − ζ_jet) − ν ∇⁸ζ + σ dW`` (an
  unstable relaxed jet over orography ``h``, white-in-time noise at zonal wavenumbers 1-8);
- a temperature-like tracer ``T``: ``T_t + J(ψ, T) = (T_eq − T)/τ − ν ∇⁸T`` with ``T_eq`` from
  latitude and the land-sea mask heated by top-of-atmosphere radiation (diurnal and annual).

The state is Markov and fully observed on the output grid, so an ensemble run from the true
state with fresh noise (and a tiny initial perturbation) samples the true forecast distribution:
the oracle. Output variables (ERA5 names, affine maps of the state): ``geopotential`` at 500 hPa
(``Z = Z0 + Zs·ψ``, m² s⁻²) and ``2m_temperature`` (``250 + 40·T``, K); static ``land_sea_mask``
and ``geopotential_at_surface``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from .forcings import SOLAR_CONSTANT, toa_radiation

Z0, ZS, T0, TS = 54_000.0, 6_000.0, 250.0, 40.0


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the embedded store (its hash names the cache entry)."""

    nlat: int = 32
    nlon: int = 64
    n_times: int = 2500
    spinup: int = 200
    substeps: int = 3
    step_days: float = 0.25
    beta: float = 1.0
    jet: float = 2.0
    drag: float = 0.1
    hyper: float = 2e-7
    noise: float = 10.0
    tracer_noise: float = 0.5
    tau: float = 2.0
    orography: float = 0.6
    oracle_inits: int = 24
    oracle_members: int = 16
    oracle_leads: int = 8
    oracle_perturbation: float = 1e-3
    seed: int = 0
    start: str = "2000-01-01T00:00"

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


class Channel:
    """Pseudo-spectral solver on the odd/even-reflected channel; batch axis first: ``[B, 2H, W]``."""

    def __init__(self, r: Recipe):
        self.r = r
        h, w = r.nlat, r.nlon
        self.lat = 90.0 - (np.arange(h) + 0.5) * 180.0 / h          # cell centres, north to south
        self.lon = np.arange(w) * 360.0 / w
        y = (np.arange(2 * h) + 0.5) * np.pi / h                      # extended y in [0, 2π)
        self.y = y
        kx = np.fft.rfftfreq(w, 1.0 / w)
        ky = np.fft.fftfreq(2 * h, 1.0 / (2 * h))
        self.kx, self.ky = np.meshgrid(kx, ky)                       # [2H, W]
        k2 = self.kx ** 2 + self.ky ** 2
        self.inv_k2 = np.where(k2 > 0, -1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        self.dealias = (np.abs(self.kx) < w / 3) & (np.abs(self.ky) < 2 * h / 3)
        self.dt = r.step_days / r.substeps
        self.damp_zeta = np.exp(-(r.drag + r.hyper * k2 ** 4) * self.dt)
        self.damp_t = np.exp(-(1.0 / r.tau + r.hyper * k2 ** 4) * self.dt)
        g = np.random.default_rng(r.seed + 1)
        yy = y[:, None] * np.ones((1, w))
        phys = np.sin(y[:, None]) * np.ones((1, w))                    # taper: odd, zero at the walls
        lsm = self._smooth(g.standard_normal((h, w)), 4) > 0.35
        self.lsm = lsm.astype(np.float64)
        oro = np.clip(self._smooth(g.standard_normal((h, w)), 3), 0, None) * self.lsm
        self.oro = oro / max(oro.max(), 1e-9)
        self.h_odd = r.orography * self._odd(self.oro) * np.abs(phys)
        self.zeta_jet = self._odd(self._jet_profile(y[:h]))[:, :1] * np.ones((1, w))
        self.teq_lat = np.cos(yy - np.pi / 2) ** 2                   # warm "equator" at y = π/2
        forced = (np.abs(self.kx) >= 1) & (np.abs(self.kx) <= 8) & (np.abs(self.ky) <= 8) & (k2 > 0)
        self.noise_mask = forced

    def _jet_profile(self, y: np.ndarray) -> np.ndarray:
        """Vorticity of two opposite mid-latitude jets (u = jet · sech² around y = π/4, 3π/4)."""
        d = 0.25
        u = self.r.jet * (1 / np.cosh((y - np.pi / 3) / d) ** 2 + 1 / np.cosh((y - 2 * np.pi / 3) / d) ** 2)
        return np.gradient(-u, y)[:, None]

    @staticmethod
    def _smooth(a: np.ndarray, k: int) -> np.ndarray:
        f = np.fft.fft2(a)
        kx = np.fft.fftfreq(a.shape[1], 1.0 / a.shape[1])
        ky = np.fft.fftfreq(a.shape[0], 1.0 / a.shape[0])
        f *= np.exp(-(kx[None] ** 2 + ky[:, None] ** 2) / k ** 2)
        out = np.fft.ifft2(f).real
        return out / out.std()

    @staticmethod
    def _odd(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, -a[::-1]], axis=0)

    @staticmethod
    def _even(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, a[::-1]], axis=-2)

    def t_eq(self, time: np.datetime64) -> np.ndarray:
        toa = toa_radiation(np.array([time]), self.lat, self.lon)[0] / SOLAR_CONSTANT
        heat = self.lsm * (toa - 0.3) * 0.6 + (1 - self.lsm) * (toa - 0.3) * 0.1
        return self.teq_lat + self._even(heat)

    def tendency(self, zh: np.ndarray, th: np.ndarray, teq_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Spectral tendencies of ζ and T without the linear damping (done by integrating factors)."""
        psi = self.inv_k2 * zh
        w = self.r.nlon
        d = lambda f, k: np.fft.irfft2(1j * k * f, s=(2 * self.r.nlat, w))
        u, v = -d(psi, self.ky), d(psi, self.kx)
        qh = zh + np.fft.rfft2(self.h_odd)
        adv_q = u * d(qh, self.kx) + v * d(qh, self.ky) + self.r.beta * v
        adv_t = u * d(th, self.kx) + v * d(th, self.ky)
        fz = -np.fft.rfft2(adv_q) * self.dealias + self.r.drag * np.fft.rfft2(self.zeta_jet)
        ft = -np.fft.rfft2(adv_t) * self.dealias + teq_h / self.r.tau
        return fz, ft

    def step(self, zh: np.ndarray, th: np.ndarray, time: np.datetime64, g: np.random.Generator):
        """Advance one output step (``substeps`` Heun steps with integrating factors, Euler-Maruyama noise)."""
        teq_h = np.fft.rfft2(self.t_eq(time))
        for _ in range(self.r.substeps):
            fz, ft = self.tendency(zh, th, teq_h)
            z1, t1 = (zh + self.dt * fz) * self.damp_zeta, (th + self.dt * ft) * self.damp_t
            fz2, ft2 = self.tendency(z1, t1, teq_h)
            zh = (zh + 0.5 * self.dt * fz) * self.damp_zeta + 0.5 * self.dt * fz2
            th = (th + 0.5 * self.dt * ft) * self.damp_t + 0.5 * self.dt * ft2
            xi = g.standard_normal((*zh.shape[:-2], self.r.nlat, self.r.nlon))
            w = np.fft.rfft2(np.concatenate([xi, -xi[..., ::-1, :]], -2))
            zh = zh + self.r.noise * np.sqrt(self.dt) * w * self.noise_mask / np.sqrt(self.noise_mask.sum())
            xt = g.standard_normal((*th.shape[:-2], self.r.nlat, self.r.nlon))
            wt = np.fft.rfft2(np.concatenate([xt, xt[..., ::-1, :]], -2))
            th = th + self.r.tracer_noise * np.sqrt(self.dt) * wt * self.noise_mask / np.sqrt(self.noise_mask.sum())
        return zh, th

    def observe(self, zh: np.ndarray, th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(geopotential, 2m_temperature)`` on the output grid ``[..., H, W]`` (north to south)."""
        h = self.r.nlat
        psi = np.fft.irfft2(self.inv_k2 * zh, s=(2 * h, self.r.nlon))[..., :h, :]
        t = np.fft.irfft2(th, s=(2 * h, self.r.nlon))[..., :h, :]
        return Z0 + ZS * psi, T0 + TS * t


def times_of(r: Recipe, n: int, offset: int = 0) -> np.ndarray:
    step = np.timedelta64(int(r.step_days * 24 * 3600), "s")
    return np.datetime64(r.start, "s") + (offset + np.arange(n)) * step


def simulate(r: Recipe) -> dict[str, np.ndarray]:
    """Run the recipe: fields ``[n_times, H, W]``, statics, times, and the oracle ensemble
    ``[inits, members, leads, H, W]`` launched from the last ``oracle_inits`` validation-era states."""
    ch = Channel(r)
    g = np.random.default_rng(r.seed)
    h, w = r.nlat, r.nlon
    zh = np.fft.rfft2(ch.zeta_jet + ch._odd(0.1 * g.standard_normal((h, w))))
    th = np.fft.rfft2(ch.teq_lat + 0 * ch.y[:, None])
    all_times = times_of(r, r.spinup + r.n_times, -r.spinup)
    z_out, t_out, states = [], [], []
    for i, tm in enumerate(all_times):
        if i >= r.spinup:
            z, t = ch.observe(zh, th)
            z_out.append(z)
            t_out.append(t)
            states.append((zh, th))
        zh, th = ch.step(zh, th, tm, g)
    times = all_times[r.spinup:]
    n = r.n_times
    stride = max(1, (n // 10) // r.oracle_inits)
    idx = np.arange(n - r.oracle_leads - 1 - stride * (r.oracle_inits - 1), n - r.oracle_leads, stride)[: r.oracle_inits]
    og = np.random.default_rng(r.seed + 2)
    oz = np.zeros((len(idx), r.oracle_members, r.oracle_leads, h, w))
    ot = np.zeros_like(oz)
    for a, i in enumerate(idx):
        zh0, th0 = states[i]
        m = r.oracle_members
        zs = np.repeat(zh0[None], m, 0)
        ts = np.repeat(th0[None], m, 0)
        pert = og.standard_normal((m, h, w)) * r.oracle_perturbation
        zs = zs + np.fft.rfft2(np.concatenate([pert, -pert[:, ::-1]], 1)) * ch.dealias
        for lead in range(r.oracle_leads):
            zs, ts = ch.step(zs, ts, times[i + lead], og)
            oz[a, :, lead], ot[a, :, lead] = ch.observe(zs, ts)
    return {"geopotential": np.stack(z_out), "2m_temperature": np.stack(t_out), "times": times, "lat": ch.lat,
            "lon": ch.lon, "land_sea_mask": ch.lsm, "geopotential_at_surface": 9.81 * 3000.0 * ch.oro,
            "oracle_init_index": idx, "oracle_geopotential": oz, "oracle_2m_temperature": ot}
