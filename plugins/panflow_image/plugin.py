"""Registers the image domain, its datasets, the UNet and DiT backbones, metrics and benchmark.

Heavy modules (PIL, scikit-learn, the backbones) are imported only when a component is used.
"""

from __future__ import annotations

import panflow
from panflow import Backbone, Benchmark, Dataset, DataSpec, Domain, Metric, lazy

from . import __version__


def _spec(bundle) -> DataSpec:
    y = bundle.train.y
    k = int(max(int(y.max()), int(bundle.val.y.max()) if bundle.val.y is not None else 0) + 1) if y is not None else 0
    return DataSpec("continuous", tuple(bundle.train.x.shape[1:]), num_classes=k)


def _files(opts):
    if not opts.path:
        raise panflow.DataError("dataset 'files' needs --data PATH (a folder of images, IDX or NPZ file)")
    return lazy("panflow_image.data:load_path")(opts)


def _image_shaped(spec: DataSpec) -> bool:
    return len(spec.shape) == 3 and spec.shape[1] >= 4 and spec.shape[2] >= 4


SMALL_TRAIN = {"train.steps": 2500, "train.batch_size": 128, "train.lr": 1e-3, "train.warmup_steps": 200,
               "train.lr_schedule": "cosine", "train.min_lr_ratio": 0.1, "train.ema_decay": 0.999,
               "train.grad_clip": 1.0, "train.log_every": 100, "data.val_fraction": 0.3,
               "flow.label_dropout": 0.1, "sample.solver": "heun", "sample.nfe": 32}
PRESETS = {
    "smoke": {"train.steps": 3, "train.batch_size": 16, "train.log_every": 1, "data.val_fraction": 0.3,
              "sample.nfe": 2},
    "quick": {**SMALL_TRAIN, "train.steps": 1000, "train.batch_size": 64, "train.lr": 2e-3, "train.warmup_steps": 50,
              "train.ema_decay": 0.99, "train.log_every": 50, "sample.nfe": 8},
    "small": SMALL_TRAIN,
    "full": {"train.steps": 200_000, "train.batch_size": 256, "train.lr": 2e-4, "train.warmup_steps": 1000,
             "train.ema_decay": 0.9999, "train.compile": True, "train.amp": "auto", "train.log_every": 1000,
             "train.checkpoint_every": 10_000, "data.options": {"resolution": 32}, "data.val_fraction": 0.1,
             "flow.time_sampler": "logit_normal", "sample.solver": "heun", "sample.nfe": 32},
}
BACKBONE_PRESETS = {
    "smoke": {"unet": {"channels": 16, "num_res": 1}, "dit": {"dim": 32, "depth": 1, "heads": 2}},
    "quick": {"unet": {"channels": 16, "num_res": 1}, "dit": {"dim": 64, "depth": 2, "heads": 4}},
    "small": {"unet": {"channels": 32, "num_res": 1}, "dit": {"dim": 128, "depth": 4, "heads": 4}},
    "full": {"unet": {"channels": 128, "mults": [1, 2, 2, 2], "num_res": 2, "attn_resolutions": [16, 8]},
             "dit": {"patch": 2, "dim": 384, "depth": 12, "heads": 6}},
}


class ImagePlugin:
    PANFLOW_HOOK_API = 1
    REQUIRES = {"PIL": "image", "sklearn": "image"}
    __version__ = __version__

    @panflow.hookimpl
    def panflow_register(self, registry) -> None:
        registry.add_domain(Domain(
            name="image", description="images in pixel or learned latent space (PNG/JPEG folders, IDX, NPZ)",
            default_dataset="digits", default_backbone="unet", data_spec=_spec,
            make_encoder=lazy("panflow_image.encoder:make_encoder"),
            load_encoder=lazy("panflow_image.encoder:load_encoder"), write_samples=lazy("panflow_image.io:write_png"),
            evaluate=lazy("panflow_image.evaluate:evaluate"), presets=PRESETS, backbone_presets=BACKBONE_PRESETS,
            metrics=("fd", "kid", "precision", "recall", "cond_acc", "memorisation")))
        registry.add_dataset(Dataset("digits", "image", lazy("panflow_image.data:load_digits"),
                                     "scikit-learn's 1,797 real 8x8 handwritten digits, 10 classes (offline)"))
        registry.add_dataset(Dataset("files", "image", _files,
                                     "your images: a folder (class = sub-folder), IDX (MNIST) or NPZ"))
        registry.add_backbone(Backbone("unet", lazy("panflow_image.backbones.unet:build_unet"), ("continuous",),
                                       _image_shaped, "ADM-style UNet: residual blocks, attention at low resolution",
                                       consumes=panflow.consumes_labels_and_vectors))
        registry.add_backbone(Backbone("dit", lazy("panflow_image.backbones.dit:build_dit"), ("continuous",),
                                       _image_shaped, "DiT: patch transformer with adaLN-Zero time/class conditioning"))
        registry.add_metric(Metric("pixel_fd", "image", lazy("panflow_image.metrics:pixel_fd"),
                                   description="Frechet distance on raw pixels"))
        registry.add_benchmark(Benchmark("image", "image", lazy("panflow_image.benchmark:run_benchmark"),
                                         "digits: UNet and DiT vs floor and Gaussian baseline", headline=("fd",),
                                         presets=("smoke", "quick", "small", "full"),
                                         previews=lazy("panflow_image.previews:previews")))


plugin = ImagePlugin()
