"""Autoregressive ensemble forecasts and writing them as xarray datasets.

:func:`rollout` runs a one-step sampler ``step(prev [B, 2, C, H, W], context [B, K, H, W], seed)
-> increment [B, C, H, W]`` (raw units) for several leads in one call: each lead feeds the new
state back as the last previous state. Members are independent samples (different noise) of the
same initial conditions. :func:`write_forecast` writes ``(init_time, lead_time, member, [level,]
lat, lon)`` variables with the input's coordinate names, order and attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from panflow import DataError, Samples

from .data import context_fields
from .store import to_store

Step = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def flow_step(run_like, opts) -> Step:
    """A step from a :class:`panflow.Run` (or anything with ``objective, model, encoder, device``)."""

    def step(prev: torch.Tensor, ctx: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator(device=run_like.device).manual_seed(seed)
        shape = (prev.shape[0], *prev.shape[2:])
        res = run_like.objective.generate(run_like.model, shape, opts, cond={"prev": prev.to(run_like.device),
                                          "context": ctx.to(run_like.device)}, generator=g, device=run_like.device)
        return run_like.encoder.decode(res.x).cpu()

    return step


@torch.no_grad()
def rollout(step: Step, prev: torch.Tensor, init_times: np.ndarray, static: np.ndarray, lat, lon, leads: int,
            members: int, step_hours: float, seed: int = 0, batch: int = 512) -> np.ndarray:
    """Forecasts ``[I, M, L, C, H, W]`` from ``prev [I, 2, C, H, W]`` (states at init − 1 step and init)."""
    i, _, c, h, w = prev.shape
    state = prev.repeat_interleave(members, 0).float()                       # [I*M, 2, C, H, W]
    times = np.repeat(np.asarray(init_times).astype("datetime64[s]"), members)
    dt = np.timedelta64(int(round(step_hours * 3600)), "s")
    out = np.zeros((i * members, leads, c, h, w), np.float32)
    for lead in range(leads):
        valid = times + (lead + 1) * dt
        ctx = torch.from_numpy(context_fields(static, valid, lat, lon))
        incs = [step(state[s:s + batch], ctx[s:s + batch], seed + 1000 * lead + s) for s in range(0, len(state), batch)]
        new = state[:, 1] + torch.cat(incs)
        out[:, lead] = new.numpy()
        state = torch.stack([state[:, 1], new], 1)
    return out.reshape(i, members, leads, c, h, w)


def forecast_dataset(fc: np.ndarray, init_times, meta: dict[str, Any]):
    """An ``xarray.Dataset`` of forecasts ``fc [I, M, L, C, H, W]`` with the input's coordinates and attributes."""
    import xarray as xr

    names, attrs = meta["names"], meta.get("attrs", {})
    latn, lonn, levn = names["lat"], names["lon"], names.get("level")
    step_h = meta["step_hours"]
    lead = np.arange(1, fc.shape[2] + 1) * step_h
    coords: dict[str, Any] = {
        "init_time": np.asarray(init_times).astype("datetime64[ns]"),
        "lead_time": ("lead_time", (lead * 3600e9).astype("timedelta64[ns]")),
        "member": np.arange(fc.shape[1]),
        latn: (latn, np.asarray(meta["lat"]), attrs.get(latn, {})),
        lonn: (lonn, np.asarray(meta["lon"]), attrs.get(lonn, {}))}
    data: dict[str, Any] = {}
    channels = meta["channels"]
    by_var: dict[str, list[int]] = {}
    for k, ch in enumerate(channels):
        by_var.setdefault(ch["variable"], []).append(k)
    dims = ("init_time", "lead_time", "member")
    for var, ks in by_var.items():
        arr = fc[:, :, :, ks].transpose(0, 2, 1, 3, 4, 5)                        # [I, L, M, n, H, W]
        if channels[ks[0]]["level"] is None:
            data[var] = ((*dims, latn, lonn), arr[:, :, :, 0], attrs.get(var, {}))
        else:
            data[var] = ((*dims, levn, latn, lonn), arr, attrs.get(var, {}))
            coords[levn] = (levn, np.array([channels[k]["level"] for k in ks]), attrs.get(levn, {}))
    ds = xr.Dataset(data, coords=coords, attrs={**attrs.get("global", {}), "panflow_forecast": "ensemble rollout"})
    return ds


def write_forecast(fc: np.ndarray, init_times, meta: dict[str, Any], path: str | Path, zarr_format: int = 3) -> Path:
    """Write forecasts as zarr (``.zarr``) or netCDF (``.nc``); see :func:`forecast_dataset`."""
    return to_store(forecast_dataset(fc, init_times, meta), path, zarr_format)


def write_samples(samples: Samples, out_dir: str | Path, meta: dict | None = None) -> list[Path]:
    """Domain writer: one-step forecasts (last previous state + sampled increment) as ``forecast.zarr``
    with ``init_time`` the sample index (the sample set carries no dates), lead 1, one member."""
    if "prev" not in samples.cond:
        raise DataError("weather samples need their 'prev' condition to be written as states")
    if not meta or "names" not in meta:
        raise DataError("writing weather samples needs the dataset meta recorded in the checkpoint")
    state = (samples.cond["prev"][:, -1] + samples.x).numpy()[:, None, None]
    init = np.datetime64("1970-01-01") + np.arange(len(samples)).astype("timedelta64[D]")
    return [write_forecast(state, init, meta, Path(out_dir) / "forecast.zarr")]
