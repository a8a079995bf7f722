"""The named components a plugin contributes, as plain dataclasses.

Tensor conventions: a batch of continuous samples is ``x: [B, *shape]`` (float); a batch of
discrete samples is ``x: [B, L]`` (int64 token ids). Optional ``y: [B]`` class labels and
``mask: [B, *shape]`` (1 = real, 0 = padding) travel with it in :class:`Samples`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .errors import DataError


@dataclass(frozen=True)
class DataSpec:
    """What the model sees: continuous tensors of ``shape`` or token ids over ``vocab_size``."""

    kind: Literal["continuous", "discrete"]
    shape: tuple[int, ...]
    vocab_size: int | None = None
    num_classes: int = 0  # >0: samples carry class labels usable for conditioning

    def __post_init__(self) -> None:
        if self.kind not in ("continuous", "discrete"):
            raise ValueError(f"DataSpec.kind must be 'continuous' or 'discrete', not {self.kind!r}")
        if self.kind == "discrete" and not self.vocab_size:
            raise ValueError("a discrete DataSpec needs vocab_size")

    def to_json(self) -> dict:
        return {"kind": self.kind, "shape": list(self.shape), "vocab_size": self.vocab_size,
                "num_classes": self.num_classes}

    @classmethod
    def from_json(cls, d: dict) -> DataSpec:
        return cls(d["kind"], tuple(d["shape"]), d.get("vocab_size"), d.get("num_classes", 0))


@dataclass
class Samples:
    """A set of samples held in memory: ``x [N, ...]``, optional ``y [N]`` and ``mask``."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        for name in ("y", "mask"):
            v = getattr(self, name)
            if v is not None and v.shape[0] != n:
                raise DataError(f"Samples.{name} has {v.shape[0]} rows but x has {n}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def index(self, idx: torch.Tensor | slice) -> Samples:
        return Samples(self.x[idx], None if self.y is None else self.y[idx],
                       None if self.mask is None else self.mask[idx])

    def to(self, device: torch.device | str) -> Samples:
        return Samples(self.x.to(device), None if self.y is None else self.y.to(device),
                       None if self.mask is None else self.mask.to(device))


@dataclass
class DataBundle:
    """A loaded dataset: raw-space train and validation samples plus facts about them."""

    train: Samples
    val: Samples
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. class names, source files, hash


@dataclass(frozen=True)
class DatasetOptions:
    """How to load a dataset: a user path (``--data``), a split seed and domain options."""

    path: str | None = None
    val_fraction: float = 0.1
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)


class Encoder:
    """Maps raw data to model space and back. Subclasses override what they need.

    ``fit`` sees the raw training samples once; ``config``/``tensors`` are what a checkpoint
    stores (JSON and safetensors), and the domain's ``load_encoder`` rebuilds it from them.
    """

    def fit(self, train: Samples) -> None:
        """Learn encoder state from raw training samples (default: nothing to learn)."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def model_spec(self, raw: DataSpec) -> DataSpec:
        """The spec of encoded data (default: unchanged)."""
        return raw

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}


@dataclass
class Domain:
    """A kind of data and everything needed to train, sample and evaluate on it.

    - ``data_spec(bundle)`` gives the raw-space spec of a loaded dataset;
    - ``make_encoder(config)`` builds an (unfitted) encoder, ``load_encoder(config, tensors)``
      rebuilds a fitted one from a checkpoint;
    - ``write_samples(samples, out_dir, meta=dataset_meta)`` writes generated samples in the domain's
      file format (``meta`` is the dataset meta the checkpoint recorded, e.g. a tokenizer);
    - ``evaluate(ctx)`` returns a score card (see :mod:`panflow.scorecard`);
    - ``presets`` maps preset name to config overrides (``{"train.steps": 200, ...}``);
    - ``backbone_presets`` maps preset name to backbone name to that backbone's options, used when
      the user gives no ``model.options`` of their own.
    """

    name: str
    description: str
    default_dataset: str
    default_backbone: str
    data_spec: Callable[[DataBundle], DataSpec]
    make_encoder: Callable[[dict[str, Any]], Encoder]
    load_encoder: Callable[[dict[str, Any], dict[str, torch.Tensor]], Encoder]
    write_samples: Callable[..., list]
    objective: Literal["flow", "masked"] = "flow"
    evaluate: Callable[..., Any] | None = None
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    backbone_presets: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    plugin: str = ""


@dataclass
class Dataset:
    """A named dataset of a domain. ``load(options)`` returns a :class:`DataBundle`."""

    name: str
    domain: str
    load: Callable[[DatasetOptions], DataBundle]
    description: str = ""
    plugin: str = ""


@dataclass
class Backbone:
    """A network ``build(spec, **kwargs) -> nn.Module`` usable by any domain whose spec fits.

    The module's forward is ``model(x_t, t, cond=None) -> out`` with ``out`` shaped like
    ``x_t`` (continuous) or ``[B, L, vocab]`` logits (discrete).
    """

    name: str
    build: Callable[..., torch.nn.Module]
    kinds: tuple[str, ...] = ("continuous",)
    accepts: Callable[[DataSpec], bool] | None = None
    description: str = ""
    plugin: str = ""

    def fits(self, spec: DataSpec) -> bool:
        if spec.kind not in self.kinds:
            return False
        return True if self.accepts is None else bool(self.accepts(spec))


@dataclass
class Metric:
    """``fn(real: Samples, generated: Samples, seed: int) -> dict[str, float]`` for a domain."""

    name: str
    domain: str
    fn: Callable[..., dict[str, float]]
    higher_is_better: bool = False
    description: str = ""
    plugin: str = ""


@dataclass
class Benchmark:
    """A recipe: ``run(preset, out_dir, seed) -> dict`` (a JSON-able result with a score card)."""

    name: str
    domain: str
    run: Callable[..., dict[str, Any]]
    description: str = ""
    presets: tuple[str, ...] = ("smoke", "small", "full")
    plugin: str = ""
