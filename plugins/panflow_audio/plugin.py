"""Registers the audio domain, its datasets, the spectrogram UNet, a metric and the benchmark.

Heavy modules (torchaudio, soundfile, espeak-ng) are imported only when a component is used.
"""

from __future__ import annotations

import panflow
from panflow import Backbone, Benchmark, Dataset, DataSpec, Domain, Metric, lazy

from . import __version__


def _spec(bundle) -> DataSpec:
    y = bundle.train.y
    k = 0
    if y is not None:
        k = max(len(bundle.meta.get("classes") or []), int(y.max()) + 1,
                int(bundle.val.y.max()) + 1 if bundle.val.y is not None else 0)
    return DataSpec("continuous", tuple(bundle.train.x.shape[1:]), num_classes=k)


def _files(opts):
    if not opts.path:
        raise panflow.DataError("dataset 'audio_files' needs --data PATH (a folder of WAV/FLAC/OGG or a .csv/.jsonl manifest)")
    return lazy("panflow_audio.data:load_path")(opts)


def _spectrogram_shaped(spec: DataSpec) -> bool:
    return len(spec.shape) == 3 and spec.shape[1] >= 4 and spec.shape[2] >= 4


# sized to the budget, <= 20 min of training on 2 CPU cores for both datasets at once (two
# single-threaded processes, as the benchmark runs them): 6,000 steps at 6.3-7 steps/s each, about
# 15 min (at 4,000 steps the notes' frame energies sat at the KS bar, p 0.011). Sampling: rk4 at 48
# evaluations. The spectrogram flow is curved: on the digits, heun at NFE 16 scored classifier FD
# 2.98 where the same model integrated to convergence (dopri5, heun at NFE 96) scores 1.73-1.75
# (guidance 1); at guidance 1.25, rk4 at NFE 32 / 48 gets 1.53 / 1.50 (heun 1.72 / 1.58). After
# 1,000 steps heun at NFE 48 scored 1.86, after 4,000 steps 1.58 (Griffin-Lim without refinement).
SMALL_TRAIN = {"train.steps": 6000, "train.batch_size": 32, "train.lr": 2e-3, "train.warmup_steps": 50,
               "train.lr_schedule": "cosine", "train.min_lr_ratio": 0.1, "train.ema_decay": 0.999,
               "train.ema_warmup": True,  # without it 55% of a 600-step EMA is the (zero-output) init
               "train.grad_clip": 1.0, "train.log_every": 50, "data.val_fraction": 0.2,
               "flow.label_dropout": 0.1, "sample.solver": "rk4", "sample.nfe": 48}
PRESETS = {
    "smoke": {"train.steps": 3, "train.batch_size": 8, "train.log_every": 1, "data.val_fraction": 0.2,
              "sample.nfe": 2, "data.options": {"griffin_lim_iters": 4}},  # plumbing only: a cheap inversion
    # quick: the README's first run — a short run of a narrower UNet, already far past the mean-spectrogram baseline
    "quick": {**SMALL_TRAIN, "train.steps": 250, "train.batch_size": 16, "train.warmup_steps": 20,
              "train.ema_decay": 0.98, "train.log_every": 10, "sample.solver": "heun", "sample.nfe": 8},
    "small": SMALL_TRAIN,
    # GPU scale: 16 kHz, 80 mels x 128 frames (about 2 s), a wider UNet, bf16 and compile
    "full": {"train.steps": 200_000, "train.batch_size": 128, "train.lr": 2e-4, "train.warmup_steps": 1000,
             "train.ema_decay": 0.9999, "train.ema_warmup": True, "train.compile": True, "train.amp": "auto",
             "train.log_every": 1000,
             "train.checkpoint_every": 10_000, "data.val_fraction": 0.1, "flow.label_dropout": 0.1,
             "data.options": {"sample_rate": 16000, "n_fft": 1024, "hop_length": 256, "n_mels": 80, "frames": 128},
             "flow.time_sampler": "logit_normal", "sample.solver": "heun", "sample.nfe": 32},
}
BACKBONE_PRESETS = {
    "smoke": {"spec_unet": {"channels": 8, "mults": [1, 2], "num_res": 1, "attn_resolutions": [], "heads": 2}},
    "quick": {"spec_unet": {"channels": 12, "mults": [1, 2, 2], "num_res": 1, "attn_resolutions": [], "heads": 2}},
    "small": {"spec_unet": {"channels": 16, "mults": [1, 2, 2], "num_res": 1, "attn_resolutions": [8], "heads": 4}},
    "full": {"spec_unet": {"channels": 128, "mults": [1, 2, 2, 4], "num_res": 2, "attn_resolutions": [20, 10],
                           "heads": 8, "dropout": 0.1}},
}


class AudioPlugin:
    PANFLOW_HOOK_API = 1
    REQUIRES = {"torchaudio": "audio", "soundfile": "audio", "espeakng_loader": "audio", "PIL": "audio",
                "scipy": "audio"}
    __version__ = __version__

    @panflow.hookimpl
    def panflow_register(self, registry) -> None:
        registry.add_domain(Domain(
            name="audio", description="log-mel spectrograms inverted with Griffin-Lim (WAV/FLAC/OGG folders, CSV/JSONL)",
            default_dataset="spoken_digits", default_backbone="spec_unet", data_spec=_spec,
            make_encoder=lazy("panflow_audio.frontend:make_encoder"),
            load_encoder=lazy("panflow_audio.frontend:load_encoder"), write_samples=lazy("panflow_audio.io:write_audio"),
            evaluate=lazy("panflow_audio.evaluate:evaluate"), presets=PRESETS, backbone_presets=BACKBONE_PRESETS,
            metrics=("fd", "cond_acc", "class_kl", "pitch_acc", "energy_ks", "rms_ratio")))
        registry.add_dataset(Dataset("spoken_digits", "audio", lazy("panflow_audio.data:load_digits"),
                                     "'zero'..'nine' from espeak-ng: 64 synthetic speakers x 3 takes (offline)"))
        registry.add_dataset(Dataset("notes", "audio", lazy("panflow_audio.data:load_notes"),
                                     "harmonic tones C4..B4 with exact pitch labels (offline)"))
        registry.add_dataset(Dataset("audio_files", "audio", _files,
                                     "your audio: a folder (class = sub-folder) or a CSV/JSONL manifest"))
        registry.add_backbone(Backbone("spec_unet", lazy("panflow_audio.backbone:build_spec_unet"), ("continuous",),
                                       _spectrogram_shaped, "the core UNet over (mel, time) spectrograms",
                                       consumes=panflow.consumes_labels_and_vectors))
        registry.add_metric(Metric("mel_energy_ks", "audio", lazy("panflow_audio.metrics:mel_energy_ks"),
                                   description="KS statistic of per-frame log mel energy, generated vs real"))
        registry.add_benchmark(Benchmark("audio", "audio", lazy("panflow_audio.benchmark:run_benchmark"),
                                         "spoken digits and notes: spectrogram UNet vs floor, baseline, Griffin-Lim ceiling",
                                         headline=("fd", "spoken_digits"), presets=("smoke", "quick", "small", "full"),
                                         previews=lazy("panflow_audio.previews:previews")))


plugin = AudioPlugin()
