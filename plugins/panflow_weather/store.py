"""Reading and writing xarray stores (zarr v2/v3, netCDF) in the ERA5 / WeatherBench 2 layout.

:func:`read_store` validates a store and loads the selected variables and levels into memory as
``fields [T, C, H, W]`` (float32) with their coordinates. Only the selected variables and time
range are read (zarr chunks are read through xarray's lazy backend arrays, without dask), but
the selection must fit in memory: about 4 × T × C × H × W × 4 bytes once samples are built.
Every problem is a one-line :class:`panflow.DataError` naming the file.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from panflow import DataError

LAT_NAMES, LON_NAMES, LEVEL_NAMES = ("latitude", "lat"), ("longitude", "lon"), ("level", "pressure_level", "plev")
STATIC_DEFAULT = ("land_sea_mask", "geopotential_at_surface")
SHORT = {"geopotential": "z", "temperature": "t", "2m_temperature": "t2m", "u_component_of_wind": "u",
         "v_component_of_wind": "v", "specific_humidity": "q", "mean_sea_level_pressure": "msl",
         "10m_u_component_of_wind": "u10", "10m_v_component_of_wind": "v10"}


@dataclass
class Fields:
    """A validated selection: ``data [T, C, H, W]``, ``mask [T, C, H, W]`` (1 = real) or None,
    ``static [S, H, W]``, coordinates as in the file and what is needed to write forecasts back."""

    data: np.ndarray
    mask: np.ndarray | None
    static: np.ndarray
    times: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    channels: list[dict[str, Any]]      # [{"variable", "level" or None, "name", "short"}]
    static_names: list[str]
    names: dict[str, str]               # canonical -> name in the file (lat, lon, level)
    attrs: dict[str, Any] = field(default_factory=dict)   # {"global": {...}, var: {...}, coord: {...}}
    source: str = ""


def open_dataset(path: str | Path):
    """Open a zarr (v2 or v3) or netCDF store lazily; a one-line error names the file."""
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise DataError(f"weather data {p} does not exist")
    try:
        if p.is_dir() or p.suffix == ".zarr":
            with warnings.catch_warnings():  # v3 stores carry no consolidated metadata; that is fine
                warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated")
                return xr.open_zarr(p, chunks=None, decode_timedelta=False)
        return xr.open_dataset(p, chunks=None, decode_timedelta=False)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one line naming the file
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot open {p} as a zarr or netCDF store: {msg}") from exc


def _coord(ds, names: tuple[str, ...], what: str, src: str) -> str:
    for n in names:
        if n in ds.coords or n in ds.dims:
            return n
    raise DataError(f"{src}: no {what} coordinate (looked for {', '.join(names)}); found {sorted(ds.coords) or 'none'}")


def _monotonic(v: np.ndarray, name: str, src: str, allow_descending: bool) -> None:
    d = np.diff(v.astype(np.float64) if v.dtype.kind != "M" else v.astype("datetime64[s]").astype(np.int64))
    if len(v) < 2:
        raise DataError(f"{src}: coordinate '{name}' has {len(v)} value(s); need at least 2")
    if not (np.all(d > 0) or (allow_descending and np.all(d < 0))):
        order = "strictly increasing or decreasing" if allow_descending else "strictly increasing"
        raise DataError(f"{src}: coordinate '{name}' is not {order}")


def _closest(name: str, options: list[str]) -> str:
    near = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def _dates(ds, tname: str, src: str) -> np.ndarray:
    """The time coordinate as ``datetime64[s]``; non-standard calendars (decoded by xarray to
    cftime) are mapped to real dates where they can be (noleap, all_leap, julian, ...)."""
    times = ds[tname].values
    if times.dtype.kind == "M":
        return times.astype("datetime64[s]")
    if not times.size or not hasattr(times.flat[0], "calendar"):
        raise DataError(f"{src}: time coordinate is not decoded as dates (dtype {times.dtype}); give it CF 'units'")
    try:
        return np.asarray(ds.indexes[tname].to_datetimeindex(time_unit="s").values).astype("datetime64[s]")
    except Exception as exc:  # noqa: BLE001 - e.g. 360_day dates such as 30 February
        raise DataError(f"{src}: calendar '{times.flat[0].calendar}' has dates that are not real dates "
                        f"({str(exc).splitlines()[0]}); the solar forcings need real dates") from exc


def read_store(path: str | Path, variables: list[str] | None = None, levels: list[float] | None = None,
               static: list[str] | None = None, nan: str = "mask", time_range: list[str] | None = None) -> Fields:
    """Validate and load ``variables`` (default: every variable with time, lat and lon) at ``levels``.

    ``nan="mask"`` replaces NaN cells by the variable's mean and returns a mask (with a warning);
    ``nan="error"`` refuses them. ``time_range=[start, end]`` (ISO dates) restricts the times read.
    """
    src = str(path)
    if nan not in ("mask", "error"):
        raise DataError(f"data option nan must be 'mask' or 'error', not {nan!r}")
    ds = open_dataset(path)
    tname = _coord(ds, ("time",), "time", src)
    latn, lonn = _coord(ds, LAT_NAMES, "latitude", src), _coord(ds, LON_NAMES, "longitude", src)
    levn = next((n for n in LEVEL_NAMES if n in ds.coords or n in ds.dims), None)
    if time_range:
        ds = ds.sel({tname: slice(*time_range)})
    times = _dates(ds, tname, src)
    lat, lon = ds[latn].values.astype(np.float64), ds[lonn].values.astype(np.float64)
    _monotonic(times, tname, src, False)
    _monotonic(lat, latn, src, True)
    _monotonic(lon, lonn, src, False)
    dl = np.diff(lon)
    if not np.allclose(dl, dl[0], rtol=1e-4) or not np.isclose(lon[-1] - lon[0] + dl[0], 360.0, atol=1e-3):
        raise DataError(f"{src}: longitude must be a global, evenly spaced grid (periodic); got {len(lon)} values "
                        f"from {lon[0]:g} to {lon[-1]:g}")
    if np.abs(lat).max() > 90.0 + 1e-6:
        raise DataError(f"{src}: latitudes must lie in [-90, 90]")
    grid = {tname, latn, lonn}
    # sorted: zarr v3 may list a group's members in a different order on every open
    candidates = sorted(str(v) for v in ds.data_vars if {tname, latn, lonn} <= set(ds[v].dims))
    variables = list(variables) if variables else candidates
    if not variables:
        raise DataError(f"{src}: no variable has dimensions ({tname}, {latn}, {lonn}); variables: {sorted(ds.data_vars)}")
    names = {"time": tname, "lat": latn, "lon": lonn, "level": levn}
    attrs: dict[str, Any] = {"global": dict(ds.attrs), latn: dict(ds[latn].attrs), lonn: dict(ds[lonn].attrs)}
    channels, arrays = [], []
    for v in variables:
        if v not in ds.data_vars:
            avail = sorted(str(k) for k in ds.data_vars)
            raise DataError(f"{src}: variable '{v}' is absent{_closest(v, avail)}; available: {', '.join(avail)}")
        da = ds[v]
        dims = set(da.dims)
        extra = dims - grid - ({levn} if levn else set())
        if not {tname, latn, lonn} <= dims or extra:
            raise DataError(f"{src}: variable '{v}' has dimensions {tuple(da.dims)}, not ({tname}, [level,] {latn}, "
                            f"{lonn}): its grid differs from the other variables")
        attrs[v] = dict(da.attrs)
        if levn and levn in dims:
            avail_l = [float(x) for x in ds[levn].values]
            want = [float(x) for x in levels] if levels else avail_l
            for lv in want:
                if lv not in avail_l:
                    raise DataError(f"{src}: variable '{v}' has no level {lv:g}; levels: {', '.join(f'{x:g}' for x in avail_l)}")
            for lv in want:
                arrays.append(da.sel({levn: lv}).transpose(tname, latn, lonn).values.astype(np.float32))
                channels.append({"variable": v, "level": lv, "name": f"{v}_{lv:g}", "short": f"{SHORT.get(v, v)}{lv:g}"})
            attrs[levn] = dict(ds[levn].attrs)
        else:
            arrays.append(da.transpose(tname, latn, lonn).values.astype(np.float32))
            channels.append({"variable": v, "level": None, "name": v, "short": SHORT.get(v, v)})
    data = np.stack(arrays, axis=1)
    mask = None
    bad = ~np.isfinite(data)
    if bad.any():
        where = [c["name"] for c, b in zip(channels, bad.any(axis=(0, 2, 3))) if b]
        if nan == "error":
            raise DataError(f"{src}: {int(bad.sum())} NaN/inf cells in {', '.join(where)} (set data.options.nan='mask' "
                            "to mask them in loss and metrics)")
        warnings.warn(f"{src}: masking {int(bad.sum())} NaN/inf cells in {', '.join(where)} (excluded from loss and "
                      "metrics, filled with the variable's mean as input)", stacklevel=2)
        mean = np.nanmean(np.where(bad, np.nan, data), axis=(0, 2, 3), keepdims=True)
        data = np.where(bad, np.broadcast_to(mean, data.shape), data).astype(np.float32)
        mask = (~bad).astype(np.float32)
    snames = [s for s in (static if static is not None else STATIC_DEFAULT) if s in ds.data_vars or static is not None]
    stat = []
    for s in snames:
        if s not in ds.data_vars:
            avail = sorted(str(k) for k in ds.data_vars)
            raise DataError(f"{src}: static field '{s}' is absent{_closest(s, avail)}; available: {', '.join(avail)}")
        da = ds[s]
        if tname in da.dims:
            da = da.isel({tname: 0})
        if set(da.dims) != {latn, lonn}:
            raise DataError(f"{src}: static field '{s}' has dimensions {tuple(da.dims)}, not ({latn}, {lonn})")
        a = da.transpose(latn, lonn).values.astype(np.float32)
        if not np.isfinite(a).all():
            raise DataError(f"{src}: static field '{s}' has NaN cells")
        stat.append(a)
        attrs[s] = dict(da.attrs)
    static_arr = np.stack(stat) if stat else np.zeros((0, len(lat), len(lon)), np.float32)
    return Fields(data, mask, static_arr, np.asarray(times), lat, lon, channels, snames, names, attrs, src)


def to_store(ds, path: str | Path, zarr_format: int = 3) -> Path:
    """Write an ``xarray.Dataset`` as zarr (``.zarr``, v2 or v3) or netCDF (``.nc``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".nc":
        ds.to_netcdf(p)
    else:
        ds.to_zarr(p, mode="w", zarr_format=zarr_format, consolidated=zarr_format == 2)
    return p
