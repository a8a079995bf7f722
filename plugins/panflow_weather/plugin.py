"""Registers the weather domain, its datasets, the UNet backbone, metrics and benchmark (the MSE
baseline is the core's regression objective). xarray/zarr are imported only when a component is used."""

from __future__ import annotations

import panflow
from panflow import Backbone, Benchmark, ConditionSpec, Dataset, DataSpec, Domain, Metric, lazy

from . import __version__


def _spec(bundle) -> DataSpec:
    c, h, w = bundle.train.x.shape[1:]
    ctx = bundle.train.cond["context"].shape[1]
    return DataSpec("continuous", (c, h, w), conditions=(
        ConditionSpec("prev", "tensor", (2, c, h, w), normalisation="raw states s_{i-2}, s_{i-1}"),
        ConditionSpec("context", "tensor", (ctx, h, w), normalisation="raw static fields and forcings")))


def _store(opts):
    if not opts.path:
        raise panflow.DataError("dataset 'store' needs --data PATH (a zarr or netCDF store in ERA5/WeatherBench 2 layout)")
    return lazy("panflow_weather.data:load_weather")(opts)


def _fits(spec: DataSpec) -> bool:
    return lazy("panflow_weather.backbone:fits")(spec)


def _consumes(cond, spec) -> bool:
    return lazy("panflow_weather.backbone:consumes")(cond, spec)


SMALL = {"train.steps": 6000, "train.batch_size": 16, "train.lr": 1e-3, "train.warmup_steps": 100,
         "train.lr_schedule": "cosine", "train.min_lr_ratio": 0.05, "train.ema_decay": 0.995, "train.grad_clip": 1.0,
         "train.log_every": 250, "data.val_fraction": 0.15, "data.options": {"recipe": "small"},
         "sample.solver": "euler", "sample.nfe": 24}
PRESETS = {
    "smoke": {"train.steps": 2, "train.batch_size": 8, "train.log_every": 1, "data.val_fraction": 0.2,
              "data.options": {"recipe": "smoke"}, "sample.nfe": 2},
    "quick": {**SMALL, "data.options": {"recipe": "quick"}, "train.steps": 500, "train.lr": 2e-3, "train.warmup_steps": 20,
              "train.ema_decay": 0.98,
              "train.log_every": 20, "sample.nfe": 6},  # quick was measured at NFE 6 (small uses 24: spread)
    "small": SMALL,
    "full": {**SMALL, "train.steps": 100_000, "train.batch_size": 64, "train.lr": 3e-4, "train.ema_decay": 0.9999,
             "train.amp": "auto", "train.log_every": 1000, "train.checkpoint_every": 10_000,
             "data.options": {"recipe": "full"}, "sample.nfe": 16},
}
BACKBONE_PRESETS = {"smoke": {"latlon-unet": {"channels": 8, "mults": [1, 2], "num_res": 1}},
                    "quick": {"latlon-unet": {"channels": 8, "mults": [1, 2, 2], "num_res": 1}},
                    "small": {"latlon-unet": {"channels": 16, "mults": [1, 2, 2], "num_res": 1}},
                    "full": {"latlon-unet": {"channels": 128, "mults": [1, 2, 2, 4], "num_res": 2}}}


class WeatherPlugin:
    PANFLOW_HOOK_API = 1
    REQUIRES = {"xarray": "weather", "zarr": "weather", "netCDF4": "weather"}
    __version__ = __version__

    @panflow.hookimpl
    def panflow_register(self, registry) -> None:
        registry.add_domain(Domain(
            name="weather", description="probabilistic forecasts on lat-lon grids (zarr/netCDF, ERA5/WB2 layout)",
            default_dataset="barotropic", default_backbone="latlon-unet", data_spec=_spec,
            make_encoder=lazy("panflow_weather.encoder:make_encoder"),
            load_encoder=lazy("panflow_weather.encoder:load_encoder"),
            write_samples=lazy("panflow_weather.rollout:write_samples"), evaluate=lazy("panflow_weather.evaluate:evaluate"),
            presets=PRESETS,
            backbone_presets=BACKBONE_PRESETS, metrics=("rmse", "crps", "spread_skill", "rank_flatness", "power_ratio")))
        registry.add_dataset(Dataset("barotropic", "weather", lazy("panflow_weather.data:load_weather"),
                                     "embedded simulator: stochastic barotropic channel + heated tracer (offline)"))
        registry.add_dataset(Dataset("store", "weather", _store, "your zarr (v2/v3) or netCDF store, ERA5/WB2 naming"))
        registry.add_backbone(Backbone("latlon-unet", lazy("panflow_weather.backbone:build_unet"), ("continuous",), _fits,
                                       "lat-lon UNet: circular longitude, over-the-pole padding, conditions concatenated",
                                       consumes=_consumes))
        registry.add_metric(Metric("weather_scores", "weather", lazy("panflow_weather.metrics:sample_scores"),
                                   description="latitude-weighted RMSE and MAE of generated vs real next states"))
        registry.add_benchmark(Benchmark("weather", "weather", lazy("panflow_weather.benchmark:run_benchmark"),
                                         "GenCast-style ensembles vs persistence, climatology, MSE model, oracle",
                                         headline=("z500.crps", "24h"), presets=("smoke", "quick", "small", "full"),
                                         previews=lazy("panflow_weather.previews:previews")))


plugin = WeatherPlugin()
