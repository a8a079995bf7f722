"""``--resume`` keeps the run's contract: it continues the saved config, refuses a changed
setting (listing every difference) unless the setting is safe to change mid-run, and records the
safe changes in the contract's ``history``. Everything is checked before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import find_checkpoint, load_contract, load_state
from .config import RunConfig, apply_overrides, config_from_dict, load_toml
from .errors import CheckpointError, ConfigError, ContractError, PanflowError

# Settings that do not change what is trained: the length of the run, cadences, progress, limits.
SAFE_KEYS = frozenset({"train.steps", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
                       "train.progress", "train.tensorboard", "train.stop_check_every", "train.dist_timeout_s"})
SAFE_PREFIXES = ("sample.",)  # sampling defaults: used after training only
# Contract sections that must match the data and model rebuilt for the resumed run.
DATA_KEYS = ("domain", "data_spec", "raw_spec", "objective", "backbone", "dataset")


@dataclass
class ResumePlan:
    """What a resume continues: the saved contract, the step reached and the contract history."""

    checkpoint: Path
    contract: dict[str, Any]
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` → ``{"train.lr": 1}`` (options tables too)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _norm(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def saved_run(run_dir: str | Path) -> tuple[Path, dict[str, Any], RunConfig]:
    """The newest checkpoint of ``run_dir``, its contract and the config it was trained with."""
    try:
        ckpt = find_checkpoint(run_dir)
    except CheckpointError as exc:
        raise ConfigError(f"cannot resume: {exc}") from exc
    contract = load_contract(ckpt)
    if not isinstance(contract.get("config"), dict):
        raise ContractError(f"cannot resume: {ckpt}/contract.json has no 'config' object")
    try:
        cfg = config_from_dict(contract["config"])
    except PanflowError as exc:
        raise ContractError(f"cannot resume: the config in {ckpt}/contract.json is invalid: {exc}") from exc
    return ckpt, contract, cfg


def resumed_config(run_dir: str | Path, config_file: str | None = None, explicit: dict[str, Any] | None = None,
                   overrides: list[str] | None = None) -> RunConfig:
    """The saved config of ``run_dir`` with only what the user gave explicitly applied on top
    (a config file, named flags, ``--set``), so that ``--resume`` never falls back to preset defaults."""
    _, _, cfg = saved_run(run_dir)
    if config_file:
        file_cfg = load_toml(config_file)
        file_cfg.pop("domain", None)
        apply_overrides(cfg, flatten(file_cfg))
    apply_overrides(cfg, {k: v for k, v in (explicit or {}).items() if v is not None})
    apply_overrides(cfg, list(overrides or []))
    return cfg


def differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    a, b = flatten(_norm(old)), flatten(_norm(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _listing(diffs: dict[str, tuple[Any, Any]], limit: int = 12) -> str:
    items = [f"{k}: {old!r} -> {new!r}" for k, (old, new) in diffs.items()]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def plan_resume(cfg: RunConfig, run_dir: str | Path) -> ResumePlan:
    """Check ``cfg`` against the run's saved config; refuse unsafe changes, record safe ones."""
    ckpt, contract, saved = saved_run(run_dir)
    diffs = differences(saved.to_dict(), cfg.to_dict())
    unsafe = {k: v for k, v in diffs.items() if k not in SAFE_KEYS and not k.startswith(SAFE_PREFIXES)}
    if unsafe:
        raise ConfigError(f"cannot resume {run_dir} with a different config ({_listing(unsafe)}); --resume "
                          f"continues the saved config (see {Path(run_dir) / 'config.toml'}); only "
                          f"{', '.join(sorted(SAFE_KEYS))} and sample.* may change")
    step = int(contract.get("step", load_state(ckpt).get("step", 0)))
    if cfg.train.steps < step:
        raise ConfigError(f"cannot resume {run_dir} with train.steps={cfg.train.steps}: its checkpoint is "
                          f"already at step {step}")
    history = list(contract.get("history", []))
    if diffs:
        history.append({"step": step, "changed": {k: [old, new] for k, (old, new) in diffs.items()}})
    return ResumePlan(ckpt, contract, step, history)


def check_same_data(plan: ResumePlan, contract: dict[str, Any]) -> None:
    """Refuse a resume whose rebuilt data/model contract differs from the checkpoint's (changed
    files under ``--data``, another data shape), before anything is written."""
    diffs = {}
    for key in DATA_KEYS:
        if key in plan.contract or key in contract:
            d = differences({key: plan.contract.get(key)}, {key: contract.get(key)})
            diffs.update(d)
    if diffs:
        raise ContractError(f"cannot resume from {plan.checkpoint}: the data or model it was trained on "
                            f"differs now ({_listing(diffs)})")
