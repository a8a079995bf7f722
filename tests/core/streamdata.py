"""Lazy test datasets whose samples carry their own index (``x[:, 0] == index``) — shared by the
streaming tests and the 2-rank worker."""

from pathlib import Path

import numpy as np
import torch

from panflow import LazySamples, Samples, ShardedSamples


def row(i: int) -> torch.Tensor:
    """Sample ``i``: ``[i, sin(i)]`` (float32, so ``x[0]`` recovers the index exactly)."""
    return torch.tensor([float(i), float(np.sin(i))])


class IndexedLazy(LazySamples):
    """Map-style: item ``i`` is :func:`row` ``(i)``; indices in ``bad`` fail to decode."""

    def __init__(self, n: int, bad: tuple[int, ...] = ()):
        super().__init__(n)
        self.bad = set(bad)

    def item(self, i):
        if i in self.bad:
            raise ValueError("corrupt chunk")
        return {"x": row(i)}

    def name(self, i):
        return f"chunk-{i:03d}.bin"


def read_npz(path: str) -> Samples:
    with np.load(path) as z:
        return Samples(torch.from_numpy(z["x"]))


def write_shards(root: Path, n_shards: int, per_shard: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_shards):
        p = root / f"shard-{k:03d}.npz"
        np.savez(p, x=torch.stack([row(k * per_shard + j) for j in range(per_shard)]).numpy())
        paths.append(str(p))
    return paths


def sharded(root: Path, n_shards: int = 8, per_shard: int = 12) -> ShardedSamples:
    return ShardedSamples(write_shards(root, n_shards, per_shard), read_npz, lengths=[per_shard] * n_shards)


def record_indices(trainer, log: list, scale: float = 1.0) -> None:
    """Wrap the trainer's feeder so every batch it hands out is logged as a list of indices
    (``scale``: what the encoder multiplied ``x`` by)."""
    orig = trainer.feeder.batch

    def batch(step):
        s = orig(step)
        log.append((step, (s.x[:, 0] / scale).round().long().tolist()))
        return s

    trainer.feeder.batch = batch
