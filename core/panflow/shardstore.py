"""A chunked on-disk sample store: one ``.npy`` file per field per shard, plus ``index.json``.

Layout of a store directory::

    index.json                 {"fields": {name: {"shape": [...], "dtype": "float32"}}, "lengths": [...], ...}
    x-00000.npy                [n_0, *shape] for shard 0, then x-00001.npy, ...
    cond.label-00000.npy       one file per condition (``cond.<name>``), ``mask``, ``known``

:class:`ShardStore` reads it map-style, one sample per ``os.pread`` (no memory map, so the
resident set does not grow with the pages a run has touched). It is what ``panflow encode``
writes and what a training run with ``data.cache`` streams.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .components import Samples
from .errors import DataError
from .streaming import LazySamples

INDEX = "index.json"
MAX_OPEN = 64


def _fields(s: Samples) -> dict[str, torch.Tensor]:
    out = {"x": s.x, **{f"cond.{k}": v for k, v in s.cond.items()}}
    if s.mask is not None:
        out["mask"] = s.mask
    if s.known is not None:
        out["known"] = s.known
    return out


class ShardWriter:
    """Append :class:`~panflow.Samples` batches; every ``shard_size`` samples become one shard."""

    def __init__(self, out_dir: str | Path, shard_size: int = 4096, meta: dict[str, Any] | None = None):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if (self.dir / INDEX).exists():
            raise DataError(f"{self.dir} already holds a store ({INDEX}); choose another directory")
        self.shard_size, self.meta = int(shard_size), dict(meta or {})
        self.lengths: list[int] = []
        self.fields: dict[str, dict] | None = None
        self._pending: list[Samples] = []
        self._have = 0

    def append(self, s: Samples) -> None:
        f = {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in _fields(s).items()}
        if self.fields is None:
            self.fields = f
        elif f != self.fields:
            raise DataError(f"batch fields {f} differ from the store's {self.fields}")
        self._pending.append(s.to("cpu"))
        self._have += len(s)
        while self._have >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, n: int) -> None:
        whole = Samples.concat(self._pending)
        head, rest = whole.index(slice(0, n)), whole.index(slice(n, None))
        k = len(self.lengths)
        for name, v in _fields(head).items():
            np.save(self.dir / f"{name}-{k:05d}.npy", v.contiguous().numpy())
        self.lengths.append(n)
        self._pending, self._have = ([rest] if len(rest) else []), len(rest)

    def close(self) -> Path:
        """Write the last shard and the index (the store is readable only after this)."""
        if self._have:
            self._flush(self._have)
        if self.fields is None:
            raise DataError(f"nothing was written to {self.dir}")
        index = {"format": "panflow-shards-1", "fields": self.fields, "lengths": self.lengths, "meta": self.meta}
        tmp = self.dir / (INDEX + ".tmp")
        tmp.write_text(json.dumps(index, indent=1))
        os.replace(tmp, self.dir / INDEX)
        return self.dir


class ShardStore(LazySamples):
    """Map-style reader of a :class:`ShardWriter` directory: item ``i`` -> ``{"x", "cond", ...}``."""

    def __init__(self, path: str | Path, transform=None):
        self.dir = Path(path)
        try:
            index = json.loads((self.dir / INDEX).read_text())
        except FileNotFoundError as exc:
            raise DataError(f"{self.dir} is not a panflow store (no {INDEX})") from exc
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.dir / INDEX} is not valid JSON: {exc}") from exc
        if index.get("format") != "panflow-shards-1":
            raise DataError(f"{self.dir / INDEX}: unknown store format {index.get('format')!r}")
        self.fields, self.lengths, self.meta = index["fields"], [int(n) for n in index["lengths"]], index.get("meta", {})
        self.starts = np.cumsum([0, *self.lengths])
        super().__init__(int(self.starts[-1]), transform=transform)
        self._headers: dict[tuple[str, int], tuple[int, np.dtype, tuple[int, ...]]] = {}
        self._fds: dict[tuple[str, int], int] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict:  # workers open their own files
        d = dict(self.__dict__)
        d["_fds"] = {}
        return d

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} samples")
        k = int(np.searchsorted(self.starts, i, side="right") - 1)
        return k, i - int(self.starts[k])

    def _file(self, name: str, k: int) -> tuple[int, tuple[int, np.dtype, tuple[int, ...]]]:
        key = (name, k)
        if self._pid != os.getpid():  # forked worker: file descriptors are not shared state
            self._fds, self._pid = {}, os.getpid()
        if key not in self._fds:
            path = self.dir / f"{name}-{k:05d}.npy"
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(f)
                if fortran:
                    raise DataError(f"{path} is Fortran-ordered; the store writes C order")
                self._headers[key] = (f.tell(), dtype, tuple(shape[1:]))
            if len(self._fds) >= MAX_OPEN:  # bound the open files of a store with many shards
                for fd in self._fds.values():
                    os.close(fd)
                self._fds = {}
            self._fds[key] = os.open(path, os.O_RDONLY)
        return self._fds[key], self._headers[key]

    def name(self, i: int) -> str:
        k, j = self._locate(i)
        return f"{self.dir}/x-{k:05d}.npy[{j}]"

    def read(self, name: str, i: int) -> np.ndarray:
        k, j = self._locate(i)
        fd, (offset, dtype, shape) = self._file(name, k)
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        buf = os.pread(fd, size, offset + j * size)
        if len(buf) != size:
            raise DataError(f"{self.dir}/{name}-{k:05d}.npy is truncated at sample {j}")
        return np.frombuffer(buf, dtype=dtype).reshape(shape)

    def item(self, i: int) -> dict[str, Any]:
        it: dict[str, Any] = {"x": torch.from_numpy(self.read("x", i).copy()), "cond": {}}
        for name in self.fields:
            if name.startswith("cond."):
                it["cond"][name[5:]] = torch.from_numpy(self.read(name, i).copy())
            elif name != "x":
                it[name] = torch.from_numpy(self.read(name, i).copy())
        return it
