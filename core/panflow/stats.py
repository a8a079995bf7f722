"""Encoder statistics without loading everything: Welford moments and the encoder fit policy.

``fit_encoder`` decides how an encoder sees the training set: all of it in memory (the fast
path), all of it as a stream (``fits_streaming`` encoders, e.g. :class:`StandardEncoder`), or a
bounded, seeded subset; the returned record goes into the checkpoint contract (``encoder_fit``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from .components import DataSpec, Encoder, Samples
from .errors import DataError
from .streaming import BadItem, LazySamples, ShardedSamples, collate, draw_subset, is_lazy


class RunningMoments:
    """Per-channel mean and variance over batches, merged exactly (Chan et al. 1979, the
    parallel form of Welford 1962), in float64. ``update(x)`` takes ``x [B, C, ...]``
    (channel axis ``dim``); ``mean``/``var`` are ``[C]`` (population variance)."""

    def __init__(self, dim: int = 1):
        self.dim, self.count = dim, 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double().movedim(self.dim, -1).reshape(-1, x.shape[self.dim])
        n = x.shape[0]
        if n == 0:
            return
        mean = x.mean(0)
        m2 = ((x - mean) ** 2).sum(0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        tot = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / tot)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / tot)
        self.count = tot

    @property
    def var(self) -> torch.Tensor:
        if self.mean is None:
            raise DataError("no samples seen: the statistics are undefined")
        return self.m2 / self.count


class StandardEncoder(Encoder):
    """Per-channel standardisation ``(x - mean) / std`` (raw ``x [N, C, ...]``), fitted from a stream.

    A generic encoder for continuous fields whose channels have different units (temperature,
    pressure, wind): ``fit_stream`` sees every training sample once without holding them.
    """

    fits_streaming = True

    def __init__(self, channel_dim: int = 1, eps: float = 1e-8):
        self.channel_dim, self.eps = channel_dim, eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, train: Samples) -> None:
        self.fit_stream([train])

    def fit_stream(self, batches: Iterable[Samples]) -> None:
        m = RunningMoments(self.channel_dim)
        for b in batches:
            m.update(b.x)
        self.mean, self.std = m.mean.float(), (m.var.sqrt() + self.eps).float()

    def _shape(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[self.channel_dim] = -1
        return v.to(x.device, x.dtype).reshape(shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise DataError("StandardEncoder used before fit")
        return (x - self._shape(self.mean, x)) / self._shape(self.std, x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z * self._shape(self.std, z) + self._shape(self.mean, z)

    def model_spec(self, raw: DataSpec) -> DataSpec:
        return raw

    def config(self) -> dict[str, Any]:
        return {"type": "standard", "channel_dim": self.channel_dim, "eps": self.eps}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.mean is None else {"mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def load(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> StandardEncoder:
        enc = cls(int(config.get("channel_dim", 1)), float(config.get("eps", 1e-8)))
        enc.mean, enc.std = tensors["mean"], tensors["std"]
        return enc


def iter_batches(data: Any, batch_size: int = 256, workers: int = 0) -> Iterator[Samples]:
    """Every sample of ``data`` once, in storage order, as in-memory batches (bad items raise)."""
    if isinstance(data, Samples):
        for i in range(0, len(data), batch_size):
            yield data.index(slice(i, i + batch_size))
    elif isinstance(data, LazySamples):
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, num_workers=workers, collate_fn=list)
        for items in loader:
            for it in items:
                if isinstance(it, BadItem):
                    raise DataError(f"could not decode {it.describe()}")
            yield collate(items)
    elif isinstance(data, ShardedSamples):
        for k in range(len(data.shards)):
            s = data.load_shard(k)
            if isinstance(s, BadItem):
                raise DataError(f"could not decode shard {s.describe()}")
            yield from iter_batches(s, batch_size)
    else:
        raise DataError(f"cannot iterate a {type(data).__name__}")


def fit_encoder(encoder: Encoder, train: Any, seed: int = 0, max_samples: int | None = None) -> dict[str, Any]:
    """Fit ``encoder`` on ``train`` and return what it saw (for the contract's ``encoder_fit``)."""
    if not is_lazy(train):
        encoder.fit(train)
        return {"mode": "all", "samples": len(train)}
    if getattr(encoder, "fits_streaming", False):
        encoder.fit_stream(iter_batches(train))
        return {"mode": "stream", "samples": len(train)}
    n = int(max_samples or getattr(encoder, "fit_samples", 4096))
    sub = draw_subset(train, n, seed)
    encoder.fit(sub)
    return {"mode": "subset", "samples": len(sub), "of": len(train), "seed": seed}
