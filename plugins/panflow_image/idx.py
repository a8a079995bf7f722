"""IDX files (the MNIST / Fashion-MNIST / KMNIST format) and the folder layout their mirrors use.

A folder in the MNIST layout holds ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``
(each optionally gzipped), and optionally the ``t10k-*`` pair, which then is the held-out split.
Images come back as float32 ``[N, 1, H, W]`` in [0, 1], labels as int64 ``[N]``.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from panflow import DataError

from .values import labels, unit_range

ROLES = {"train-images": ("train", "images", 3), "train-labels": ("train", "labels", 1),
         "t10k-images": ("t10k", "images", 3), "t10k-labels": ("t10k", "labels", 1)}


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST / Fashion-MNIST format), gzipped or not."""
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a bad deflate stream is not
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


def read_idx_pair(images_path: Path, labels_path: Path | None = None):
    """``*-images-idx3-ubyte[.gz]`` and its labels: ``labels_path``, else the matching name beside it
    when present. Returns ``(x [N, 1, H, W], y [N] or None, meta)``."""
    x = read_idx(images_path)
    if x.ndim != 3:
        raise DataError(f"{images_path}: expected an [N, H, W] image array, got shape {x.shape}")
    if labels_path is None:
        labels_path = images_path.with_name(images_path.name.replace("images-idx3", "labels-idx1")
                                            .replace("images.idx3", "labels.idx1"))
    y = None
    if labels_path != images_path and labels_path.exists():
        y = read_idx(labels_path)
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{labels_path} has {y.shape[0]} labels but {images_path} has {x.shape[0]} images")
        y = labels(y, labels_path)
    xt = torch.from_numpy(unit_range(x, images_path))[:, None]
    classes = [str(int(c)) for c in torch.unique(y).tolist()] if y is not None else []
    return xt, y, {"source": str(images_path), "classes": classes}


def _names(prefix: str, kind: str, dims: int) -> list[str]:
    stems = [f"{prefix}-{kind}-idx{dims}-ubyte", f"{prefix}-{kind}.idx{dims}-ubyte"]  # the second: some mirrors
    return [s + gz for s in stems for gz in ("", ".gz")]


def mnist_layout(root: Path) -> dict[str, Path]:
    """The MNIST-layout files present in ``root`` by role (``train-images``, ...); empty if none.

    Two files for one role (e.g. plain and gzipped) are an error, not a silent pick."""
    found = {}
    for role, (prefix, kind, dims) in ROLES.items():
        hits = [root / n for n in _names(prefix, kind, dims) if (root / n).is_file()]
        if len(hits) > 1:
            raise DataError(f"{root} holds {' and '.join(h.name for h in hits)}: two files for the {role} "
                            "set; keep one")
        if hits:
            found[role] = hits[0]
    return found


def _pair(files: dict[str, Path], prefix: str, root: Path):
    images, labels_path = files.get(f"{prefix}-images"), files.get(f"{prefix}-labels")
    if images is None or labels_path is None:
        have, miss = (images, f"{prefix}-labels-idx1-ubyte[.gz]") if images else \
            (labels_path, f"{prefix}-images-idx3-ubyte[.gz]")
        raise DataError(f"{root} holds {have.name} but no {miss}; an MNIST-layout folder needs both files of "
                        "each pair (pass an images file itself to train without labels)")
    return read_idx_pair(images, labels_path)


def read_mnist_folder(root: Path):
    """``(x, y, x_test, y_test, meta)`` from an MNIST-layout folder; the test pair is None when absent."""
    files = mnist_layout(root)
    if "train-images" not in files and "train-labels" not in files:
        raise DataError(f"{root} holds {', '.join(p.name for p in files.values())} but no "
                        "train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] pair to train on")
    x, y, meta = _pair(files, "train", root)
    xt = yt = None
    if "t10k-images" in files or "t10k-labels" in files:
        xt, yt, _ = _pair(files, "t10k", root)
        if xt.shape[1:] != x.shape[1:]:
            raise DataError(f"{files['t10k-images']} holds {xt.shape[2]}x{xt.shape[3]} images but "
                            f"{files['train-images']} holds {x.shape[2]}x{x.shape[3]}; both splits need one size")
    classes = torch.unique(y if yt is None else torch.cat([y, yt])).tolist()
    meta = {**meta, "source": str(root), "classes": [str(int(c)) for c in classes],
            "files": [p.name for p in files.values()]}
    return x, y, xt, yt, meta
