"""``train.init_from = RUN``: start a training run from another run's weights instead of a fresh
initialisation — reflow from the first flow (Liu et al. 2023 initialise the 2-rectified flow from
the 1-rectified one), a shortcut model distilled from a trained flow, plain fine-tuning.

The source's EMA weights are loaded (its raw weights when it kept no EMA). Every tensor of the
source must exist in the new model with the same shape; the new model may have parameters the
source lacks (a shortcut model's step embedding on top of a flow's backbone): those keep their
fresh initialisation and are listed. What was loaded is recorded in the new run's contract
(``init_from``), so a reader knows the run did not start from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint import find_checkpoint, load_contract, load_weights, weights_name
from .errors import CheckpointError, ConfigError, ContractError


def init_from_run(model: torch.nn.Module, run_dir: str | Path) -> dict[str, Any]:
    """Copy ``run_dir``'s newest weights into ``model`` (in place); returns the contract record
    ``{"run", "checkpoint", "step", "weights", "loaded", "fresh"}`` (``fresh``: new-model keys the
    source lacks). Raises :class:`ConfigError` for a missing run and :class:`ContractError` when a
    source tensor has no place in ``model``."""
    try:
        ckpt = find_checkpoint(run_dir)
    except CheckpointError as exc:
        raise ConfigError(f"train.init_from = '{run_dir}': {exc}") from exc
    contract = load_contract(ckpt)
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
    return {"run": str(run_dir), "checkpoint": str(ckpt), "step": step, "weights": name, "loaded": len(source),
            "fresh": fresh}
