"""Weather datasets: the embedded simulator store and the user's own stores, as forecast samples.

A sample is one forecast step: ``x [C, H, W]`` is the increment ``s_{i} − s_{i−1}`` of the state
(the GenCast residual, in physical units); its conditions are ``prev [2, C, H, W]`` (the states
``s_{i−2}, s_{i−1}``) and ``context [K, H, W]`` (static fields, then the forcings at the target
time: top-of-atmosphere radiation and cos/sin of time of day and of year). Samples are split
in time: the last ``val_fraction`` of the record is validation (two samples are dropped between
the parts so no state is shared).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

import panflow
from panflow import DataBundle, DataError, DatasetOptions, Samples

from .forcings import SOLAR_CONSTANT, time_features, toa_radiation
from .simulator import Recipe, simulate
from .store import Fields, open_dataset, read_store, to_store

FORCING_NAMES = ["toa_incident_solar_radiation", "cos_time_of_day", "sin_time_of_day", "cos_time_of_year",
                 "sin_time_of_year"]
RECIPES = {"smoke": Recipe(nlat=16, nlon=32, n_times=60, spinup=20, substeps=2, oracle_inits=2, oracle_members=3,
                            oracle_leads=2),
           # quick: the README's first run, on the record small used until it doubled (cached separately)
           "quick": Recipe(nlat=16, nlon=32),
           # small: 5,000 states (4,246 training pairs): at 2,500 the 6,000-step model narrowed onto its 2,121
           # pairs (z500 48 h spread/skill 0.79) and at 5,000 it does not (0.84); see docs/benchmarks.md
           "small": Recipe(nlat=16, nlon=32, n_times=5000),
           "full": Recipe(nlat=32, nlon=64, n_times=20_000, oracle_members=32, oracle_leads=20)}


def cache_dir() -> Path:
    return panflow.cache_dir("weather")


def embedded_store(recipe: Recipe | str = "small", zarr_format: int = 3) -> Path:
    """The simulator store for ``recipe`` (generated once, cached under its hash, with the recipe as attrs)."""
    r = RECIPES[recipe] if isinstance(recipe, str) else recipe
    path = cache_dir() / f"barotropic-{r.key()}.zarr"
    done = path.with_suffix(".complete")
    if done.exists():
        return path
    import xarray as xr

    d = simulate(r)
    coords = {"time": d["times"].astype("datetime64[ns]"), "latitude": d["lat"], "longitude": d["lon"]}
    attrs_z = {"units": "m**2 s**-2", "long_name": "Geopotential"}
    attrs_t = {"units": "K", "long_name": "2 metre temperature (simulated tracer)"}
    ds = xr.Dataset({
        "geopotential": (("time", "level", "latitude", "longitude"), d["geopotential"][:, None].astype(np.float32), attrs_z),
        "2m_temperature": (("time", "latitude", "longitude"), d["2m_temperature"].astype(np.float32), attrs_t),
        "land_sea_mask": (("latitude", "longitude"), d["land_sea_mask"].astype(np.float32), {"units": "1"}),
        "geopotential_at_surface": (("latitude", "longitude"), d["geopotential_at_surface"].astype(np.float32),
                                    {"units": "m**2 s**-2"}),
    }, coords={**coords, "level": ("level", np.array([500], np.int64), {"units": "hPa"})},
        attrs={"title": "panflow barotropic channel simulator", "recipe": str(dataclasses.asdict(r)),
               "recipe_key": r.key(), "geometry": "beta-plane channel, periodic in longitude, walls at the poles"})
    ds["latitude"].attrs = {"units": "degrees_north"}
    ds["longitude"].attrs = {"units": "degrees_east"}
    lead = np.arange(1, r.oracle_leads + 1)
    oracle = xr.Dataset({
        f"oracle_{v}": (("init_time", "member", "lead_time", "latitude", "longitude"), d[f"oracle_{v}"].astype(np.float32))
        for v in ("geopotential", "2m_temperature")},
        coords={"init_time": coords["time"][d["oracle_init_index"]], "member": np.arange(r.oracle_members),
                "lead_time": ("lead_time", lead * int(r.step_days * 24), {"units": "hours"}),
                "latitude": d["lat"], "longitude": d["lon"]})
    to_store(ds, path, zarr_format)
    to_store(oracle, path.with_name(path.stem + "-oracle.zarr"), zarr_format)
    done.write_text(r.key())
    return path


def load_oracle(store: Path) -> Any:
    return open_dataset(store.with_name(store.stem + "-oracle.zarr")).load()


def context_fields(static: np.ndarray, times: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``[T, K, H, W]``: static fields then forcings at ``times`` (K = S + 5)."""
    t = len(times)
    toa = toa_radiation(np.asarray(times).astype("datetime64[s]"), lat, lon)[:, None] / SOLAR_CONSTANT
    feats = np.broadcast_to(time_features(np.asarray(times).astype("datetime64[s]"))[:, :, None, None],
                            (t, 4, len(lat), len(lon)))
    stat = np.broadcast_to(static[None], (t, *static.shape))
    return np.concatenate([stat, toa, feats], axis=1).astype(np.float32)


