"""Clips read one at a time (``data.options.lazy = true``): video folders larger than memory.

Each item decodes one source in a DataLoader worker: one video file, one clip folder, or one row of
an NPY array opened memory-mapped. Only the first source is decoded up front (for the shape); a
source that later fails (too short, another size, unreadable) becomes a :class:`panflow.BadItem`
naming the file, counted against ``data.max_bad_items``. The split is by source, seeded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from panflow import DataBundle, DataError, DatasetOptions, LazySamples

from .video_io import FRAME_SUFFIXES, VIDEO_SUFFIXES, read_frames, read_video


def list_sources(path: Path) -> list[str]:
    """The clips under ``path`` without decoding them: video files, clip folders or ``file.npy[i]``."""
    if path.is_file():
        if path.suffix.lower() == ".npy":
            n = np.load(path, mmap_mode="r").shape[0]
            return [f"{path}[{i}]" for i in range(n)]
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return [str(path)]
        raise DataError(f"{path}: lazy reading takes a folder, a video file or an NPY array (NPZ cannot be "
                        "memory-mapped: save it with numpy.save)")
    kids = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    videos = [str(p) for p in kids if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    clips = [str(p) for p in kids if p.is_dir() and any(f.suffix.lower() in FRAME_SUFFIXES for f in p.iterdir())]
    if videos and clips:
        raise DataError(f"{path} mixes video files and clip folders; use one kind")
    if not (videos or clips):
        raise DataError(f"{path} holds no clip folders and no video files")
    return videos or clips


class ClipReader:
    """``reader(i) -> {"x": float [T, C, H, W]}`` for source ``i`` (picklable for spawned workers)."""

    def __init__(self, sources: list[str], policy: dict, shape: tuple[int, ...] | None = None):
        self.sources, self.policy, self.shape = sources, policy, shape

    def decode(self, name: str) -> np.ndarray:
        if name.endswith("]") and ".npy[" in name:
            file, idx = name[:-1].rsplit("[", 1)
            return np.asarray(np.load(file, mmap_mode="r")[int(idx)])
        p = Path(name)
        return read_frames(p, self.policy["mode"]) if p.is_dir() else read_video(p, self.policy["mode"])[0]

    def __call__(self, i: int) -> dict:
        from .data import _clip_windows

        name = self.sources[i]
        clip = self.decode(name)
        if clip.ndim == 3:
            clip = clip[..., None]
        x = _clip_windows(name, clip, self.policy)[0]
        if self.shape is not None and tuple(x.shape) != self.shape:
            raise DataError(f"{name}: clip is {list(x.shape)} [T, C, H, W], the dataset's is {list(self.shape)}; "
                            "set data.options.resolution")
        return {"x": x}

    def name(self, i: int) -> str:
        return self.sources[i]


def _subset(reader: ClipReader, idx: torch.Tensor) -> LazySamples:
    sub = ClipReader([reader.sources[int(i)] for i in idx], reader.policy, reader.shape)
    return LazySamples(len(sub.sources), sub, sub.name)


def load_lazy(path: Path, policy: dict, opts: DatasetOptions) -> DataBundle:
    sources = list_sources(path)
    if len(sources) < 2:
        raise DataError(f"{path}: need at least 2 clips, found {len(sources)}")
    if not 0 < opts.val_fraction < 1:
        raise DataError(f"data.val_fraction must be in (0, 1), got {opts.val_fraction}")
    shape = tuple(ClipReader(sources, policy)(0)["x"].shape)
    reader = ClipReader(sources, policy, shape)
    perm = torch.randperm(len(sources), generator=torch.Generator().manual_seed(opts.seed))
    n_val = max(1, int(round(len(sources) * opts.val_fraction)))
    meta = {"source": str(path), "policy": policy, "n_train": len(sources) - n_val, "n_val": n_val,
            "shape": list(shape), "fps": 8.0 / policy["stride"], "lazy": True}
    return DataBundle(_subset(reader, perm[n_val:]), _subset(reader, perm[:n_val]), meta)
