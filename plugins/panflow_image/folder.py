"""Folders of images (PNG/JPEG/...) → float32 ``[N, C, H, W]`` in [0, 1], without losing levels.

Headers are read first, so sizes, modes and the memory the decoded array will need are checked
against a stated budget (``data.options.max_gb``) before any image is decoded. 16-bit images keep
their 65,536 levels (scaled by 1/65535, not clipped to 8 bits); float images must lie in [0, 1].
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from panflow import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MODES = ("L", "RGB")
HIGH_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # integer modes deeper than 8 bits
GRAY = {"L", "1", "LA", "F", *HIGH_BIT}
DEFAULT_MAX_GB = 4.0


def _list(root: Path) -> tuple[list[tuple[Path, int]], list[str], list[Path]]:
    """(file, class index) pairs, class names, and the files skipped (not images)."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if subdirs:
        loose_images = [f for f in loose if f.suffix.lower() in IMAGE_SUFFIXES]
        if loose_images:
            raise DataError(f"{root} holds class folders ({', '.join(d.name for d in subdirs[:5])}) and also "
                            f"{len(loose_images)} image(s) outside them (e.g. {loose_images[0].name}); move those "
                            "into a class folder (or use a flat folder for unlabelled images)")
        cands = [(f, i) for i, d in enumerate(subdirs) for f in sorted(d.rglob("*")) if f.is_file()]
        classes = [d.name for d in subdirs]
    else:
        cands, classes = [(f, -1) for f in loose], []
    files = [(f, c) for f, c in cands if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")]
    skipped = [f for f, _ in cands if f.suffix.lower() not in IMAGE_SUFFIXES or f.name.startswith(".")]
    if not files:
        raise DataError(f"{root} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if classes:
        empty = [classes[i] for i in range(len(classes)) if not any(c == i for _, c in files)]
        if empty:
            warnings.warn(f"class folder(s) {', '.join(empty)} in {root} hold no images", stacklevel=3)
    return files, classes, skipped


def _headers(files: list[tuple[Path, int]]) -> list[tuple[str, tuple[int, int], int]]:
    """(mode, (width, height), bands) of each file, read from its header only."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for f, _ in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(f) as im:
                    out.append((im.mode, im.size, len(im.getbands())))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read image {f}: {exc}") from exc
    return out


def _array(im, want: str, f: Path) -> np.ndarray:
    """One PIL image → float32 ``[H, W]`` (L) or ``[H, W, 3]`` (RGB) in [0, 1], levels kept."""
    if im.mode in HIGH_BIT:
        a = np.asarray(im).astype(np.float64)
        if a.min() < 0 or a.max() > 65535:
            raise DataError(f"image {f} (mode {im.mode}) has values in [{a.min():g}, {a.max():g}]; "
                            "expected 8- or 16-bit levels")
        a = (a / 65535.0).astype(np.float32)
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise DataError(f"float image {f} has values outside [0, 1] (or NaN); rescale it")
    else:
        return np.asarray(im.convert(want), dtype=np.float32) / 255.0
    return np.repeat(a[..., None], 3, axis=-1) if want == "RGB" else a


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of a float array, channel by channel (keeps more than 8 bits)."""
    from PIL import Image

    chans = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[-1])]
    out = [np.asarray(Image.fromarray(c, mode="F").resize((size, size), Image.BICUBIC)) for c in chans]
    return np.clip(out[0] if a.ndim == 2 else np.stack(out, -1), 0, 1)


def read_folder(root: Path, mode: str | None = None, resolution: int | None = None,
                max_gb: float = DEFAULT_MAX_GB):
    """Images under ``root``; one level of sub-folders names the classes (else unlabelled)."""
    from PIL import Image

    if mode is not None and mode not in MODES:
        raise DataError(f"unknown image mode '{mode}' in data.options.mode (known: {', '.join(MODES)})")
    if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
        raise DataError(f"data.options.resolution must be a positive integer, got {resolution!r}")
    files, classes, skipped = _list(root)
    heads = _headers(files)
    modes: dict[str, list[Path]] = {}
    for (f, _), (m, _, _) in zip(files, heads):
        modes.setdefault(m, []).append(f)
    want = mode or ("RGB" if any(m not in GRAY for m in modes) else "L")
    if len(modes) > 1:
        odd = [str(f) for m, fs in modes.items() if m != want for f in fs][:5]
        warnings.warn(f"images in {root} have mixed modes {sorted(modes)}; converting all to {want} "
                      f"(e.g. {', '.join(odd)})", stacklevel=2)
    if any(m in ("LA", "RGBA", "PA") for m in modes):
        warnings.warn(f"images in {root} have an alpha channel; it is dropped (converted to {want})", stacklevel=2)
    sizes = {s for _, s, _ in heads}
    if not resolution and len(sizes) > 1:
        f0, (w0, h0) = files[0][0], heads[0][1]
        f, (w, h) = next((f, s) for (f, _), (_, s, _) in zip(files, heads) if s != (w0, h0))
        raise DataError(f"image {f} is {w}x{h} but {f0} is {w0}x{h0}; "
                        "set data.options.resolution to resize all images to one size")
    chans = 3 if want == "RGB" else 1
    out_px = resolution * resolution if resolution else heads[0][1][0] * heads[0][1][1]
    need = len(files) * chans * out_px * 4 / 1e9
    biggest = max(w * h for _, (w, h), _ in heads)
    peak = need + biggest * 4 * 8 / 1e9  # one decoded image in float64 on top of the result
    if peak > max_gb:
        raise DataError(f"the {len(files)} images in {root} need {peak:.2f} GB as float32 (largest "
                        f"{biggest:,} pixels), over the budget data.options.max_gb = {max_gb:g}; set "
                        "data.options.resolution to shrink them, or raise the budget")
    arrays = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                a = _array(im, want, f)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot decode image {f}: {exc}") from exc
        if resolution and a.shape[:2] != (resolution, resolution):
            a = _resize(a, resolution)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    x = torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))
    y = torch.tensor([c for _, c in files], dtype=torch.long) if classes else None
    meta = {"source": str(root), "classes": classes, "mode": want, "files": len(files),
            "bit_depth": 16 if any(m in HIGH_BIT for m in modes) else 8,
            "skipped_files": len(skipped), "skipped_examples": [str(p.relative_to(root)) for p in skipped[:5]]}
    return x, y, meta
