"""Previews in a domain's own medium for ``report.html``, and the small encoders plugins build them with.

A benchmark supplies previews through its ``Benchmark.previews`` hook: ``previews(result, samples) ->
list[Preview]``, where ``result`` is its result JSON and ``samples`` the arrays its score card kept in
``ScoreCard.artifacts`` (saved beside the result as ``<name>.samples.npz``). The core lays the
previews out; it never looks inside them. Encoders here need only numpy and the standard library
(PNG through zlib, WAV through :mod:`wave`, SVG as text), so no plugin needs a plotting library.
"""

from __future__ import annotations

import io
import struct
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .nametable import NameTable

# medium -> MIME type; a plugin may add another (the page shows images, audio players and text by MIME type)
MEDIA = NameTable("preview medium", {"png": "image/png", "svg": "image/svg+xml", "wav": "audio/wav",
                                     "text": "text/plain"})


@dataclass
class Preview:
    """One preview: ``medium`` is a registered name (png, svg, wav, text); ``data`` its bytes."""

    title: str
    medium: str
    data: bytes
    caption: str = ""

    def mime(self) -> str:
        return MEDIA.lookup(self.medium)


def png_bytes(img: np.ndarray) -> bytes:
    """Encode ``[H, W]`` (grey) or ``[H, W, 3]`` (RGB) values in [0, 1] as a PNG."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or a.size == 0:
        raise DataError(f"png_bytes expects [H, W] or [H, W, 3], got shape {a.shape}")
    a = (np.clip(np.nan_to_num(a), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    h, w = a.shape[:2]
    colour = 0 if a.ndim == 2 else 2
    raw = b"".join(b"\x00" + a[i].tobytes() for i in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of ``[H, W(, C)]`` by an integer ``factor`` (small images stay sharp)."""
    return np.repeat(np.repeat(np.asarray(img), factor, axis=0), factor, axis=1)


def image_grid(images: np.ndarray, cols: int = 8, pad: int = 1) -> np.ndarray:
    """Tile ``[N, H, W]`` or ``[N, H, W, 3]`` images (values in [0, 1]) into one grid array."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim not in (3, 4) or len(x) == 0:
        raise DataError(f"image_grid expects [N, H, W] or [N, H, W, 3], got shape {x.shape}")
    n, h, w = x.shape[:3]
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, *x.shape[3:]))
    for i in range(n):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = x[i]
    return grid


def colormap(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Map ``[H, W]`` values to ``[H, W, 3]`` RGB on a perceptually ordered blue-white-red-ish ramp
    (dark blue for low, yellow for high), scaled to ``[lo, hi]`` (default: the values' range)."""
    v = np.asarray(values, dtype=np.float64)
    lo = float(np.nanmin(v)) if lo is None else lo
    hi = float(np.nanmax(v)) if hi is None else hi
    t = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    stops = np.array([[0.05, 0.03, 0.35], [0.13, 0.45, 0.70], [0.45, 0.78, 0.45], [0.99, 0.91, 0.15]])
    pos = t * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    f = (pos - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def wav_bytes(wave_form: np.ndarray, sample_rate: int) -> bytes:
    """Encode a mono ``[T]`` waveform (any scale; peak-normalised to 0.9) as 16-bit PCM WAV."""
    x = np.nan_to_num(np.asarray(wave_form, dtype=np.float64).reshape(-1))
    peak = float(np.abs(x).max()) if x.size else 0.0
    pcm = (x / peak * 0.9 * 32767).astype("<i2") if peak > 0 else np.zeros(x.shape, "<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _frame(points: list[np.ndarray], size: int) -> tuple[Any, list[str]]:
    allp = np.concatenate([p.reshape(-1, 2) for p in points]) if points else np.zeros((1, 2))
    allp = allp[np.isfinite(allp).all(1)] if np.isfinite(allp).any() else np.zeros((1, 2))
    lo, hi = allp.min(0), allp.max(0)
    span = float(max((hi - lo).max(), 1e-9)) * 1.08
    mid = (lo + hi) / 2

    def to_px(p: np.ndarray) -> np.ndarray:
        q = (np.asarray(p, dtype=np.float64).reshape(-1, 2) - mid) / span + 0.5
        return np.stack([q[:, 0] * size, (1 - q[:, 1]) * size], 1)

    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
            f'<rect width="{size}" height="{size}" fill="white" stroke="#999"/>']
    return to_px, head


def scatter_svg(groups: dict[str, np.ndarray], size: int = 320, radius: float = 1.6,
                frame: list[np.ndarray] | None = None) -> bytes:
    """An SVG scatter of named ``[N, 2]`` point sets sharing one frame (fitted to ``frame``'s points
    when given, so several panels line up), with a legend."""
    to_px, out = _frame(frame if frame is not None else list(groups.values()), size)
    for k, (name, pts) in enumerate(groups.items()):
        col = PALETTE[k % len(PALETTE)]
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{col}" fill-opacity="0.55"/>'
                for x, y in to_px(pts) if np.isfinite(x) and np.isfinite(y)]
        out.append(f'<text x="6" y="{16 + 14 * k}" font-size="12" fill="{col}">{_esc(name)}</text>')
    return ("\n".join(out) + "</svg>").encode()


def polylines_svg(groups: dict[str, list[np.ndarray]], size: int = 320, markers: dict[str, np.ndarray] | None = None,
                  frame: list[np.ndarray] | None = None) -> bytes:
    """An SVG of named sets of ``[T, 2]`` paths (trajectories, chains) in one frame (fitted to
    ``frame``'s points when given), plus optional named ``[M, 2]`` marker points (goals, start
    states), with a legend."""
    markers = markers or {}
    to_px, out = _frame(frame if frame is not None else [p for ps in groups.values() for p in ps]
                        + list(markers.values()), size)
    for k, (name, paths) in enumerate(groups.items()):
        col = PALETTE[k % len(PALETTE)]
        for p in paths:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in to_px(p) if np.isfinite(x) and np.isfinite(y))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-opacity="0.7" stroke-width="1.3"/>')
        out.append(f'<text x="6" y="{16 + 14 * k}" font-size="12" fill="{col}">{_esc(name)}</text>')
    for j, (name, pts) in enumerate(markers.items()):
        col = PALETTE[(len(groups) + j) % len(PALETTE)]
        out += [f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{col}"/>' for x, y in to_px(pts)]
        out.append(f'<text x="6" y="{16 + 14 * (len(groups) + j)}" font-size="12" fill="{col}">{_esc(name)}</text>')
    return ("\n".join(out) + "</svg>").encode()


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def save_artifacts(path: str | Path, arrays: dict[str, Any]) -> Path:
    """Write ``arrays`` (name -> tensor or array) as an ``.npz`` (no pickled objects)."""
    path = Path(path)
    out = {}
    for k, v in arrays.items():
        a = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        if a.dtype == object:
            raise DataError(f"preview artifact '{k}' is not a numeric array")
        out[k] = a
    with open(path, "wb") as f:
        np.savez_compressed(f, **out)
    return path


def load_artifacts(path: str | Path) -> dict[str, np.ndarray]:
    """Read an artifacts ``.npz`` written by :func:`save_artifacts` ({} when there is none)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable preview artifact file ({exc})") from exc


__all__ = ["Preview", "MEDIA", "png_bytes", "upscale", "image_grid", "colormap", "wav_bytes", "scatter_svg",
           "polylines_svg", "save_artifacts", "load_artifacts"]
