"""Registers the video domain: moving digits and your clips, the (2+1)-D UNet, metrics, benchmark.

PyAV, Pillow and scikit-learn are imported only when a component is used.
"""

from __future__ import annotations

import panflow
from panflow import Backbone, Benchmark, Dataset, DataSpec, Domain, Metric, consumes_labels_and_vectors, lazy

from . import __version__


def data_spec(bundle) -> DataSpec:
    """Clips ``[T, C, H, W]`` with one time per frame (given frames are known parts) and, for the
    moving digits, the digit's class as the ``label`` condition."""
    t, c, h, w = bundle.meta["shape"]  # also for lazy bundles (data.options.lazy), which hold no tensor
    return DataSpec("continuous", (t, c, h, w), time_shape=(t,), num_classes=int(bundle.meta.get("num_classes", 0)))


def _fits(spec: DataSpec) -> bool:
    return lazy("panflow_video.backbone:fits")(spec)


# sample.guidance: classifier-free guidance on the digit label, inherited by quick and full
SMALL = {"train.steps": 3000, "train.batch_size": 16, "train.lr": 2e-3, "train.warmup_steps": 100,
         "train.lr_schedule": "cosine", "train.min_lr_ratio": 0.05, "train.ema_decay": 0.995, "train.ema_warmup": True,
         "train.grad_clip": 1.0, "train.log_every": 250, "train.device": "cpu", "data.val_fraction": 0.15,
         "data.options": {"recipe": "small"}, "sample.solver": "heun", "sample.nfe": 24, "sample.guidance": 1.5}
PRESETS = {
    "smoke": {"train.steps": 3, "train.batch_size": 8, "train.log_every": 1, "data.val_fraction": 0.25,
              "data.options": {"recipe": "smoke"}, "sample.nfe": 2, "sample.solver": "euler", "train.device": "cpu"},
    "quick": {**SMALL, "train.steps": 300, "train.ema_decay": 0.99, "data.options": {"recipe": "quick"},
              "sample.solver": "euler", "sample.nfe": 8},
    "small": SMALL,
    "full": {**SMALL, "train.steps": 100_000, "train.batch_size": 64, "train.lr": 3e-4, "train.ema_decay": 0.9999,
             "train.amp": "auto", "train.device": "auto", "train.log_every": 1000, "train.checkpoint_every": 10_000,
             "data.options": {"recipe": "full"}, "sample.nfe": 32},
}
BACKBONE_PRESETS = {"smoke": {"st-unet": {"channels": 8, "mults": [1, 2], "heads": 2}},
                    "quick": {"st-unet": {"channels": 16, "mults": [1, 2, 2], "heads": 4}},
                    "small": {"st-unet": {"channels": 16, "mults": [1, 2, 2], "heads": 4}},
                    "full": {"st-unet": {"channels": 96, "mults": [1, 2, 2, 2], "heads": 8}}}


class VideoPlugin:
    PANFLOW_HOOK_API = 1
    REQUIRES = {"av": "video", "PIL": "video", "sklearn": "video"}
    __version__ = __version__

    @panflow.hookimpl
    def panflow_register(self, registry) -> None:
        from . import known  # noqa: F401 - registers the "video-tasks" known sampler the domain names

        registry.add_domain(Domain(
            name="video", description="clips [T, C, H, W] denoised as one volume: generation, prediction, interpolation",
            default_dataset="moving-digits", default_backbone="st-unet", data_spec=data_spec,
            make_encoder=lazy("panflow_video.encoder:make_encoder"), load_encoder=lazy("panflow_video.encoder:load_encoder"),
            write_samples=lazy("panflow_video.io:write_clips"), evaluate=lazy("panflow_video.evaluate:evaluate"),
            presets=PRESETS, backbone_presets=BACKBONE_PRESETS, metrics=("video_scores",),
            known="video-tasks", known_options={"p_none": 0.3, "p_prefix": 0.5}))
        registry.add_dataset(Dataset("moving-digits", "video", lazy("panflow_video.data:load_moving"),
                                     "embedded: real sklearn digits bouncing with recorded trajectories; --data PATH "
                                     "reads NPY/NPZ [N,T,H,W(,C)], clip folders of frames, MP4/WebM/GIF (PyAV)"))
        per_frame = dict(kinds=("continuous",), accepts=_fits, per_element_time=True,
                         consumes=consumes_labels_and_vectors)  # global, added to the time embedding
        registry.add_backbone(Backbone("st-unet", lazy("panflow_video.backbone:build"),
                                       description="(2+1)-D UNet: 2-D convs per frame, temporal convs + attention",
                                       **per_frame))
        registry.add_backbone(Backbone("frame-unet", lazy("panflow_video.backbone:build_per_frame"),
                                       description="the st-unet without cross-frame layers (per-frame image baseline)",
                                       **per_frame))
        registry.add_metric(Metric("video_scores", "video", lazy("panflow_video.metrics:pixel_scores"),
                                   description="per-frame pixel statistics and centroid speeds (no classifier)"))
        registry.add_benchmark(Benchmark("video", "video", lazy("panflow_video.benchmark:run_benchmark"),
                                         "(2+1)-D flow vs per-frame image model and copy-last-frame on moving digits",
                                         presets=("smoke", "quick", "small", "full"), headline=("clip_fd",),
                                         previews=lazy("panflow_video.previews:previews")))


plugin = VideoPlugin()
