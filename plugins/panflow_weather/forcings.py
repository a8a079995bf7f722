"""Forcings computed from the date, and latitude cell-area weights.

- :func:`toa_radiation` ``[T, H, W]``: instantaneous top-of-atmosphere incident solar flux (W m⁻²)
  from the solar declination and hour angle (Spencer 1971 declination, mean solar time);
- :func:`time_features` ``[T, 4]``: cos/sin of the time of day and of the time of year;
- :func:`cell_area_weights` ``[H]``: cell area of each latitude row, normalised to mean 1
  (the WeatherBench 2 weighting, Rasp et al. 2024).
"""

from __future__ import annotations

import numpy as np

SOLAR_CONSTANT = 1361.0  # W m-2 (Kopp & Lean 2011)


def _day_and_hour(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Day of year (0-based, fractional) and UTC hour of ``datetime64`` times."""
    t = np.asarray(times).astype("datetime64[s]")
    year0 = t.astype("datetime64[Y]").astype("datetime64[s]")
    sec = (t - year0).astype(np.float64)
    return sec / 86400.0, (sec % 86400.0) / 3600.0


def toa_radiation(times: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Incident solar flux at the top of the atmosphere ``[T, H, W]`` (W m⁻², ≥ 0)."""
    day, hour = _day_and_hour(times)
    g = 2 * np.pi * day / 365.25
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))
    dist = 1.000110 + 0.034221 * np.cos(g) + 0.001280 * np.sin(g) + 0.000719 * np.cos(2 * g) + 0.000077 * np.sin(2 * g)
    phi = np.deg2rad(np.asarray(lat, np.float64))[None, :, None]
    hang = np.deg2rad((hour[:, None, None] - 12.0) * 15.0 + np.asarray(lon, np.float64)[None, None, :])
    cosz = np.sin(phi) * np.sin(decl)[:, None, None] + np.cos(phi) * np.cos(decl)[:, None, None] * np.cos(hang)
    return SOLAR_CONSTANT * dist[:, None, None] * np.clip(cosz, 0.0, None)


def time_features(times: np.ndarray) -> np.ndarray:
    """``[T, 4]``: cos, sin of the time of day and of the time of year."""
    day, hour = _day_and_hour(times)
    a, b = 2 * np.pi * hour / 24.0, 2 * np.pi * day / 365.25
    return np.stack([np.cos(a), np.sin(a), np.cos(b), np.sin(b)], axis=1)


def cell_area_weights(lat: np.ndarray) -> np.ndarray:
    """Area of each latitude row's cells ``[H]`` (any order, equal or unequal spacing), mean 1.

    Cell edges are the midpoints between rows, clipped to ±90°, so a grid that includes the
    poles gives their rows the small polar-cap area.
    """
    lat = np.asarray(lat, np.float64)
    order = np.argsort(lat)
    s = lat[order]
    edges = np.concatenate([[-90.0], (s[1:] + s[:-1]) / 2, [90.0]]) if len(s) > 1 else np.array([-90.0, 90.0])
    area = np.sin(np.deg2rad(edges[1:])) - np.sin(np.deg2rad(edges[:-1]))
    out = np.empty_like(area)
    out[order] = area
    return out / out.mean()
