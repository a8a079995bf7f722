"""Checkpoints that carry their train/inference contract; nothing pickled, writes atomic.

A checkpoint is a directory ``checkpoints/step_XXXXXXXX/`` holding
- ``model.safetensors``, ``ema.safetensors``, ``encoder.safetensors`` (weights);
- ``state.pt`` (optimizer state, step, RNG): tensors and numbers only, read with
  ``torch.load(weights_only=True)`` so loading never executes code;
- ``contract.json``: path, schedule, prediction target, time sampler, time direction, encoder
  settings, backbone config, panflow/plugin versions.
It is written to a temporary directory and renamed into place, so a crash mid-write never
harms the previous checkpoint; ``latest`` names the newest complete one. The contract records the
SHA-256 of every file it lists, verified on load (a flipped bit is an error, not garbage samples);
temporary directories left by a killed writer are removed by the next write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

CONTRACT_VERSION = 1
LOAD_KEYS = ("domain", "config", "objective", "data_spec", "raw_spec", "encoder", "backbone")
STEP_NAME = re.compile(r"step_\d{8}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _clean_leftovers(root: Path) -> None:
    """Remove what a writer killed mid-checkpoint left behind (``.step_*.tmp``, ``.latest.*.tmp``)."""
    for p in root.glob(".step_*.tmp"):
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".latest.*.tmp"):
        p.unlink(missing_ok=True)


def _contiguous(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, step: int, contract: dict[str, Any],
                    weights: dict[str, dict[str, torch.Tensor]], state: dict[str, Any],
                    keep: int = 3) -> Path:
    """Write ``weights`` (name -> state dict) and ``state`` atomically; prune to ``keep`` newest."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(root)
    final = root / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".step_{step:08d}.", suffix=".tmp"))
    try:
        for name, sd in weights.items():
            save_file(_contiguous(sd), str(tmp / f"{name}.safetensors"))
        torch.save(state, tmp / "state.pt")
        sums = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        with open(tmp / "contract.json", "w") as f:
            json.dump({**contract, "contract_version": CONTRACT_VERSION, "step": step, "sha256": sums}, f,
                      indent=2, sort_keys=True, default=str)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fd, ptr = tempfile.mkstemp(dir=root, prefix=".latest.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(final.name)
    os.replace(ptr, root / "latest")
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(run_dir: Path | str) -> Path:
    """The newest complete checkpoint of a run (or ``run_dir`` itself if it is a checkpoint)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if (run_dir / "contract.json").exists():
        return run_dir
    root = run_dir / "checkpoints"
    latest = root / "latest"
    if latest.is_file():
        name = latest.read_text().strip()
        if not STEP_NAME.fullmatch(name):
            raise CheckpointError(f"{latest} names {name[:80]!r}, not a checkpoint of this run (step_XXXXXXXX)")
        cand = root / name
        if cand.is_dir():
            return cand
    done = sorted(p for p in root.glob("step_*") if p.is_dir() and STEP_NAME.fullmatch(p.name)) if root.exists() else []
    if not done:
        raise CheckpointError(f"no checkpoint found in {run_dir} (expected {root}/step_*)")
    return done[-1]


def load_contract(ckpt: Path) -> dict[str, Any]:
    try:
        with open(Path(ckpt) / "contract.json") as f:
            contract = json.load(f)
        if not isinstance(contract, dict):
            raise CheckpointError(f"{ckpt}/contract.json holds a {type(contract).__name__}, not a JSON object")
        return contract
    except FileNotFoundError as exc:
        raise CheckpointError(f"{ckpt} has no contract.json: not a panflow checkpoint") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{ckpt}/contract.json is corrupted ({exc})") from exc


def verify(ckpt: Path, filename: str) -> None:
    """Check ``filename`` against the SHA-256 its contract recorded (older contracts have none)."""
    try:
        sums = load_contract(ckpt).get("sha256") or {}
    except CheckpointError:
        return  # a checkpoint directory without a contract: nothing recorded to verify against
    if not isinstance(sums, dict) or filename not in sums:
        return
    if sha256_file(Path(ckpt) / filename) != sums[filename]:
        raise CheckpointError(f"{Path(ckpt) / filename} is truncated or corrupted: its SHA-256 differs from the "
                              "one recorded in contract.json (changed after it was written)")


def weights_name(ckpt: Path, contract: dict[str, Any], use_ema: bool = True) -> str:
    """``ema`` when the run kept an EMA and it is wanted (its absence is an error), else ``model``."""
    kept = float((contract.get("train") or {}).get("ema_decay", 0) or 0) > 0
    if use_ema and kept:
        if not (Path(ckpt) / "ema.safetensors").exists():
            raise CheckpointError(f"checkpoint {ckpt} was trained with an EMA (train.ema_decay > 0) but lacks "
                                  "ema.safetensors; it is incomplete (pass use_ema=False for the raw weights)")
        return "ema"
    if use_ema and (Path(ckpt) / "ema.safetensors").exists():
        return "ema"
    return "model"


def load_weights(ckpt: Path, name: str) -> dict[str, torch.Tensor]:
    path = Path(ckpt) / f"{name}.safetensors"
    if not path.exists():
        raise CheckpointError(f"checkpoint {ckpt} lacks {path.name}")
    verify(ckpt, path.name)
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{path} is truncated or corrupted ({type(exc).__name__}: {exc})") from exc


def load_state(ckpt: Path) -> dict[str, Any]:
    path = Path(ckpt) / "state.pt"
    if not path.exists():
        raise CheckpointError(f"checkpoint {ckpt} lacks state.pt")
    verify(ckpt, "state.pt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is truncated or corrupted ({type(exc).__name__}: {exc})") from exc


def require_keys(contract: dict[str, Any], keys: tuple[str, ...], ckpt: Path) -> None:
    """Refuse a contract that lacks a section (or whose section is not an object) a loader needs."""
    missing = [k for k in keys if k not in contract]
    if missing:
        raise CheckpointError(f"{ckpt}/contract.json lacks {', '.join(missing)}: not a complete panflow run")
    bad = [k for k in keys if not isinstance(contract[k], str if k == "domain" else dict)]
    if bad:
        raise CheckpointError(f"{ckpt}/contract.json: {', '.join(bad)} has the wrong type "
                              "(domain: a string; the other sections: JSON objects)")
