"""Image datasets: scikit-learn's bundled digits (default), folders of PNG/JPEG, IDX and NPZ files.

Raw space is float32 ``[N, C, H, W]`` in [0, 1]; labels ``[N]`` int64 when known. Splits are
deterministic (a seeded permutation). Bad input is an error (or a warning) that names the file.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import torch

from panflow import DataBundle, DataError, DatasetOptions, Samples

from .folder import DEFAULT_MAX_GB, IMAGE_SUFFIXES, read_folder  # noqa: F401  (IMAGE_SUFFIXES: public)

OPTIONS = ("resolution", "mode", "max_gb")
MAX_CLASSES = 100_000


def split(x: torch.Tensor, y: torch.Tensor | None, val_fraction: float, seed: int, meta: dict) -> DataBundle:
    """Deterministic train/validation split by a permutation seeded with ``seed``."""
    n = x.shape[0]
    if n < 2:
        raise DataError(f"need at least 2 images, found {n} in {meta.get('source')}")
    if not 0 < val_fraction < 1:
        raise DataError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
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


def _check_options(opts: DatasetOptions) -> None:
    unknown = sorted(set(opts.options) - set(OPTIONS))
    if unknown:
        raise DataError(f"unknown image data option(s) {unknown}; known: {', '.join(OPTIONS)}")


def labels(y: np.ndarray, path: Path) -> torch.Tensor:
    """Class labels as int64 ``[N]``: integers in [0, MAX_CLASSES), else a clear error."""
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        raise DataError(f"{path}: labels must be a 1-D integer array, got {y.dtype} of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise DataError(f"{path}: labels span [{y.min()}, {y.max()}]; class labels must be integers in "
                        f"[0, {MAX_CLASSES})")
    return torch.from_numpy(y.astype(np.int64))


def load_digits(opts: DatasetOptions) -> DataBundle:
    """The 1,797 real 8×8 handwritten digits bundled with scikit-learn (values 0..16)."""
    _check_options(opts)
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
    _check_options(opts)
    path = Path(opts.path)
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if path.is_dir():
        x, y, meta = read_folder(path, opts.options.get("mode"), opts.options.get("resolution"),
                                 float(opts.options.get("max_gb", DEFAULT_MAX_GB)))
    elif path.name.endswith((".npz",)):
        x, y, meta = read_npz(path)
    elif "idx" in path.name or path.name.endswith(("-ubyte", "-ubyte.gz")):
        x, y, meta = read_idx_pair(path)
    else:
        raise DataError(f"{path}: not a folder of images, an IDX file (e.g. train-images-idx3-ubyte[.gz]) "
                        "or an NPZ file")
    x = resize(x, opts.options.get("resolution"))
    return split(x, y, opts.val_fraction, opts.seed, meta)


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
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated: its header names {ndim} dimensions but holds {len(data)} bytes")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dt = np.dtype(dtypes[data[2]])
    body = len(data) - 4 - 4 * ndim
    want = int(np.prod(dims, dtype=np.int64))
    if body != want * dt.itemsize:
        raise DataError(f"{path} is truncated or padded: header says {dims} = {want} values of {dt.itemsize} "
                        f"byte(s), the file holds {body} bytes of data")
    arr = np.frombuffer(data, dtype=dt, offset=4 + 4 * ndim)
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
        y = labels(y, labels_path)
    xt = torch.from_numpy(unit_range(x, images_path))[:, None]
    classes = [str(int(c)) for c in torch.unique(y).tolist()] if y is not None else []
    return xt, y, {"source": str(images_path), "classes": classes}


def unit_range(x: np.ndarray, path: Path) -> np.ndarray:
    """uint8 → /255; 16-bit unsigned → /65535; floats must already be finite and in [0, 1]."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if x.dtype == np.uint16:
        return (x.astype(np.float64) / 65535.0).astype(np.float32)
    if np.issubdtype(x.dtype, np.bool_):
        return x.astype(np.float32)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{path}: image values of dtype {x.dtype} are not numbers")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{path} contains NaN or infinite values")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise DataError(f"{path}: values span [{x.min():.3g}, {x.max():.3g}]; expected uint8, uint16 or floats in [0, 1]")
    return x


def read_npz(path: Path):
    """NPZ with ``x``/``images`` ([N,H,W], [N,H,W,C] or [N,C,H,W]; uint8 or float in [0,1]) and
    optional ``y``/``labels``."""
    try:
        z = np.load(path, allow_pickle=False)
        files = list(z.files)
        key = next((k for k in ("x", "images", "X") if k in files), None)
        if key is None:
            raise DataError(f"{path} has arrays {files}; expected one named 'x' or 'images'")
        x = z[key]
        ykey = next((k for k in ("y", "labels") if k in files), None)
        y_raw = z[ykey] if ykey is not None else None
    except DataError:
        raise
    except Exception as exc:  # zipfile/npy format errors, object arrays refused by allow_pickle=False
        raise DataError(f"cannot read NPZ file {path}: {type(exc).__name__}: {exc}") from exc
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and (x.shape[1] not in (1, 3, 4) or x.shape[1] == x.shape[2]):
        x = x.transpose(0, 3, 1, 2)  # channels last (when ambiguous, the layout with square H, W wins)
    elif x.ndim != 4:
        raise DataError(f"{path}:{key} has shape {x.shape}; expected [N,H,W], [N,H,W,C] or [N,C,H,W]")
    x = unit_range(x, Path(f"{path}:{key}"))
    y = None
    if y_raw is not None:
        if y_raw.shape[:1] != x.shape[:1]:
            raise DataError(f"{path}: {y_raw.shape[0] if y_raw.ndim else 0} labels for {x.shape[0]} images")
        y = labels(y_raw, Path(f"{path}:{ykey}"))
    classes = [str(int(c)) for c in torch.unique(y).tolist()] if y is not None else []
    return torch.from_numpy(np.ascontiguousarray(x)), y, {"source": str(path), "classes": classes,
                                                          "files": 1, "dtype": str(z[key].dtype)}
