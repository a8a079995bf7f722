"""Checkpoints that carry their train/inference contract; nothing pickled, writes atomic.

A checkpoint is a directory ``checkpoints/step_XXXXXXXX/`` holding
- ``model.safetensors``, ``ema.safetensors``, ``encoder.safetensors`` (weights);
- ``state.pt`` (optimizer state, step, RNG): tensors and numbers only, read with
  ``torch.load(weights_only=True)`` so loading never executes code;
- ``contract.json``: path, schedule, prediction target, time sampler, time direction, encoder
  settings, backbone config, panflow/plugin versions.
It is written to a temporary directory and renamed into place, so a crash mid-write never
harms the previous checkpoint; ``latest`` names the newest complete one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

CONTRACT_VERSION = 1


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
    final = root / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".step_{step:08d}.", suffix=".tmp"))
    try:
        for name, sd in weights.items():
            save_file(_contiguous(sd), str(tmp / f"{name}.safetensors"))
        torch.save(state, tmp / "state.pt")
        with open(tmp / "contract.json", "w") as f:
            json.dump({**contract, "contract_version": CONTRACT_VERSION, "step": step}, f,
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
    if latest.exists():
        cand = root / latest.read_text().strip()
        if cand.is_dir():
            return cand
    done = sorted(p for p in root.glob("step_*") if p.is_dir()) if root.exists() else []
    if not done:
        raise CheckpointError(f"no checkpoint found in {run_dir} (expected {root}/step_*)")
    return done[-1]


def load_contract(ckpt: Path) -> dict[str, Any]:
    try:
        with open(Path(ckpt) / "contract.json") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{ckpt} has no contract.json: not a panflow checkpoint") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{ckpt}/contract.json is corrupted ({exc})") from exc


def load_weights(ckpt: Path, name: str) -> dict[str, torch.Tensor]:
    path = Path(ckpt) / f"{name}.safetensors"
    if not path.exists():
        raise CheckpointError(f"checkpoint {ckpt} lacks {path.name}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{path} is truncated or corrupted ({type(exc).__name__}: {exc})") from exc


def load_state(ckpt: Path) -> dict[str, Any]:
    path = Path(ckpt) / "state.pt"
    if not path.exists():
        raise CheckpointError(f"checkpoint {ckpt} lacks state.pt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is truncated or corrupted ({type(exc).__name__}: {exc})") from exc
