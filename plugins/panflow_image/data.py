"""Image datasets: scikit-learn's bundled digits (default), folders of PNG/JPEG, MNIST-layout
folders and IDX files, NPZ files.

Raw space is float32 ``[N, C, H, W]`` in [0, 1]; labels ``[N]`` int64 when known. Splits are
deterministic (a seeded permutation). Bad input is an error (or a warning) that names the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from panflow import DataBundle, DataError, DatasetOptions, Samples

from .folder import DEFAULT_MAX_GB, IMAGE_SUFFIXES, read_folder  # noqa: F401  (IMAGE_SUFFIXES: public)
from .idx import mnist_layout, read_idx_pair, read_mnist_folder
from .values import MAX_CLASSES, labels, unit_range  # noqa: F401  (MAX_CLASSES: public)

OPTIONS = ("resolution", "mode", "max_gb")


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


def fixed_split(x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor, meta: dict) -> DataBundle:
    """A split the data came with (MNIST's t10k files): ``data.val_fraction`` does not apply."""
    meta = {**meta, "n_train": x.shape[0], "n_val": xv.shape[0], "split": "given",
            "hash": dataset_hash(torch.cat([x, xv]), torch.cat([y, yv])), "shape": list(x.shape[1:])}
    return DataBundle(Samples(x, y), Samples(xv, yv), meta)


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
    """Dispatch on what ``opts.path`` is: a folder in the MNIST layout, a folder of images, an IDX
    file, or an NPZ file."""
    _check_options(opts)
    path = Path(opts.path)
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if path.is_dir() and mnist_layout(path):
        x, y, xt, yt, meta = read_mnist_folder(path)
        x = resize(x, opts.options.get("resolution"))
        if xt is None:
            return split(x, y, opts.val_fraction, opts.seed, meta)
        return fixed_split(x, y, resize(xt, opts.options.get("resolution")), yt, meta)
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
