"""WeatherBench 2 scores, latitude-weighted (Rasp et al. 2024), on numpy arrays.

Shapes: an ensemble forecast ``ens [I, M, H, W]`` (I initialisations, M members) of one variable
at one lead time against ``truth [I, H, W]``; ``w [H]`` cell-area weights (mean 1); optional
``mask [I, H, W]`` (1 = real cell). Spatial means are weighted, then averaged over I.
"""

from __future__ import annotations

import numpy as np

from .forcings import cell_area_weights


def _wmean(a: np.ndarray, w: np.ndarray, mask: np.ndarray | None) -> float:
    """Weighted mean over (H, W) per initialisation, then the mean over initialisations."""
    ww = np.broadcast_to(w[:, None], a.shape[-2:])
    m = np.ones_like(a) if mask is None else mask
    per = (a * m * ww).sum((-2, -1)) / np.clip((m * ww).sum((-2, -1)), 1e-12, None)
    return float(per.mean())


def rmse(ens: np.ndarray, truth: np.ndarray, w: np.ndarray, mask=None) -> float:
    """RMSE of the ensemble mean: sqrt of the initialisation-mean of the weighted MSE."""
    return float(np.sqrt(_wmean((ens.mean(1) - truth) ** 2, w, mask)))


def mae(ens: np.ndarray, truth: np.ndarray, w: np.ndarray, mask=None) -> float:
    return _wmean(np.abs(ens.mean(1) - truth), w, mask)


def crps_fair(ens: np.ndarray, truth: np.ndarray, w: np.ndarray, mask=None) -> float:
    """Fair (ensemble-size unbiased) CRPS: ``E|X − y| − Σ_{i,j}|X_i − X_j| / (2 M (M − 1))``.

    With one member it is the absolute error (the CRPS of a point forecast).
    """
    m = ens.shape[1]
    skill = np.abs(ens - truth[:, None]).mean(1)
    if m == 1:
        return _wmean(skill, w, mask)
    s = np.sort(ens, axis=1)
    k = np.arange(1, m + 1).reshape(1, m, 1, 1)
    pair_sum = 2.0 * ((2 * k - m - 1) * s).sum(1)            # Σ_{i,j} |X_i − X_j|
    return _wmean(skill - pair_sum / (2.0 * m * (m - 1)), w, mask)


def spread(ens: np.ndarray, w: np.ndarray, mask=None) -> float:
    """sqrt of the weighted mean unbiased ensemble variance."""
    return float(np.sqrt(_wmean(ens.var(1, ddof=1), w, mask)))


def spread_skill(ens: np.ndarray, truth: np.ndarray, w: np.ndarray, mask=None) -> float:
    """``sqrt((M + 1) / M) · spread / RMSE``: 1 for a perfectly reliable ensemble of any size M
    (the ensemble mean's error variance is (1 + 1/M) times the member variance; Fortin et al. 2014)."""
    m = ens.shape[1]
    return float(np.sqrt((m + 1) / m) * spread(ens, w, mask) / max(rmse(ens, truth, w, mask), 1e-30))


def rank_histogram(ens: np.ndarray, truth: np.ndarray, seed: int = 0, mask=None) -> np.ndarray:
    """Counts ``[M + 1]`` of the truth's rank among the members (ties broken at random)."""
    g = np.random.default_rng(seed)
    below = (ens < truth[:, None]).sum(1)
    ties = (ens == truth[:, None]).sum(1)
    rank = below + np.floor(g.random(below.shape) * (ties + 1)).astype(int)
    if mask is not None:
        rank = rank[mask > 0]
    return np.bincount(rank.ravel(), minlength=ens.shape[1] + 1)


def rank_flatness(counts: np.ndarray) -> float:
    """Candille & Talagrand (2005) δ = Σ (n_k − N/(M+1))² / (N M / (M+1)): 1 expected for a flat
    histogram of independent ranks (larger for spatially correlated ranks), ≫ 1 when unreliable."""
    n, k = counts.sum(), len(counts)
    return float(((counts - n / k) ** 2).sum() / (n * (k - 1) / k))


