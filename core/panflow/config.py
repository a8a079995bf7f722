"""Typed run configuration: dataclasses, read from TOML, overridable per key (``train.lr=3e-4``)."""

from __future__ import annotations

import copy
import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownNameError
from .sampling import SampleOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class DataConfig:
    dataset: str = ""          # registered dataset name ("" = the domain's default)
    path: str = ""             # the user's own data (--data); overrides the dataset's source
    val_fraction: float = 0.1
    seed: int = 0              # split seed
    options: dict = field(default_factory=dict)


@dataclass
class EncoderConfig:
    options: dict = field(default_factory=dict)   # domain encoder settings (e.g. latent=true)


@dataclass
class ModelConfig:
    backbone: str = ""         # "" = the domain's default
    options: dict = field(default_factory=dict)   # backbone keyword arguments


@dataclass
class FlowConfig:
    schedule: str = "linear"   # linear | cosine | vp-linear | vp-cosine | vp-sigmoid (masked: linear | cosine)
    prediction: str = "velocity"
    time_sampler: str = "uniform"  # uniform | logit_normal | shifted
    logit_mean: float = 0.0
    logit_std: float = 1.0
    time_shift: float = 3.0
    label_dropout: float = 0.1  # training dropout of the class label (classifier-free guidance)
    cond_dropout: dict = field(default_factory=dict)  # {condition: p}: overrides the domain's dropout
    known: str = ""            # known-part sampler ("" = the domain's default): none | prefix | random
    known_options: dict = field(default_factory=dict)
    per_element_time: bool = False  # independent training times per element (needs a time_shape)
    objective: str = ""        # a registered objective ("" = the domain's): flow | masked | plugin-added


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 256      # global batch (split across ranks and accumulation)
    lr: float = 1e-3
    optimizer: str = "adamw"   # adam | adamw
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # constant | cosine
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0     # 0 = off
    accumulation: int = 1
    ema_decay: float = 0.999   # 0 = off
    ema_warmup: bool = False   # decay min(ema_decay, (1+n)/(10+n)) at step n: for short runs
    amp: str = "auto"          # auto (bf16 on CUDA) | bf16 | off
    tf32: bool = True
    compile: bool = False
    device: str = "auto"       # auto | cpu | cuda | cuda:N
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 0  # 0 = only at the end
    keep_checkpoints: int = 3
    max_bad_steps: int = 0     # >0: skip up to this many non-finite steps instead of stopping
    progress: bool = True
    strategy: str = "ddp"      # ddp | fsdp (used when launched by torchrun with WORLD_SIZE > 1)
    tensorboard: bool = False


@dataclass
class SampleConfig(SampleOptions):
    """The ``[sample]`` section: :class:`panflow.SampleOptions` plus how many samples and the seed."""

    n: int = 64
    seed: int = 0


@dataclass
class RunConfig:
    domain: str = ""
    preset: str = "small"
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, typ: Any, key: str) -> Any:
    if isinstance(value, str) and typ is not str:
        try:
            value = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            pass
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    elif typ is dict:
        if isinstance(value, dict):
            return copy.deepcopy(value)  # never alias a preset's dict (later keys mutate it)
    elif typ is list:
        if isinstance(value, (list, tuple)):
            return list(value)
    else:
        return value
    raise ConfigError(f"config key '{key}' expects {typ.__name__}, got {value!r} ({type(value).__name__})")


def set_key(cfg: Any, key: str, value: Any) -> None:
    """Set a dotted key (``train.lr``, ``model.options.depth``) with type checking."""
    parts = key.split(".")
    obj, prefix = cfg, []
    for i, part in enumerate(parts):
        prefix.append(part)
        if isinstance(obj, dict):
            rest = ".".join(parts[i:])
            if isinstance(value, str):
                try:
                    value = tomllib.loads(f"v = {value}")["v"]
                except tomllib.TOMLDecodeError:
                    pass
            obj[rest] = value
            return
        names = [f.name for f in dataclasses.fields(obj)]
        if part not in names:
            raise ConfigError(str(UnknownNameError("config key", ".".join(prefix),
                                                   [".".join([*prefix[:-1], n]) for n in names])))
        if i == len(parts) - 1:
            hints = typing.get_type_hints(type(obj))
            typ = hints[part]
            if dataclasses.is_dataclass(typ):
                if not isinstance(value, dict):
                    raise ConfigError(f"config section '{key}' expects a table, got {value!r}")
                for k, v in value.items():
                    set_key(getattr(obj, part), k, v)
            else:
                setattr(obj, part, _coerce(value, typ, key))
            return
        obj = getattr(obj, part)


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any] | list[str]) -> RunConfig:
    """Apply ``{"train.lr": 3e-4}`` or ``["train.lr=3e-4", ...]`` (values parsed as TOML)."""
    if isinstance(overrides, list):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            k, v = item.split("=", 1)
            pairs[k.strip()] = v.strip()
        overrides = pairs
    for k, v in overrides.items():
        set_key(cfg, k, v)
    return cfg


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def config_from_dict(d: dict[str, Any]) -> RunConfig:
    cfg = RunConfig()
    for k, v in d.items():
        set_key(cfg, k, v)
    return cfg


def save_toml(cfg: RunConfig, path: str | Path) -> None:
    import tomli_w

    Path(path).write_text(tomli_w.dumps(cfg.to_dict()))
