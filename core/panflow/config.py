"""Typed run configuration: dataclasses, read from TOML, overridable per key (``train.lr=3e-4``)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownNameError
from .sampling import SampleOptions
from .time_samplers import TIME_SAMPLERS

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
    workers: int = 2           # DataLoader worker processes for lazy (streamed) datasets
    prefetch: int = 2          # batches each worker prepares ahead
    max_bad_items: int = 0     # lazy data: items/shards that may fail to decode and be skipped
    start_method: str = ""     # DataLoader workers: "" (fork on Linux) | spawn | forkserver
    cache: str = ""            # a `panflow encode` directory: stream its latents, skip the encoder


@dataclass
class EncoderConfig:
    options: dict = field(default_factory=dict)   # domain encoder settings (e.g. latent=true)
    fit_samples: int = 0       # lazy data: samples a non-streaming encoder is fitted on (0 = its default)


@dataclass
class ModelConfig:
    backbone: str = ""         # "" = the domain's default
    options: dict = field(default_factory=dict)   # backbone keyword arguments


@dataclass
class FlowConfig:
    schedule: str = "linear"   # linear | cosine | vp-linear | vp-cosine | vp-sigmoid (masked: linear | cosine)
    prediction: str = "velocity"
    time_sampler: str = "uniform"  # uniform | logit_normal | shifted | u_shaped | plugin-added (register_time_sampler)
    logit_mean: float = 0.0
    logit_std: float = 1.0
    time_shift: float = 3.0
    u_shape: float = 4.0       # u_shaped: p(t) ∝ cosh(a(t − ½)), a = this (Lee et al. 2024)
    time_sampler_options: dict = field(default_factory=dict)  # keyword options of the sampler (over the keys above)
    label_dropout: float = 0.1  # training dropout of the class label (classifier-free guidance)
    cond_dropout: dict = field(default_factory=dict)  # {condition: p}: overrides the domain's dropout
    known: str = ""            # known-part sampler ("" = the domain's default): none | prefix | random
    known_options: dict = field(default_factory=dict)
    per_element_time: bool = False  # independent training times per element (needs a time_shape)
    objective: str = ""        # a registered objective ("" = the domain's): flow | masked | plugin-added
    objective_options: dict = field(default_factory=dict)  # keyword options of that objective (e.g. shortcut)
    coupling: str = "independent"  # noise-data pairing in training: independent | ot | ot-exact (panflow.coupling)
    coupling_options: dict = field(default_factory=dict)  # keyword options of the coupling's pair function
    block_size: int = 0        # masked: block diffusion with blocks of this many tokens (0 = whole sequence, MDLM)


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
    stop_check_every: int = 1  # torchrun: all-reduce the stop (signal) flag every N steps
    dist_timeout_s: float = 600.0  # torchrun: longest wait of any collective (join, barrier) before an error
    tensorboard: bool = False
    init_from: str = ""        # a run directory: start from its (EMA) weights, e.g. reflow (panflow.init_weights)


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
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                try:  # a TOML-quoted string (``--set train.device='"cpu"'``) means its content
                    return tomllib.loads(f"v = {value}")["v"]
                except tomllib.TOMLDecodeError:
                    pass
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


# -- value checks: a nonsensical value is an error naming the key, never silently accepted --------
CHOICES = {"train.optimizer": ("adam", "adamw"), "train.lr_schedule": ("constant", "cosine"),
           "train.amp": ("auto", "bf16", "off"), "train.strategy": ("ddp", "fsdp"),
           "flow.time_sampler": TIME_SAMPLERS}  # the live table: plugins' registered samplers included
# key: (lowest, highest, lowest allowed, highest allowed) as an interval check
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "train.steps": (0, math.inf, True, False), "train.batch_size": (1, math.inf, True, False),
    "train.lr": (0, math.inf, False, False), "train.weight_decay": (0, math.inf, True, False),
    "train.beta1": (0, 1, True, False), "train.beta2": (0, 1, True, False),
    "train.warmup_steps": (0, math.inf, True, False), "train.min_lr_ratio": (0, 1, True, True),
    "train.grad_clip": (0, math.inf, True, False), "train.accumulation": (1, math.inf, True, False),
    "train.ema_decay": (0, 1, True, False), "train.log_every": (1, math.inf, True, False),
    "train.checkpoint_every": (0, math.inf, True, False), "train.keep_checkpoints": (0, math.inf, True, False),
    "train.max_bad_steps": (0, math.inf, True, False), "train.stop_check_every": (1, math.inf, True, False),
    "train.dist_timeout_s": (0, math.inf, False, False), "data.val_fraction": (0, 1, False, False),
    "flow.label_dropout": (0, 1, True, False), "flow.logit_std": (0, math.inf, False, False),
    "flow.time_shift": (0, math.inf, False, False), "flow.u_shape": (0, math.inf, False, False),
    "sample.nfe": (1, math.inf, True, False),
    "sample.guidance": (0, math.inf, True, False), "sample.noise_scale": (0, math.inf, True, False),
    "sample.n": (1, math.inf, True, False),
    "sample.resample": (1, math.inf, True, False),
    "flow.block_size": (0, math.inf, True, False), "sample.temperature": (0, math.inf, True, False),
    "sample.top_p": (0, 1, False, True), "sample.order_noise": (0, math.inf, True, False),
    "sample.remask": (0, 1, True, True),
}


def _get(cfg: RunConfig, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _interval(lo: float, hi: float, lo_in: bool, hi_in: bool) -> str:
    return f"{'[' if lo_in else '('}{lo:g}, {'∞' if hi == math.inf else f'{hi:g}'}{']' if hi_in else ')'}"


def validate(cfg: RunConfig, solvers: tuple[str, ...] = ()) -> RunConfig:
    """Refuse values that cannot mean anything (negative lr, ``ema_decay`` ≥ 1, ``val_fraction`` 1.5,
    an unknown optimizer/strategy/solver ...); returns ``cfg``."""
    for key, (lo, hi, lo_in, hi_in) in RANGES.items():
        v = _get(cfg, key)
        ok = (v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi) and not (isinstance(v, float) and math.isnan(v))
        if not ok:
            raise ConfigError(f"config key '{key}' = {v!r} is out of range; expected a value in "
                              f"{_interval(lo, hi, lo_in, hi_in)}")
    for key, known in CHOICES.items():
        if _get(cfg, key) not in known:
            raise ConfigError(str(UnknownNameError(f"value of '{key}'", _get(cfg, key), known)))
    check_options(TIME_SAMPLERS[cfg.flow.time_sampler].__init__, cfg.flow.time_sampler_options,  # [0] is self
                  "flow.time_sampler_options", f"time sampler '{cfg.flow.time_sampler}'")
    if solvers and cfg.sample.solver not in solvers:
        raise ConfigError(str(UnknownNameError("value of 'sample.solver'", cfg.sample.solver, solvers)))
    from .potentials import check_potential_options, get_potential  # refuse a bad [sample] before training

    check_potential_options(cfg.sample.potentials)
    for name in cfg.sample.potentials:
        try:
            get_potential(name)
        except UnknownNameError as e:
            raise ConfigError(f"sample.potentials: {e}") from None
    dev = cfg.train.device
    if dev != "auto" and not (dev in ("cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(f"config key 'train.device' = {dev!r}: expected auto, cpu, cuda, cuda:N or mps")
    return cfg


def check_options(fn: Any, options: dict[str, Any], prefix: str, owner: str) -> None:
    """Refuse keyword options (config keys ``prefix.NAME``) that ``fn``, e.g. a backbone's build
    function, does not take; the error names the key, its owner and the closest known one."""
    target = fn.resolve() if hasattr(fn, "resolve") else fn
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)][1:]
    for k in options:
        if k not in known:
            raise ConfigError(str(UnknownNameError(f"config key (for {owner})", f"{prefix}.{k}",
                                                   [f"{prefix}.{n}" for n in known])))
