"""Lazy datasets: data larger than memory, read one sample (or one shard) at a time.

A plugin's ``Dataset.load`` may put either form into ``DataBundle.train``/``val`` instead of an
in-memory :class:`~panflow.Samples`:

- :class:`LazySamples` — map-style: ``index -> item`` (a zarr/xarray chunk, one decoded file, ...);
- :class:`ShardedSamples` — an iterable over shards (JSONL, ``.npz``, tar files): ``read(shard)``
  decodes one whole shard into :class:`~panflow.Samples`.

An *item* is a dict ``{"x": [*shape], "cond": {name: [...]}, "mask": ..., "known": ...}`` (tensors
or numpy arrays; only ``x`` is required). Decoding and ``transform`` run in DataLoader workers. An
item or shard that fails to decode becomes a :class:`BadItem` naming it, never an exception in a
worker: the loader counts it against ``data.max_bad_items`` (see :mod:`panflow.loader`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .components import Samples
from .errors import DataError

Item = dict[str, Any]


@dataclass(frozen=True)
class BadItem:
    """An item or shard that failed to decode: its index, its name (file, key) and the error."""

    index: int
    name: str
    error: str

    def describe(self) -> str:
        return f"{self.name}: {self.error}"


def _tensor(v: Any) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))


def as_item(obj: Any) -> Item:
    """Normalise what a reader returned (a dict, or a bare ``x``) to an item of tensors."""
    if not isinstance(obj, dict):
        obj = {"x": obj}
    if "x" not in obj:
        raise DataError(f"a lazy dataset item needs 'x'; got keys {sorted(obj)}")
    item: Item = {"x": _tensor(obj["x"]), "cond": {k: _tensor(v) for k, v in dict(obj.get("cond") or {}).items()}}
    for k in ("mask", "known"):
        if obj.get(k) is not None:
            item[k] = _tensor(obj[k])
    return item


class LazySamples(torch.utils.data.Dataset):
    """Map-style lazy dataset of ``length`` samples: ``get(i) -> item`` runs in a worker.

    Subclass and override :meth:`item` (and :meth:`name`), or pass ``get`` (and ``name``).
    ``transform(item) -> item`` (cropping, resampling, ...) runs after decoding, in the worker.
    ``get``/``transform`` must be picklable when workers are spawned (module-level functions or
    objects); file handles should be opened lazily inside ``get`` (each worker opens its own).
    """

    def __init__(self, length: int, get: Callable[[int], Any] | None = None,
                 name: Callable[[int], str] | None = None, transform: Callable[[Item], Item] | None = None):
        self.length, self._get, self._name, self.transform = int(length), get, name, transform

    def __len__(self) -> int:
        return self.length

    def item(self, i: int) -> Any:
        if self._get is None:
            raise NotImplementedError("LazySamples needs get=... or an item() override")
        return self._get(i)

    def items(self, indices: list[int]) -> list[Any]:
        """Items ``indices`` at once; override when the store reads a batch faster (e.g. a zarr
        ``oindex`` selection fetches its chunks concurrently). Default: one :meth:`item` each."""
        return [self.item(i) for i in indices]

    def name(self, i: int) -> str:
        """How a person finds item ``i`` (a file name, a store key); default ``item i``."""
        return self._name(i) if self._name is not None else f"item {i}"

    def __getitems__(self, indices: list[int]) -> list[Item | BadItem]:
        """The DataLoader's batched fetch; when the batch read fails, items are read one by one
        so the bad one is found and named."""
        try:
            got = [as_item(it) for it in self.items([int(i) for i in indices])]
            if len(got) != len(indices):
                raise DataError(f"items() returned {len(got)} items for {len(indices)} indices")
            return [as_item(self.transform(it)) for it in got] if self.transform is not None else got
        except Exception:
            return [self[i] for i in indices]

    def __getitem__(self, i: int) -> Item | BadItem:
        i = int(i)
        try:
            item = as_item(self.item(i))
            return as_item(self.transform(item)) if self.transform is not None else item
        except Exception as exc:  # reported by name and counted by the loader
            return BadItem(i, self.name(i), f"{type(exc).__name__}: {exc}".splitlines()[0])


class ShardedSamples(torch.utils.data.Dataset):
    """Iterable-over-shards lazy dataset: ``read(shard) -> Samples`` decodes one whole shard.

    ``lengths`` (samples per shard) let the loader place a resumed run mid-epoch without reading
    what came before; when omitted they are counted once with ``count(shard)`` (default: read it).
    A shard that cannot be counted is a :class:`BadItem` from the start (see :attr:`bad`).
    """

    def __init__(self, shards: Sequence[str], read: Callable[[str], Samples],
                 lengths: Sequence[int] | None = None, count: Callable[[str], int] | None = None,
                 transform: Callable[[Item], Item] | None = None):
        self.shards = [str(s) for s in shards]
        if not self.shards:
            raise DataError("ShardedSamples got no shards")
        self.read, self.transform = read, transform
        self.bad: list[BadItem] = []
        if lengths is None:
            lengths = []
            for k, s in enumerate(self.shards):
                try:
                    lengths.append(int(count(s)) if count is not None else len(read(s)))
                except Exception as exc:
                    self.bad.append(BadItem(k, s, f"{type(exc).__name__}: {exc}".splitlines()[0]))
                    lengths.append(0)
        if len(lengths) != len(self.shards):
            raise DataError(f"ShardedSamples: {len(lengths)} lengths for {len(self.shards)} shards")
        self.lengths = [int(n) for n in lengths]

    def __len__(self) -> int:
        return sum(self.lengths)

    def load_shard(self, k: int) -> Samples | BadItem:
        """Shard ``k`` decoded (and transformed item by item); a :class:`BadItem` if it fails."""
        name = self.shards[k]
        try:
            s = self.read(name)
            if len(s) != self.lengths[k]:
                raise DataError(f"holds {len(s)} samples, {self.lengths[k]} were counted")
            if self.transform is not None:
                s = collate([as_item(self.transform(it)) for it in items_of(s)])
            return s
        except Exception as exc:
            return BadItem(k, name, f"{type(exc).__name__}: {exc}".splitlines()[0])

    def __getitem__(self, i: int) -> Item:  # random access reads a whole shard: for small draws only
        k = 0
        while i >= self.lengths[k]:
            i -= self.lengths[k]
            k += 1
        s = self.load_shard(k)
        if isinstance(s, BadItem):
            raise DataError(f"shard {s.describe()}")
        return next(iter(items_of(s.index(slice(i, i + 1)))))


def is_lazy(data: Any) -> bool:
    """True for the lazy forms (the streamed path); an in-memory Samples takes the fast path."""
    return isinstance(data, (LazySamples, ShardedSamples))


def items_of(s: Samples):
    """The items (one dict per sample) of an in-memory Samples."""
    for i in range(len(s)):
        it: Item = {"x": s.x[i], "cond": {k: v[i] for k, v in s.cond.items()}}
        if s.mask is not None:
            it["mask"] = s.mask[i]
        if s.known is not None:
            it["known"] = s.known[i]
        yield it


def collate(items: Sequence[Item]) -> Samples:
    """Stack items into a :class:`~panflow.Samples` (every item must carry the same fields)."""
    if not items:
        raise DataError("cannot collate an empty batch")
    first = items[0]

    def stack(get, what):
        vals = [get(it) for it in items]
        if all(v is None for v in vals):
            return None
        if any(v is None for v in vals):
            raise DataError(f"items of one batch disagree on whether they carry {what}")
        try:
            return torch.stack(vals)
        except RuntimeError as exc:
            raise DataError(f"items of one batch have different {what} shapes: {exc}") from exc

    cond = {k: stack(lambda it, k=k: it["cond"].get(k), f"cond['{k}']") for k in first["cond"]}
    return Samples(stack(lambda it: it["x"], "x"), None, stack(lambda it: it.get("mask"), "mask"), cond,
                   stack(lambda it: it.get("known"), "known"))


def draw_subset(data: Any, n: int, seed: int = 0) -> Samples:
    """A seeded, bounded in-memory draw of ``min(n, len(data))`` samples (held-out sets, encoder fits).

    Map-style: a seeded choice of indices, read in index order (sequential reads). Sharded: whole
    shards in a seeded order until ``n`` samples, then a seeded choice among them. In-memory data:
    the same seeded choice of rows. Bad items are skipped and reported only if nothing is left.
    """
    total = len(data)
    if total == 0:
        raise DataError("cannot draw from an empty dataset")
    n = min(int(n), total)
    g = torch.Generator().manual_seed(int(seed))
    if isinstance(data, Samples):
        return data.index(torch.randperm(total, generator=g)[:n].sort().values)
    if isinstance(data, LazySamples):
        idx = torch.randperm(total, generator=g)[:n].sort().values.tolist()
        got = [data[i] for i in idx]
        items = [it for it in got if not isinstance(it, BadItem)]
        if not items:
            raise DataError("no item of the draw could be decoded: " + got[0].describe())
        return collate(items)
    if isinstance(data, ShardedSamples):
        parts, have, bad = [], 0, []
        for k in torch.randperm(len(data.shards), generator=g).tolist():
            s = data.load_shard(k)
            if isinstance(s, BadItem):
                bad.append(s)
                continue
            parts.append(s)
            have += len(s)
            if have >= n:
                break
        if not parts:
            raise DataError("no shard of the draw could be decoded: " + bad[0].describe())
        pool = Samples.concat(parts)
        return pool.index(torch.randperm(len(pool), generator=g)[:n].sort().values)
    raise DataError(f"cannot draw samples from a {type(data).__name__}")


def heldout(data: Any, n: int, seed: int = 0) -> Samples:
    """The evaluation set: ``n`` held-out samples drawn (seeded) from a lazy or in-memory split."""
    return draw_subset(data, n, seed)
