"""Registers the robot domain: datasets, chunk backbones, metrics, benchmark (the baseline is the core's regression objective)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import panflow
from panflow import Backbone, Benchmark, ConditionSpec, Dataset, DataSpec, Domain, Metric, Samples, lazy

from . import __version__
from .encoder import ChunkEncoder


def data_spec(bundle) -> DataSpec:
    """``x [pred_h, act_dim]`` with per-step time; the condition ``obs [obs_h, obs_dim]``."""
    pred, act = bundle.train.x.shape[1:]
    obs = tuple(bundle.train.cond["obs"].shape[1:])
    return DataSpec("continuous", (pred, act), time_shape=(pred,),
                    conditions=(ConditionSpec("obs", "tensor", obs, normalisation="minmax[-1,1] (encoder config)"),))


def write_chunks(samples: Samples, out_dir: str | Path, meta: dict | None = None) -> list[Path]:
    """Write generated chunks as ``chunks.npz`` (``actions [N, pred_h, act_dim]``, and ``obs`` if given)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "chunks.npz"
    arrays = {"actions": samples.x.numpy()}
    if "obs" in samples.cond:
        arrays["obs"] = samples.cond["obs"].numpy()
    np.savez(path, **arrays)
    return [path]


def _chunk_error(real: Samples, gen: Samples, seed: int = 0) -> dict[str, float]:
    """Mean squared error between chunks (raw units), for paired real/generated sets."""
    n = min(len(real), len(gen))
    return {"chunk_mse": float(((real.x[:n].double() - gen.x[:n].double()) ** 2).mean())}


SMALL_UNET = {"dims": [32, 64], "cond_dim": 64}
PRESETS = {
    "smoke": {"train.steps": 30, "train.batch_size": 64, "train.log_every": 10, "train.device": "cpu",
              "data.options": {"episodes": 24}, "sample.nfe": 4},
    "quick": {"train.steps": 500, "train.batch_size": 128, "train.lr": 1e-3, "train.optimizer": "adamw",
              "train.weight_decay": 1e-6, "train.warmup_steps": 50, "train.lr_schedule": "cosine",
              "train.min_lr_ratio": 0.05, "train.ema_decay": 0.99, "train.log_every": 50, "sample.nfe": 4},
    "small": {"train.steps": 3000, "train.batch_size": 128, "train.lr": 1e-3, "train.optimizer": "adamw",
              "train.weight_decay": 1e-6, "train.warmup_steps": 200, "train.lr_schedule": "cosine",
              "train.min_lr_ratio": 0.05, "train.ema_decay": 0.995, "train.log_every": 250, "sample.nfe": 4},
    "full": {"train.steps": 100_000, "train.batch_size": 256, "train.lr": 1e-4, "train.optimizer": "adamw",
             "train.weight_decay": 1e-6, "train.warmup_steps": 500, "train.lr_schedule": "cosine",
             "train.ema_decay": 0.9999, "train.log_every": 1000, "sample.nfe": 4, "data.options": {"episodes": 1000}},
}
BACKBONE_PRESETS = {
    "smoke": {"chunk-unet": {"dims": [16, 32], "cond_dim": 32}, "chunk-transformer": {"dim": 32, "depth": 1, "heads": 2}},
    "quick": {"chunk-unet": SMALL_UNET, "chunk-transformer": {"dim": 64, "depth": 2, "heads": 4}},
    "small": {"chunk-unet": SMALL_UNET, "chunk-transformer": {"dim": 64, "depth": 2, "heads": 4}},
    "full": {"chunk-unet": {"dims": [256, 512, 1024], "cond_dim": 256},
             "chunk-transformer": {"dim": 256, "depth": 8, "heads": 8}},
}


class RobotPlugin:
    PANFLOW_HOOK_API = 1
    REQUIRES = {"h5py": "robot", "zarr": "robot"}
    __version__ = __version__

    @panflow.hookimpl
    def panflow_register(self, registry) -> None:
        registry.add_domain(Domain(
            name="robot", description="action-chunk policies conditioned on observation history (Diffusion Policy recipe)",
            default_dataset="pointmass", default_backbone="chunk-unet", data_spec=data_spec,
            make_encoder=lambda cfg: ChunkEncoder(), load_encoder=ChunkEncoder.from_config,
            write_samples=write_chunks, evaluate=lazy("panflow_robot.evaluate:evaluate"), presets=PRESETS,
            backbone_presets=BACKBONE_PRESETS, metrics=("chunk_mse",),
            known="committed", known_options={"overlap": 2, "p_none": 0.2}))
        registry.add_dataset(Dataset("pointmass", "robot", lazy("panflow_robot.data:load_demos"),
                                     "embedded 2-D point mass passing an obstacle left or right (bimodal expert); "
                                     "--data PATH reads a zarr replay buffer, robomimic HDF5 or LeRobot folder"))
        per_step = dict(kinds=("continuous",), consumes=lambda c, spec: c.kind == "tensor", per_element_time=True)
        registry.add_backbone(Backbone("chunk-unet", lazy("panflow_robot.backbones:build_unet"),
                                       accepts=lazy("panflow_robot.backbones:fits_chunks"),
                                       description="1-D temporal conv UNet with FiLM on time + observations "
                                                   "(Diffusion Policy CNN)", **per_step))
        registry.add_backbone(Backbone("chunk-transformer", lazy("panflow_robot.backbones:build_transformer"),
                                       accepts=lazy("panflow_robot.backbones:fits_chunks"),
                                       description="adaLN transformer over action steps (core AdaLNBlock)", **per_step))
        registry.add_metric(Metric("chunk_mse", "robot", _chunk_error, description="paired chunk MSE (raw units)"))
        registry.add_benchmark(Benchmark("robot", "robot", lazy("panflow_robot.benchmark:run_benchmark"),
                                         "closed-loop flow policy vs MSE baseline vs expert; NFE sweep; overlap jerk",
                                         headline=("success",), headline_higher=True, presets=("smoke", "quick", "small", "full"),
                                         previews=lazy("panflow_robot.previews:previews")))
        if _has("gymnasium") and _has("mujoco"):
            registry.add_dataset(Dataset("reacher", "robot", lazy("panflow_robot.reacher:load_reacher"),
                                         "MuJoCo Reacher-v5 (gymnasium) with an elbow-up/elbow-down expert"))


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


plugin = RobotPlugin()
