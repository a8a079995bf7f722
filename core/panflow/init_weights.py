"""``train.init_from = RUN``: start a training run from another run's weights instead of a fresh
initialisation — reflow from the first flow (Liu et al. 2023 initialise the 2-rectified flow from
the 1-rectified one), a shortcut model distilled from a trained flow, plain fine-tuning.

The source's EMA weights are loaded (its raw weights when it kept no EMA). Every tensor of the
source must exist in the new model with the same shape; the new model may have parameters the
source lacks (a shortcut model's step embedding on top of a flow's backbone): those keep their
fresh initialisation and are listed. The source must be of the same domain, path schedule and
prediction target (weights that fit but mean another field are refused). What was loaded is recorded
in the new run's contract (``init_from``: resolved path, step, checksum of the weights file), so a
reader knows the run did not start from scratch, and a resumed run keeps that record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint import find_checkpoint, load_contract, load_weights, sha256_file, weights_name
from .errors import CheckpointError, ConfigError, ContractError


def _same_field(source: dict[str, Any], target: dict[str, Any], run_dir: str | Path) -> None:
    """Refuse a source whose weights would mean another field: domain, schedule, prediction."""
    def parts(c: dict[str, Any]) -> dict[str, Any]:
        obj = c.get("objective") or {}
        return {"domain": c.get("domain"), "path schedule": (obj.get("path") or {}).get("schedule"),
                "prediction": obj.get("prediction")}
    src, tgt = parts(source), parts(target)
    differ = [f"{k} {src[k]!r} there, {tgt[k]!r} here" for k in src if src[k] != tgt[k]]
    if differ:
        raise ContractError(f"train.init_from = '{run_dir}': that run learned another field ({'; '.join(differ)})")


def init_from_run(model: torch.nn.Module, run_dir: str | Path, contract: dict[str, Any] | None = None) -> dict[str, Any]:
    """Copy ``run_dir``'s newest weights into ``model`` (in place); returns the contract record
    ``{"run", "checkpoint", "step", "weights", "sha256", "loaded", "fresh"}`` (``fresh``: new-model
    keys the source lacks). ``contract`` (the new run's) is checked against the source's domain,
    schedule and prediction. Raises :class:`ConfigError` for a missing run and
    :class:`ContractError` for another field or a source tensor with no place in ``model``."""
    try:
        ckpt = find_checkpoint(run_dir)
    except CheckpointError as exc:
        raise ConfigError(f"train.init_from = '{run_dir}': {exc}") from exc
    contract_src = load_contract(ckpt)
    if contract is not None:
        _same_field(contract_src, contract, run_dir)
    contract = contract_src
    name = weights_name(ckpt, contract, use_ema=True)
    source = load_weights(ckpt, name)
    target = model.state_dict()
    unexpected = sorted(set(source) - set(target))
    mismatched = sorted(k for k in source if k in target and tuple(source[k].shape) != tuple(target[k].shape))
    if unexpected or mismatched:
        detail = "; ".join(
            ([f"{len(unexpected)} tensor(s) the new model lacks, e.g. {unexpected[:3]}"] if unexpected else [])
            + [f"'{k}' is {tuple(source[k].shape)} there, {tuple(target[k].shape)} here" for k in mismatched[:3]])
        raise ContractError(f"train.init_from = '{run_dir}': its weights ({ckpt}, backbone "
                            f"'{(contract.get('backbone') or {}).get('name', '?')}') do not fit this model: {detail}")
    fresh = sorted(set(target) - set(source))
    model.load_state_dict({**target, **source})
    step = int(ckpt.name[5:]) if ckpt.name.startswith("step_") and ckpt.name[5:].isdigit() else None
    return {"run": str(Path(run_dir).resolve()), "checkpoint": str(Path(ckpt).resolve()), "step": step, "weights": name,
            "sha256": sha256_file(Path(ckpt) / f"{name}.safetensors"), "loaded": len(source), "fresh": fresh}
