"""The streamed data path: torch ``DataLoader`` over a lazy dataset, one global batch per step.

Order is a pure function of ``(seed, epoch, step)``, so a resumed run reads exactly what the
uninterrupted run read, whatever the number of workers:

- map-style (:class:`~panflow.streaming.LazySamples`): the epochs' seeded permutations are laid end
  to end as one stream; step ``s`` takes the global batch ``stream[s·B : (s+1)·B]`` and rank ``r``
  reads only its slice ``r`` of it. Every epoch is every index once, the ranks' shares are disjoint,
  and a 2-rank run reads the same global batches as a 1-rank run.
- sharded (:class:`~panflow.streaming.ShardedSamples`): each epoch's seeded shard permutation is
  dealt to the ranks (``perm[r::world]``); each rank streams its shards (items shuffled within a
  shard, seeded by epoch and shard) and takes ``B / world`` samples per step. Workers decode whole
  shards; the DataLoader hands them back in request order, so the stream does not depend on them.

Bad items and shards are counted against ``max_bad`` and reported by name; past it the run stops.
Batches arrive as :class:`~panflow.Samples` on the training device, encoded there.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .components import Samples
from .errors import DataError
from .streaming import BadItem, LazySamples, ShardedSamples, collate, items_of


@dataclass(frozen=True)
class LoaderOptions:
    """``workers`` DataLoader processes, ``prefetch`` batches per worker, ``max_bad`` items/shards
    that may be skipped (0: the first one stops the run), ``start_method`` of the workers (spawn
    or forkserver for readers that are not fork-safe). Pinned memory is used on CUDA."""

    workers: int = 2
    prefetch: int = 2
    max_bad: int = 0
    start_method: str = ""  # "" = torch's default (fork on Linux) | spawn | forkserver


def _seed(*parts: int) -> int:
    h = 0x9E3779B9
    for p in parts:
        h = (h * 1_000_003 + int(p) + 1) % (2**61 - 1)
    return h


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The seeded order of epoch ``epoch`` over ``n`` items (int64 ``[n]``)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, epoch)))


class StepBatches(torch.utils.data.Sampler):
    """Yields, for steps ``start, start+1, ...``, this rank's slice of the global batch's indices."""

    def __init__(self, n: int, global_batch: int, rank: int, world: int, seed: int, start: int = 0):
        self.n, self.B, self.rank, self.world, self.seed, self.start = n, global_batch, rank, world, seed, start
        self.per_rank = global_batch // world
        self._epoch, self._perm = -1, None

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, epoch_permutation(self.n, self.seed, epoch)
        return self._perm

    def indices(self, step: int) -> list[int]:
        """Rank-local indices of ``step`` (a pure function of seed, step and the sizes)."""
        lo = step * self.B + self.rank * self.per_rank
        out = []
        for o in range(lo, lo + self.per_rank):
            out.append(int(self._order(o // self.n)[o % self.n]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while True:
            yield self.indices(step)
            step += 1


class _Fetch(torch.utils.data.Dataset):
    """Item ``i``, or when it fails the next index that decodes (at most ``max_bad`` tries)."""

    def __init__(self, data: LazySamples, max_bad: int):
        self.data, self.max_bad = data, max_bad

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int, first: Any = None):
        bad = []
        for k in range(self.max_bad + 1):
            it = first if k == 0 and first is not None else self.data[(i + k) % len(self.data)]
            if not isinstance(it, BadItem):
                return it, bad
            bad.append(it)
        return None, bad

    def __getitems__(self, indices: list[int]):
        return [self.__getitem__(i, it) for i, it in zip(indices, self.data.__getitems__(list(indices)))]


def _collate_fetched(batch):
    bad = [b.describe() for _, got in batch for b in got]
    items = [it for it, _ in batch if it is not None]
    s = collate(items) if len(items) == len(batch) else None
    return {"samples": None if s is None else _as_dict(s), "bad": bad}


def _worker_init(worker_id: int) -> None:
    # Collect inherited garbage (e.g. a finished loader iterator of the parent) now, not inside the
    # first decode: on CPython 3.11 a finalizer run by the GC during ``ast.literal_eval`` (numpy's
    # .npy header parser) has been seen to raise "AST constructor recursion depth mismatch".
    gc.collect()


def _as_dict(s: Samples) -> dict:
    return {"x": s.x, "mask": s.mask, "cond": s.cond, "known": s.known}


def _from_dict(d: dict) -> Samples:
    return Samples(d["x"], None, d["mask"], d["cond"], d["known"])


class Feeder:
    """Base of the two feeders: ``batch(step)`` is this rank's encoded samples of ``step``."""

    def __init__(self, global_batch: int, rank: int, world: int, seed: int, device: torch.device,
                 encode: Callable[[torch.Tensor], torch.Tensor] | None, opts: LoaderOptions):
        if global_batch % world:
            raise DataError(f"global batch {global_batch} is not divisible by {world} ranks")
        self.B, self.rank, self.world, self.seed = global_batch, rank, world, seed
        self.device, self.encode, self.opts = device, encode, opts
        self.per_rank = global_batch // world
        self.bad: list[str] = []
        self.stall_s = 0.0  # time spent waiting for data (the training loop was idle)
        self._it: Iterator | None = None
        self._next = -1

    def _loader(self, dataset, **kw) -> torch.utils.data.DataLoader:
        w = max(0, int(self.opts.workers))
        extra = {"prefetch_factor": max(1, self.opts.prefetch), "worker_init_fn": _worker_init} if w else {}
        if w and self.opts.start_method:
            import multiprocessing

            extra["multiprocessing_context"] = multiprocessing.get_context(self.opts.start_method)
        if w:
            gc.collect()  # forked workers must not inherit garbage (see _worker_init)
        # an explicit generator: creating the loader must not consume the global RNG (bit-exact resume)
        return torch.utils.data.DataLoader(dataset, num_workers=w, pin_memory=self.device.type == "cuda",
                                           generator=torch.Generator().manual_seed(_seed(self.seed, 7)),
                                           **extra, **kw)

    def _count_bad(self, names: list[str]) -> None:
        if not names:
            return
        self.bad.extend(names)
        if len(self.bad) > self.opts.max_bad:
            raise DataError(f"could not decode {self.bad[-1]} ({len(self.bad)} bad so far, budget "
                            f"data.max_bad_items={self.opts.max_bad}; raise it to skip bad items)")

    def _deliver(self, s: Samples) -> Samples:
        """Move a raw batch to the device and encode it there: an :class:`~panflow.Encoder` encodes
        ``x`` and its conditions (``encode_cond``); a plain function encodes ``x`` only."""
        s = s.to(self.device)
        if self.encode is not None:
            with torch.no_grad():
                if hasattr(self.encode, "encode_cond"):
                    s = Samples(self.encode.encode(s.x), None, s.mask, self.encode.encode_cond(dict(s.cond)), s.known)
                else:
                    s = Samples(self.encode(s.x), None, s.mask, dict(s.cond), s.known)
        return s

    def batch(self, step: int) -> Samples:
        if self._it is None or step != self._next:
            self.close()
            self._it = self._start(step)
        t0 = time.perf_counter()
        s = self._take()
        self.stall_s += time.perf_counter() - t0
        self._next = step + 1
        return self._deliver(s)

    def close(self) -> None:
        self._it = None  # dropping the iterator shuts its workers down


