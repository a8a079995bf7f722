"""Registers the toy2d domain, its datasets, the MLP backbone, metrics and benchmark."""

from __future__ import annotations

import functools
from pathlib import Path

import panflow
from panflow import Backbone, Benchmark, ConditionSpec, Dataset, DataSpec, Domain, Encoder, Metric, Samples, lazy

from . import __version__


def _spec(bundle) -> DataSpec:
    conds = tuple(ConditionSpec.from_json(c) for c in bundle.meta.get("conditions", []))
    return DataSpec("continuous", tuple(bundle.train.x.shape[1:]), conditions=conds,
                    time_shape=tuple(bundle.meta.get("time_shape", ())))


def write_csv(samples: Samples, out_dir: str | Path, meta: dict | None = None) -> list[Path]:
    """Write points as ``samples.csv`` (columns x, y)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "samples.csv"
    rows = ["x,y"] + [f"{a:.6f},{b:.6f}" for a, b in samples.x.reshape(len(samples), -1)[:, :2].tolist()]
    path.write_text("\n".join(rows) + "\n")
    return [path]


def _w2(real: Samples, gen: Samples, seed: int = 0) -> dict[str, float]:
    n = min(len(real), len(gen))
    return {"w2": lazy("panflow_toy2d.metrics:wasserstein2")(real.x[:n], gen.x[:n])}


PRESETS = {
    "smoke": {"train.steps": 30, "train.batch_size": 128, "train.log_every": 10, "data.options": {"n_train": 2000, "n_val": 500}},
    "quick": {"train.steps": 1500, "train.batch_size": 512, "train.lr": 1e-3, "train.optimizer": "adam",
              "train.log_every": 100},
    "small": {"train.steps": 5000, "train.batch_size": 1024, "train.lr": 1e-3, "train.optimizer": "adam",
              "train.log_every": 250},
    "full": {"train.steps": 20000, "train.batch_size": 4096, "train.lr": 1e-3, "train.optimizer": "adam",
             "train.warmup_steps": 500, "train.lr_schedule": "cosine", "train.log_every": 500},
}


class Toy2DPlugin:
    PANFLOW_HOOK_API = 1
    REQUIRES = {"ot": "toy2d", "scipy": "toy2d"}
    __version__ = __version__

    @panflow.hookimpl
    def panflow_register(self, registry) -> None:
        registry.add_domain(Domain(
            name="toy2d", description="2-D densities with known ground truth (engine reference)",
            default_dataset="8gaussians", default_backbone="mlp", data_spec=_spec,
            make_encoder=lambda cfg: Encoder(), load_encoder=lambda cfg, tensors: Encoder(),
            write_samples=write_csv, evaluate=lazy("panflow_toy2d.evaluate:evaluate"), presets=PRESETS,
            metrics=("w2", "nll", "kl", "mode_coverage")))
        for name, desc in [("8gaussians", "8 Gaussians on a circle of radius 2 (exact density)"),
                           ("moons", "two interleaved half circles with noise"),
                           ("checkerboard", "uniform on 8 squares of a 4x4 board (exact density)"),
                           ("gmm", "5 anisotropic Gaussians, unequal weights (exact density)")]:
            registry.add_dataset(Dataset(name, "toy2d", functools.partial(lazy("panflow_toy2d.data:load_toy"), name), desc))
        for name, desc in [("cond_ring", "x | c ~ N(2c, 0.2² I) for a context c on the unit circle (exact conditional)"),
                           ("gauss2", "correlated 2-D Gaussian with per-coordinate time, for inpainting b | a")]:
            registry.add_dataset(Dataset(name, "toy2d", functools.partial(lazy("panflow_toy2d.conditional:load_conditional"),
                                                                          name), desc))
        registry.add_backbone(Backbone("mlp", lazy("panflow_toy2d.backbones:build_mlp"), ("continuous",),
                                       accepts=lambda spec: len(spec.shape) == 1 and spec.shape[0] <= 64,
                                       description="MLP with sinusoidal time features (flat vectors)",
                                       consumes=lambda cond, spec: True, per_element_time=True))
        registry.add_metric(Metric("w2", "toy2d", _w2, description="exact 2-Wasserstein (EMD)"))
        registry.add_benchmark(Benchmark("toy2d", "toy2d", lazy("panflow_toy2d.benchmark:run_benchmark"),
                                         "solvers x NFE on 4 toy densities; Trainer vs bare loop", headline=("w2", "8gaussians"),
                                         presets=("smoke", "quick", "small", "full"),
                                         previews=lazy("panflow_toy2d.previews:previews")))


plugin = Toy2DPlugin()