def build_samples(f: Fields, idx: np.ndarray) -> Samples:
    """Forecast samples whose target is time index ``idx`` (each ≥ 2)."""
    data = torch.from_numpy(f.data)
    i = torch.as_tensor(idx)
    x = data[i] - data[i - 1]
    prev = torch.stack([data[i - 2], data[i - 1]], 1)
    ctx = torch.from_numpy(context_fields(f.static, f.times[idx], f.lat, f.lon))
    mask = None
    if f.mask is not None:
        m = torch.from_numpy(f.mask)
        mask = m[i] * m[i - 1] * m[i - 2]
    return Samples(x, mask=mask, cond={"prev": prev, "context": ctx})


def read_options(opts: DatasetOptions) -> dict[str, Any]:
    known = {"variables", "levels", "static", "nan", "time_range", "recipe"}
    bad = set(opts.options) - known
    if bad:
        raise DataError(f"unknown weather data option(s) {sorted(bad)}; known: {sorted(known)}")
    return dict(opts.options)


def load_fields(opts: DatasetOptions) -> Fields:
    o = read_options(opts)
    path = Path(opts.path) if opts.path else embedded_store(o.get("recipe", "small"))
    return read_store(path, o.get("variables"), o.get("levels"), o.get("static"), o.get("nan", "mask"),
                      o.get("time_range"))


def split_indices(n_times: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(2, n_times)
    n_val = max(1, int(round(len(idx) * val_fraction)))
    if len(idx) - n_val - 2 < 1:
        raise DataError(f"{n_times} time steps are too few to split into training and validation forecasts")
    return idx[: len(idx) - n_val - 2], idx[len(idx) - n_val:]


def fields_meta(f: Fields) -> dict[str, Any]:
    step_h = float((f.times[1] - f.times[0]) / np.timedelta64(1, "h"))
    return {"source": f.source, "channels": f.channels, "static": f.static_names, "forcings": FORCING_NAMES,
            "lat": [float(v) for v in f.lat], "lon": [float(v) for v in f.lon], "names": f.names,
            "step_hours": step_h, "n_times": int(len(f.times)), "attrs": _jsonable(f.attrs),
            "time_start": str(f.times[0]), "time_end": str(f.times[-1])}


def _jsonable(a: Any) -> Any:
    if isinstance(a, dict):
        return {str(k): _jsonable(v) for k, v in a.items()}
    if isinstance(a, (list, tuple)):
        return [_jsonable(v) for v in a]
    if isinstance(a, (np.integer, np.floating)):
        return a.item()
    return a if isinstance(a, (str, int, float, bool, type(None))) else str(a)


def load_weather(opts: DatasetOptions) -> DataBundle:
    """The default simulator store (``data.options.recipe``: smoke | small | full) or ``--data STORE``."""
    f = load_fields(opts)
    tr, va = split_indices(len(f.times), opts.val_fraction)
    return DataBundle(build_samples(f, tr), build_samples(f, va), fields_meta(f))