def zonal_spectrum(x: np.ndarray, lat: np.ndarray, max_abs_lat: float = 60.0) -> np.ndarray:
    """Mean zonal power ``[W//2 + 1]`` of ``x [..., H, W]`` over rows with |lat| ≤ ``max_abs_lat``."""
    rows = np.abs(np.asarray(lat)) <= max_abs_lat
    f = np.fft.rfft(x[..., rows, :], axis=-1)
    return (np.abs(f) ** 2).reshape(-1, f.shape[-1]).mean(0)


def power_ratio(ens: np.ndarray, truth: np.ndarray, lat: np.ndarray, frac: float = 0.5, floor: float = 1e-5) -> float:
    """Forecast / truth zonal power summed over the smallest resolved scales: the top ``frac`` of
    the wavenumbers at which the truth holds at least ``floor`` of its peak power (a simulator's
    dealiased, hyperviscous tail carries none; ERA5 keeps power to the grid scale). 1 keeps the
    small scales' variance, below 1 blurs them. Summing power (not averaging per-wavenumber ratios)
    keeps a bin in the dissipation tail, holding ~1e-5 of the peak, from deciding the score;
    :func:`power_ratio_by_wavenumber` gives the per-wavenumber ratios."""
    pf, pt = zonal_spectrum(ens, lat), zonal_spectrum(truth, lat)
    sel = small_scale_band(pt, frac, floor)
    return float(pf[sel].sum() / max(pt[sel].sum(), 1e-30))


def small_scale_band(pt: np.ndarray, frac: float = 0.5, floor: float = 1e-5) -> np.ndarray:
    """Boolean mask over wavenumbers ``[W//2 + 1]``: the top ``frac`` of the resolved ones."""
    ks = np.arange(len(pt))
    resolved = ks[(ks >= 1) & (pt > floor * pt[1:].max())]
    kmax = resolved.max() if len(resolved) else len(pt) - 1
    return (ks >= 1) & (ks >= (1 - frac) * kmax) & (ks <= kmax)


def power_ratio_by_wavenumber(ens: np.ndarray, truth: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Forecast / truth zonal power per wavenumber ``[W//2 + 1]``."""
    return zonal_spectrum(ens, lat) / np.clip(zonal_spectrum(truth, lat), 1e-30, None)


def scores(ens: np.ndarray, truth: np.ndarray, lat: np.ndarray, seed: int = 0, mask=None) -> dict[str, float]:
    """Every score of one variable at one lead."""
    w = cell_area_weights(lat)
    out = {"rmse": rmse(ens, truth, w, mask), "crps": crps_fair(ens, truth, w, mask)}
    if ens.shape[1] > 1:
        out["spread_skill"] = spread_skill(ens, truth, w, mask)
        out["rank_flatness"] = rank_flatness(rank_histogram(ens, truth, seed, mask))
    out["power_ratio"] = power_ratio(ens, truth, lat)
    return out


def sample_scores(real, generated, seed: int = 0) -> dict[str, float]:
    """Registered metric: weighted RMSE/MAE between generated and real one-step residuals
    (``Samples.x [N, C, H, W]``), channel-averaged; lat from the grid assuming regular cell centres."""
    n = min(len(real), len(generated))
    a, b = real.x[:n].double().numpy(), generated.x[:n].double().numpy()
    h = a.shape[-2]
    lat = 90.0 - (np.arange(h) + 0.5) * 180.0 / h
    w = cell_area_weights(lat)
    err = (a - b).transpose(1, 0, 2, 3)
    return {"rmse": float(np.mean([np.sqrt(_wmean(e ** 2, w, None)) for e in err])),
            "mae": float(np.mean([_wmean(np.abs(e), w, None) for e in err]))}
