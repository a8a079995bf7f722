"""Reflow (Liu, Gong & Liu 2023, "Flow Straight and Fast"): train a new flow on a trained model's own
(noise, sample) pairs, whose straight-line interpolations cross far less than independent pairs.

``panflow reflow RUN --out DIR --n N`` integrates ``N`` noise draws through ``RUN``'s model in chunks
and streams each chunk to disk as it is made, in the format of ``panflow encode`` (a latent cache:
``DIR/cache.json``, the encoder, ``DIR/train/`` shards in model space) with the noise beside each
sample (``cond.reflow_noise``). Training on it with ``data.cache = DIR`` and ``flow.coupling =
"reflow"`` gives the 2-rectified flow: the coupling takes each sample's own noise instead of a
fresh draw. Class labels are drawn in turn and kept with the pairs; tensor contexts are not
supported (the model would need the contexts it should be conditioned on).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .components import Samples
from .errors import ConfigError, DataError
from .latents import CACHE_FORMAT, encoder_hash
from .sampling import SampleOptions
from .shardstore import ShardWriter
from .solvers import get_solver

NOISE_KEY = "reflow_noise"


def pair_chunks(objective: Any, model: torch.nn.Module, shape: tuple[int, ...], n: int, opts: SampleOptions,
                chunk: int = 4096, seed: int = 0, device: torch.device | str = "cpu") -> Iterator[tuple[Samples, int]]:
    """``(Samples(x1 [m, *shape], cond={..., "reflow_noise": x0}), nfe)`` chunk by chunk: ``x1`` is the
    objective's ODE solution from ``x0``. Chunk ``i`` draws its noise from a generator seeded by
    ``(seed, i)``, so the pairs are a function of the arguments; class labels are taken in turn."""
    if n < 1 or chunk < 1:
        raise ConfigError(f"reflow needs n >= 1 and chunk >= 1, got n={n}, chunk={chunk}")
    if not hasattr(objective, "field") or not hasattr(objective, "path"):
        raise ConfigError(f"reflow needs a flow objective, not '{getattr(objective, 'kind', type(objective).__name__)}'")
    tensors = [c.name for c in objective.conditions if c.kind != "label"]
    if tensors:
        raise ConfigError(f"reflow of a model with tensor conditions {tensors} is not supported (their contexts "
                          "would have to come with the noise)")
    solver = get_solver(opts.solver)
    model.eval()
    with torch.no_grad():
        for i, start in enumerate(range(0, n, chunk)):
            m = min(chunk, n - start)
            g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + i)
            x0 = torch.randn((m, *shape), generator=g, device=device)
            cond = {c.name: torch.arange(start, start + m, device=device) % c.num_classes for c in objective.conditions}
            field = objective.field(model, cond or None, opts, batch=m, device=device)
            res = solver.run(field, x0, opts, path=objective.path, generator=g)
            yield Samples(res.x.cpu(), cond={**{k: v.cpu() for k, v in cond.items()}, NOISE_KEY: x0.cpu()}), res.nfe


def write_pairs(run: Any, out: str | Path, n: int, opts: SampleOptions | None = None, chunk: int = 4096,
                seed: int = 0, shard_size: int = 4096) -> Path:
    """Write ``n`` (noise, sample) pairs of ``run`` (a :class:`panflow.Run`) to the cache ``out``,
    each chunk to disk before the next is drawn (memory: one chunk)."""
    out = Path(out)
    if (out / "cache.json").exists():
        raise DataError(f"{out} already holds a cache; choose another --out")
    opts = opts or run.options()
    chunks = pair_chunks(run.objective, run.model, tuple(run.spec.shape), n, opts, chunk, seed, run.device)
    t0 = time.perf_counter()
    first, nfe = next(chunks)  # bad settings fail before anything is written
    writer = ShardWriter(out / "train", shard_size)
    writer.append(first)
    for part, _ in chunks:
        writer.append(part)
    writer.close()
    enc = run.encoder
    weights = {k: v.detach().cpu().contiguous() for k, v in enc.tensors().items()}
    if weights:
        save_file(weights, str(out / "encoder.safetensors"))
    info = {"format": CACHE_FORMAT, "domain": run.domain.name, "dataset": run.contract.get("dataset", {}),
            "raw_spec": run.raw_spec.to_json(), "spec": run.spec.to_json(), "encoder": enc.config(),
            "encoder_hash": encoder_hash(enc), "samples": n,
            "reflow": {"run": str(run.run_dir), "solver": opts.solver, "nfe": nfe, "seed": seed, "chunk": chunk,
                       "noise_key": NOISE_KEY, "wall_s": time.perf_counter() - t0}}
    (out / "cache.json").write_text(json.dumps(info, indent=1, default=str))
    return out
