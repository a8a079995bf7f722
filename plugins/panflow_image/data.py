"""Image datasets: scikit-learn's bundled digits (default), folders of PNG/JPEG, IDX and NPZ files.

Raw space is float32 ``[N, C, H, W]`` in [0, 1]; labels ``[N]`` int64 when known. Splits are
deterministic (a seeded permutation). Bad input is an error (or a warning) that names the file.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import warnings
from pathlib import Path

import numpy as np
import torch

from panflow import DataBundle, DataError, DatasetOptions, Samples

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def split(x: torch.Tensor, y: torch.Tensor | None, val_fraction: float, seed: int, meta: dict) -> DataBundle:
    """Deterministic train/validation split by a permutation seeded with ``seed``."""
    n = x.shape[0]
    if n < 2:
        raise DataError(f"need at least 2 images, found {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(n * val_fraction)))
    tr, va = perm[n_val:], perm[:n_val]
    meta = {**meta, "n_train": int(tr.numel()), "n_val": int(va.numel()), "split_seed": seed,
            "hash": dataset_hash(x, y), "shape": list(x.shape[1:])}
    return DataBundle(Samples(x[tr], None if y is None else y[tr]), Samples(x[va], None if y is None else y[va]), meta)


def dataset_hash(x: torch.Tensor, y: torch.Tensor | None) -> str:
    h = hashlib.sha256(x.numpy().tobytes())
    if y is not None:
        h.update(y.numpy().tobytes())
    return h.hexdigest()[:16]


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` to ``size × size`` (antialiased bilinear); the same for every image."""
    if not size or tuple(x.shape[-2:]) == (size, size):
        return x
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False).clamp(0, 1)


def load_digits(opts: DatasetOptions) -> DataBundle:
    """The 1,797 real 8×8 handwritten digits bundled with scikit-learn (values 0..16)."""
    if opts.path:
        return load_path(opts)
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    x = resize(x, opts.options.get("resolution"))
    return split(x, y, opts.val_fraction, opts.seed,
                 {"source": "sklearn.datasets.load_digits", "classes": [str(i) for i in range(10)]})


def load_path(opts: DatasetOptions) -> DataBundle:
    """Dispatch on what ``opts.path`` is: a folder of images, an IDX file, or an NPZ file."""
    path = Path(opts.path)
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if path.is_dir():
        x, y, meta = read_folder(path, opts.options.get("mode"), opts.options.get("resolution"))
    elif path.name.endswith((".npz",)):
        x, y, meta = read_npz(path)
    elif "idx" in path.name or path.name.endswith(("-ubyte", "-ubyte.gz")):
        x, y, meta = read_idx_pair(path)
    else:
        raise DataError(f"{path}: not a folder of images, an IDX file (e.g. train-images-idx3-ubyte[.gz]) "
                        "or an NPZ file")
    x = resize(x, opts.options.get("resolution"))
    return split(x, y, opts.val_fraction, opts.seed, meta)


def read_folder(root: Path, mode: str | None = None, resolution: int | None = None):
    """Images under ``root``; one level of sub-folders names the classes (else unlabelled)."""
    from PIL import Image, UnidentifiedImageError

    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if subdirs:
        files = [(f, i) for i, d in enumerate(subdirs) for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
        classes = [d.name for d in subdirs]
    else:
        files = [(f, -1) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        classes = []
    if not files:
        raise DataError(f"{root} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images, modes = [], {}
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"cannot read image {f}: {exc}") from exc
        modes.setdefault(images[-1].mode, []).append(f)
    want = mode or ("RGB" if any(m not in ("L", "1", "I", "I;16", "LA") for m in modes) else "L")
    if len(modes) > 1:
        odd = [str(f) for m, fs in modes.items() if m != want for f in fs][:5]
        warnings.warn(f"images in {root} have mixed modes {sorted(modes)}; converting all to {want} "
                      f"(e.g. {', '.join(odd)})", stacklevel=2)
    arrays = []
    size0 = None
    for (f, _), im in zip(files, images):
        im = im.convert(want)
        if resolution:
            im = im.resize((resolution, resolution), Image.BICUBIC)
        if size0 is None:
            size0 = im.size
        elif im.size != size0:
            raise DataError(f"image {f} is {im.size[0]}x{im.size[1]} but {files[0][0]} is {size0[0]}x{size0[1]}; "
                            "set data.options.resolution to resize all images to one size")
        a = np.asarray(im, dtype=np.float32) / 255.0
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(arrays))
    y = torch.tensor([c for _, c in files], dtype=torch.long) if classes else None
    return x, y, {"source": str(root), "classes": classes, "mode": want, "files": len(files)}


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST / Fashion-MNIST format), gzipped or not."""
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise DataError(f"{path}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims} = {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(dims)


def read_idx_pair(images_path: Path):
    """``*-images-idx3-ubyte[.gz]`` and, when present beside it, the matching labels file."""
    x = read_idx(images_path)
    if x.ndim != 3:
        raise DataError(f"{images_path}: expected an [N, H, W] image array, got shape {x.shape}")
    labels_path = images_path.with_name(images_path.name.replace("images-idx3", "labels-idx1"))
    y = None
    if labels_path != images_path and labels_path.exists():
        y = read_idx(labels_path)
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{labels_path} has {y.shape[0]} labels but {images_path} has {x.shape[0]} images")
        y = torch.from_numpy(y.astype(np.int64))
    xt = torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]
    classes = [str(int(c)) for c in torch.unique(y).tolist()] if y is not None else []
    return xt, y, {"source": str(images_path), "classes": classes}


def read_npz(path: Path):
    """NPZ with ``x``/``images`` ([N,H,W], [N,H,W,C] or [N,C,H,W]; uint8 or float in [0,1]) and
    optional ``y``/``labels``."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read NPZ file {path}: {exc}") from exc
    key = next((k for k in ("x", "images", "X") if k in z.files), None)
    if key is None:
        raise DataError(f"{path} has arrays {z.files}; expected one named 'x' or 'images'")
    x = z[key]
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and (x.shape[1] not in (1, 3, 4) or x.shape[1] == x.shape[2]):
        x = x.transpose(0, 3, 1, 2)  # channels last (when ambiguous, the layout with square H, W wins)
    elif x.ndim != 4:
        raise DataError(f"{path}:{key} has shape {x.shape}; expected [N,H,W], [N,H,W,C] or [N,C,H,W]")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{path}:{key} contains NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise DataError(f"{path}:{key} values span [{x.min():.3g}, {x.max():.3g}]; expected uint8 or floats in [0, 1]")
    ykey = next((k for k in ("y", "labels") if k in z.files), None)
    y = None
    if ykey is not None:
        y = z[ykey]
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{path}: {y.shape[0]} labels for {x.shape[0]} images")
        y = torch.from_numpy(y.astype(np.int64))
    classes = [str(int(c)) for c in torch.unique(y).tolist()] if y is not None else []
    return torch.from_numpy(np.ascontiguousarray(x)), y, {"source": str(path), "classes": classes}
