"""The training data of a run: in memory (encoded once, indexed) or streamed (encoded per batch).

``prepare_training`` is what :func:`panflow.train` uses: an in-memory training set takes the fast
path, exactly as before (encoded in one go); a lazy one (or a ``data.cache`` of pre-encoded
latents) is handed to the Trainer as is, with the loader options of the ``[data]`` section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .assembly import Assembly, assemble, load_data
from .components import DataBundle, Samples
from .config import RunConfig
from .datainfo import announce_data
from .latents import open_cache
from .loader import LoaderOptions
from .registry import Registry
from .streaming import is_lazy


@dataclass
class TrainingData:
    bundle: DataBundle
    assembly: Assembly
    data: Any                      # model-space Samples, or a lazy dataset (raw or cached latents)
    encode: Any  # the Encoder (x and conditions) applied on the device per batch (lazy raw data), or None
    loader: LoaderOptions


def loader_options(cfg: RunConfig) -> LoaderOptions:
    return LoaderOptions(cfg.data.workers, cfg.data.prefetch, cfg.data.max_bad_items, cfg.data.start_method)


def prepare_training(reg: Registry, cfg: RunConfig) -> TrainingData:
    """Load (or open the cache of) ``cfg``'s dataset, assemble the run and pick the data path."""
    if cfg.data.cache:
        bundle, encoder, raw_spec = open_cache(cfg.data.cache, reg.domain(cfg.domain), cfg.data.dataset)
        a = assemble(reg, cfg, bundle, encoder=encoder, raw_spec=raw_spec)
        return TrainingData(bundle, a, bundle.train, None, loader_options(cfg))
    bundle = load_data(reg, cfg)
    announce_data(cfg.data.dataset, bundle)  # files, items, split sizes: a loader that dropped data shows here
    a = assemble(reg, cfg, bundle)
    if is_lazy(bundle.train):
        return TrainingData(bundle, a, bundle.train, a.encoder, loader_options(cfg))
    with torch.no_grad():
        train_x = a.encoder.encode(bundle.train.x)
        train_cond = a.encoder.encode_cond(dict(bundle.train.cond))
    data = Samples(train_x, None, bundle.train.mask, train_cond, bundle.train.known)
    return TrainingData(bundle, a, data, None, loader_options(cfg))
