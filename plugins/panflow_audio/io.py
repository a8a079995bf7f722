"""Writing generated audio: one 16-bit PCM WAV per sample (Griffin-Lim inversion of the log-mel
spectrogram) and ``spectrograms.png``, a grid of the spectrograms for looking."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from panflow import Samples

from .audio_io import write_wav
from .frontend import Frontend


def spectrogram_grid(x: torch.Tensor, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """log-mel ``[N, 1, M, F]`` → uint8 ``[rows·(M+pad), cols·(F+pad)]``, low frequencies at the bottom,
    each spectrogram scaled to its own 80 dB range (white = loud)."""
    n, _, m, f = x.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.zeros((rows * (m + pad) + pad, cols * (f + pad) + pad), dtype=np.uint8)
    for i in range(n):
        s = x[i, 0].flip(0).double()
        s = ((s - (s.max() - math.log(1e8))) / math.log(1e8)).clamp(0, 1)  # 80 dB below the peak → black
        r, c = divmod(i, cols)
        out[pad + r * (m + pad): pad + r * (m + pad) + m, pad + c * (f + pad): pad + c * (f + pad) + f] = \
            (s * 255).round().to(torch.uint8).numpy()
    return out


def write_audio(samples: Samples, out_dir: str | Path, meta: dict | None = None, scale: int = 4) -> list[Path]:
    """``sample_00000[_<class>].wav`` for each sample and ``spectrograms.png`` (x ``scale``)."""
    from PIL import Image

    if not meta or "frontend" not in meta:
        raise ValueError("writing audio needs the dataset meta with its 'frontend' (recorded in the checkpoint)")
    fe = Frontend.from_json(meta["frontend"])
    classes = meta.get("classes") or []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    waves = fe.invert(samples.x)
    files = []
    for i in range(len(samples)):
        label = ""
        if samples.y is not None:
            k = int(samples.y[i])
            label = f"_{classes[k]}" if k < len(classes) else f"_class{k}"
        p = out / f"sample_{i:05d}{label.replace('#', 's')}.wav"
        write_wav(p, waves[i], fe.sample_rate)
        files.append(p)
    g = Image.fromarray(spectrogram_grid(samples.x[:64]))
    g = g.resize((g.width * scale, g.height * scale), Image.NEAREST)
    g.save(out / "spectrograms.png")
    files.append(out / "spectrograms.png")
    return files
