"""Pre-encoding cache: encode a run's training set once into a :class:`~panflow.ShardStore`.

``panflow encode RUN_OR_CONFIG --out DIR`` writes::

    DIR/cache.json            format, domain, dataset, raw and model specs, encoder config and hash
    DIR/encoder.safetensors   the fitted encoder's tensors
    DIR/train/                the encoded training split (model space), one .npy per field per shard

A run with ``data.cache = "DIR"`` streams ``DIR/train`` and skips the encoder (it is loaded from
the cache, so samples decode exactly as the latents were made).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .components import DataBundle, DataSpec, Domain, Encoder, Samples
from .errors import ConfigError, ContractError, DataError
from .shardstore import ShardStore, ShardWriter
from .stats import iter_batches

CACHE_FORMAT = "panflow-latents-1"


def encoder_hash(encoder: Encoder) -> str:
    """SHA-256 of the encoder's config and tensors: which encoder made a cache."""
    h = hashlib.sha256(json.dumps(encoder.config(), sort_keys=True, default=str).encode())
    for k, v in sorted(encoder.tensors().items()):
        h.update(f"{k}:{v.dtype}:{list(v.shape)}".encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


def write_cache(out: str | Path, encoder: Encoder, train: Any, raw_spec: DataSpec, spec: DataSpec, domain: str,
                dataset: dict[str, Any], device: str | torch.device = "cpu", batch_size: int = 256,
                shard_size: int = 4096, workers: int = 0) -> Path:
    """Encode ``train`` (in memory or lazy) batch by batch on ``device`` into ``out``."""
    out = Path(out)
    if (out / "cache.json").exists():
        raise DataError(f"{out} already holds an encoded cache; choose another --out")
    writer = ShardWriter(out / "train", shard_size)
    dev = torch.device(device)
    with torch.no_grad():
        for b in iter_batches(train, batch_size, workers):
            z = encoder.encode(b.x.to(dev)).cpu()
            writer.append(Samples(z, None, b.mask, dict(b.cond), b.known))
    writer.close()
    tensors = {k: v.detach().cpu().contiguous() for k, v in encoder.tensors().items()}
    if tensors:
        save_file(tensors, str(out / "encoder.safetensors"))
    info = {"format": CACHE_FORMAT, "domain": domain, "dataset": dataset, "raw_spec": raw_spec.to_json(),
            "spec": spec.to_json(), "encoder": encoder.config(), "encoder_hash": encoder_hash(encoder),
            "samples": len(train)}
    (out / "cache.json").write_text(json.dumps(info, indent=1, default=str))
    return out


def open_cache(path: str | Path, domain: Domain, dataset: str = "") -> tuple[DataBundle, Encoder, DataSpec]:
    """The cached training set (lazy, model space), its encoder and the raw spec; checks the cache
    was made for this domain (and ``dataset`` when given) by the encoder it holds."""
    path = Path(path)
    try:
        info = json.loads((path / "cache.json").read_text())
    except FileNotFoundError as exc:
        raise DataError(f"{path} is not an encoded cache (no cache.json; make one with panflow encode)") from exc
    if info.get("format") != CACHE_FORMAT:
        raise DataError(f"{path}/cache.json: unknown cache format {info.get('format')!r}")
    if info["domain"] != domain.name:
        raise ContractError(f"cache {path} holds domain '{info['domain']}' latents, the run is '{domain.name}'")
    made_from = info.get("dataset", {}).get("name", "")
    if dataset and made_from and dataset != made_from:
        raise ConfigError(f"cache {path} was encoded from dataset '{made_from}', the run names '{dataset}'")
    f = path / "encoder.safetensors"
    encoder = domain.load_encoder(info["encoder"], load_file(str(f)) if f.exists() else {})
    if encoder_hash(encoder) != info["encoder_hash"]:
        raise ContractError(f"the encoder rebuilt from {path} differs from the one that encoded it (hash mismatch)")
    raw_spec = DataSpec.from_json(info["raw_spec"])
    train = ShardStore(path / "train")
    want = list(encoder.model_spec(raw_spec).shape)
    if train.fields["x"]["shape"] != want:
        raise ContractError(f"cache {path} holds latents of shape {train.fields['x']['shape']}, the encoder makes {want}")
    meta = {**{k: v for k, v in info.get("dataset", {}).items() if k not in ("name", "path")},
            "cache": str(path), "encoder_hash": info["encoder_hash"]}
    empty = Samples(torch.empty((0, *raw_spec.shape)))
    return DataBundle(train, empty, meta), encoder, raw_spec


def encode_source(source: str | Path, out: str | Path, device: str = "auto", batch_size: int = 256,
                  shard_size: int = 4096) -> Path:
    """``panflow encode``: ``source`` is a run directory (its fitted encoder) or a TOML run config
    (the encoder is fitted as training would fit it); writes the cache to ``out``."""
    from .assembly import assemble, load_data
    from .config import load_toml
    from .plugins import get_registry
    from .run import build_config, load_run
    from .trainer import resolve_device

    src = Path(source)
    reg = get_registry()
    if src.is_dir():
        run = load_run(src, device="cpu")
        cfg, encoder, raw_spec, spec = run.cfg, run.encoder, run.raw_spec, run.spec
        bundle = load_data(reg, cfg)
    elif src.is_file():
        d = load_toml(src)
        if "domain" not in d:
            raise ConfigError(f"config {src} names no domain (add domain = \"...\")")
        cfg = build_config(d["domain"], d.get("preset", "small"), str(src), registry=reg)
        bundle = load_data(reg, cfg)
        a = assemble(reg, cfg, bundle)
        encoder, raw_spec, spec = a.encoder, a.raw_spec, a.spec
    else:
        raise ConfigError(f"{src} is neither a run directory nor a config file")
    dataset = {"name": cfg.data.dataset, "path": cfg.data.path,
               **{k: v for k, v in bundle.meta.items() if isinstance(v, (str, int, float, bool, list, dict))}}
    return write_cache(out, encoder, bundle.train, raw_spec, spec, cfg.domain, dataset, resolve_device(device),
                       batch_size, shard_size)