class MapFeeder(Feeder):
    """Streams a map-style :class:`LazySamples` (see the module docstring for the order)."""

    def __init__(self, data: LazySamples, *args, **kw):
        super().__init__(*args, **kw)
        self.data = data
        self.n = len(data)

    def sampler(self, start: int = 0) -> StepBatches:
        return StepBatches(self.n, self.B, self.rank, self.world, self.seed, start)

    def _start(self, step: int) -> Iterator:
        return iter(self._loader(_Fetch(self.data, self.opts.max_bad), batch_sampler=self.sampler(step),
                                 collate_fn=_collate_fetched))

    def _take(self) -> Samples:
        got = next(self._it)
        self._count_bad(got["bad"])
        if got["samples"] is None:  # only when the budget is exhausted, which raised above
            raise DataError(f"could not decode an item of this batch: {got['bad'][-1]}")
        return _from_dict(got["samples"])


def rank_shards(n_shards: int, rank: int, world: int, seed: int, epoch: int) -> list[int]:
    """The shards rank ``rank`` reads in epoch ``epoch`` (disjoint across ranks, all of them in union)."""
    return epoch_permutation(n_shards, seed, epoch)[rank::world].tolist()


class _ShardStream(torch.utils.data.IterableDataset):
    """One rank's shards from ``(epoch, position)`` on, each decoded and shuffled in a worker."""

    def __init__(self, data: ShardedSamples, rank: int, world: int, seed: int, epoch: int, pos: int):
        self.data, self.rank, self.world, self.seed, self.epoch, self.pos = data, rank, world, seed, epoch, pos

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        k, epoch, pos = 0, self.epoch, self.pos
        while True:
            order = rank_shards(len(self.data.shards), self.rank, self.world, self.seed, epoch)
            for j in order[pos:]:
                if self.data.lengths[j] == 0:  # empty, or found bad when counted (reported once)
                    continue
                if k % nw == w:
                    yield self._decode(j, epoch)
                k += 1
            epoch, pos = epoch + 1, 0

    def _decode(self, j: int, epoch: int) -> dict:
        s = self.data.load_shard(j)
        if isinstance(s, BadItem):
            return {"samples": None, "bad": [s.describe()]}
        perm = torch.randperm(len(s), generator=torch.Generator().manual_seed(_seed(self.seed, epoch, j, 11)))
        return {"samples": _as_dict(s.index(perm)), "bad": []}


