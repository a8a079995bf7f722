"""report.html previews for audio: the model's log-mel spectrograms and players for its clips
(Griffin-Lim inverted, as scored) beside a held-out clip, per dataset."""

from __future__ import annotations

import numpy as np

from panflow import Preview, colormap, image_grid, png_bytes, upscale, wav_bytes


def previews(result: dict, samples: dict[str, np.ndarray]) -> list[Preview]:
    """Per dataset: one PNG of the kept spectrograms (low frequencies at the bottom) and WAV players."""
    out = []
    for ds in sorted({k.split(".")[0] for k in samples if k.endswith(".mel")}):
        sr = int(result.get("training", {}).get(ds, {}).get("frontend", {}).get("sample_rate", 8000))
        mel, labels = samples[f"{ds}.mel"], samples[f"{ds}.label"]
        tiles = np.stack([colormap(m.reshape(m.shape[-2:])[::-1]) for m in mel])  # [N, mels, frames, 3]
        grid = image_grid(tiles, cols=len(tiles), pad=2)
        scale = max(1, min(4, 640 // grid.shape[1]))
        out.append(Preview(f"{ds}: generated log-mel spectrograms", "png", png_bytes(upscale(grid, scale)),
                           f"classes {', '.join(str(int(c)) for c in labels)}; time left to right, mel bins bottom to top"))
        for i, (w, c) in enumerate(zip(samples[f"{ds}.wave"][:3], labels[:3], strict=False)):
            out.append(Preview(f"{ds}: generated clip {i + 1} (class {int(c)})", "wav", wav_bytes(w, sr),
                               f"Griffin-Lim inversion of the generated spectrogram, {sr} Hz"))
        if f"{ds}.real_wave" in samples:
            out.append(Preview(f"{ds}: held-out clip (class {int(labels[0])})", "wav",
                               wav_bytes(samples[f"{ds}.real_wave"][0], sr), "a real clip of the held-out split"))
    return out
