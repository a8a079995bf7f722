"""Checks shared by the image readers: class labels and value ranges (into float32 [0, 1])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from panflow import DataError

MAX_CLASSES = 100_000


def labels(y: np.ndarray, path: Path) -> torch.Tensor:
    """Class labels as int64 ``[N]``: integers in [0, MAX_CLASSES), else a clear error."""
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        raise DataError(f"{path}: labels must be a 1-D integer array, got {y.dtype} of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise DataError(f"{path}: labels span [{y.min()}, {y.max()}]; class labels must be integers in "
                        f"[0, {MAX_CLASSES})")
    return torch.from_numpy(y.astype(np.int64))


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
