"""Reading, conforming and writing audio files.

File I/O is soundfile's (libsndfile: WAV, FLAC, OGG/Vorbis, ...): torchaudio 2.9+ routes
``torchaudio.load`` through TorchCodec, which is not part of this extra, so torchaudio is used
only for the transforms (resampling, spectrograms, Griffin-Lim).

Conversion policy (recorded in the dataset meta): several channels are mixed down to mono by
averaging; any other sample rate is resampled to the target rate (windowed-sinc,
``torchaudio.transforms.Resample``); leading silence (below ``trim_db`` relative to the file's
peak) is trimmed; the clip is then cut to ``num_samples`` from its start (``crop="start"``) or its
centre (``crop="centre"``), or zero-padded at the end. Errors name the file: silent files, corrupt
or unsupported files, files longer than ``max_seconds``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from panflow import ConfigError, DataError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
CROPS = ("start", "centre")


@dataclass(frozen=True)
class Policy:
    """How every clip is brought to one rate, one channel and one length."""

    sample_rate: int
    num_samples: int
    trim_db: float = 40.0
    crop: str = "start"
    max_seconds: float = 30.0
    silence_peak: float = 1e-4

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ConfigError(f"data.options.crop must be one of {CROPS}, not {self.crop!r}")

    def to_json(self) -> dict:
        return {"sample_rate": self.sample_rate, "num_samples": self.num_samples, "trim_db": self.trim_db,
                "crop": self.crop, "max_seconds": self.max_seconds, "mono": "mean of channels",
                "resample": "torchaudio.transforms.Resample (windowed sinc)",
                "random_crop_in_training": False}


def read_audio(path: Path, max_seconds: float = 30.0) -> tuple[np.ndarray, int]:
    """``(float32 [channels, T], sample_rate)``; a clear error naming the file otherwise."""
    import soundfile as sf

    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise DataError(f"{path}: unsupported audio format {path.suffix!r}; use {', '.join(sorted(AUDIO_SUFFIXES))}")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise DataError(f"cannot read audio file {path}: {str(exc).splitlines()[0]}") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise DataError(f"audio file {path} holds no samples")
    if info.frames / info.samplerate > max_seconds:
        raise DataError(f"audio file {path} is {info.frames / info.samplerate:.1f} s long, over the {max_seconds:g} s "
                        "limit (set data.options.max_seconds to allow it, or cut the file)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise DataError(f"cannot decode audio file {path}: {str(exc).splitlines()[0]}") from exc
    if not np.isfinite(data).all():
        raise DataError(f"audio file {path} contains NaN or infinite samples")
    return np.ascontiguousarray(data.T), int(sr)


def conform(wave: np.ndarray, sr: int, policy: Policy, name: str) -> tuple[torch.Tensor, dict]:
    """``[channels, T]`` at ``sr`` → mono ``[num_samples]`` at the policy's rate, and what was done."""
    done = {"mixed_down": wave.shape[0] > 1, "resampled": sr != policy.sample_rate}
    x = torch.from_numpy(wave).float().mean(0)
    if float(x.abs().max()) < policy.silence_peak:
        raise DataError(f"audio file {name} is silent (peak {float(x.abs().max()):.2g} < {policy.silence_peak:g})")
    if sr != policy.sample_rate:
        x = _resampler(sr, policy.sample_rate)(x)
    x = trim_leading_silence(x, policy.trim_db)
    n = policy.num_samples
    if x.numel() >= n:
        start = 0 if policy.crop == "start" else (x.numel() - n) // 2
        x = x[start:start + n]
    else:
        x = torch.nn.functional.pad(x, (0, n - x.numel()))
    return x, done


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int):
    """One ``torchaudio.transforms.Resample`` per rate pair (its sinc kernel is computed once)."""
    import torchaudio.transforms as T

    return T.Resample(orig, new)


def trim_leading_silence(x: torch.Tensor, db: float, frame: int = 64) -> torch.Tensor:
    """Drop whole frames at the start whose peak is more than ``db`` below the clip's peak."""
    thresh = float(x.abs().max()) * 10 ** (-db / 20)
    frames = x[: x.numel() // frame * frame].reshape(-1, frame).abs().amax(1)
    loud = torch.nonzero(frames > thresh)
    return x[int(loud[0]) * frame:] if loud.numel() else x


def load_clips(files: list[Path], policy: Policy) -> tuple[torch.Tensor, dict]:
    """Read and conform every file: ``[N, num_samples]`` and counts of the conversions made."""
    out, counts = [], {"mixed_down": 0, "resampled": 0}
    for f in files:
        wave, sr = read_audio(f, policy.max_seconds)
        x, done = conform(wave, sr, policy, str(f))
        counts = {k: counts[k] + int(v) for k, v in done.items()}
        out.append(x)
    return torch.stack(out), counts


def write_wav(path: Path, wave: torch.Tensor, sample_rate: int) -> None:
    """16-bit PCM mono WAV (opens in any player); the clip is peak-limited to avoid wrap-around."""
    import soundfile as sf

    x = wave.detach().float().cpu().numpy()
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0.99:
        x = x * (0.99 / peak)
    sf.write(str(path), x, sample_rate, subtype="PCM_16")