class ShardFeeder(Feeder):
    """Streams a :class:`ShardedSamples` (see the module docstring for the order)."""

    def __init__(self, data: ShardedSamples, *args, **kw):
        super().__init__(*args, **kw)
        self.data = data
        if len(data.shards) < self.world:
            raise DataError(f"{len(data.shards)} shard(s) cannot give {self.world} ranks disjoint shares")
        self._count_bad([b.describe() for b in data.bad])
        if sum(data.lengths) == 0:
            raise DataError("no shard holds any sample")
        self._buf: list[Samples] = []
        self._have = 0

    def _locate(self, offset: int) -> tuple[int, int, int]:
        """(epoch, shard position, items to skip) of this rank's ``offset``-th sample."""
        epoch = 0
        while True:
            order = rank_shards(len(self.data.shards), self.rank, self.world, self.seed, epoch)
            total = sum(self.data.lengths[j] for j in order)
            if total == 0:
                raise DataError(f"rank {self.rank} has no samples in epoch {epoch}: too few or empty shards")
            if offset < total:
                for p, j in enumerate(order):
                    if offset < self.data.lengths[j]:
                        return epoch, p, offset
                    offset -= self.data.lengths[j]
            offset -= total
            epoch += 1

    def _start(self, step: int) -> Iterator:
        epoch, pos, skip = self._locate(step * self.per_rank)
        self._buf, self._have, self._skip = [], 0, skip
        return iter(self._loader(_ShardStream(self.data, self.rank, self.world, self.seed, epoch, pos),
                                 batch_size=None))

    def _take(self) -> Samples:
        while self._have < self.per_rank:
            got = next(self._it)
            self._count_bad(got["bad"])
            if got["samples"] is None:
                self._skip = 0
                continue
            s = _from_dict(got["samples"])
            if self._skip:
                s, self._skip = s.index(slice(self._skip, None)), 0
            self._buf.append(s)
            self._have += len(s)
        whole = Samples.concat(self._buf) if len(self._buf) > 1 else self._buf[0]
        out, rest = whole.index(slice(0, self.per_rank)), whole.index(slice(self.per_rank, None))
        self._buf, self._have = ([rest] if len(rest) else []), len(rest)
        return out


def make_feeder(data, global_batch: int, rank: int, world: int, seed: int, device: torch.device,
                encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                opts: LoaderOptions | None = None) -> Feeder:
    """The feeder for a lazy dataset (map-style or sharded)."""
    args = (global_batch, rank, world, seed, device, encode, opts or LoaderOptions())
    if isinstance(data, LazySamples):
        return MapFeeder(data, *args)
    if isinstance(data, ShardedSamples):
        return ShardFeeder(data, *args)
    raise DataError(f"cannot stream a {type(data).__name__}: give LazySamples or ShardedSamples")


__all__ = ["Feeder", "LoaderOptions", "MapFeeder", "ShardFeeder", "StepBatches", "epoch_permutation",
           "items_of", "make_feeder", "rank_shards"]
