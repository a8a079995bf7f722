"""The named components a plugin contributes, as plain dataclasses.

Tensor conventions: a batch of continuous samples is ``x: [B, *shape]`` (float); a batch of
discrete samples is ``x: [B, L]`` (int64 token ids). Named conditions ``cond`` (the class label is
the one named ``"label"``), a padding ``mask`` and a ``known`` mask travel with it in :class:`Samples`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .errors import DataError

CONDITION_KINDS = ("label", "tensor")


@dataclass(frozen=True)
class ConditionSpec:
    """One named condition a sample may carry (part of the data spec and the checkpoint contract).

    - ``kind="label"``: ``int64 [B]`` class ids in ``0..num_classes-1``; its null is the id ``num_classes``.
    - ``kind="tensor"``: ``float [B, *shape]`` (observation history, previous states, a sequence
      embedding, ...); its null is zeros, and backbones also receive ``cond[name + ".null"]`` (``bool [B]``)
      so they may substitute a learned null (see :class:`panflow.ConditionEmbedding`).
    ``dropout`` is the training-time probability of the null (classifier-free guidance needs > 0);
    ``normalisation`` says how the domain normalised the values (recorded, not applied by the core).
    """

    name: str
    kind: Literal["label", "tensor"] = "tensor"
    shape: tuple[int, ...] = ()
    num_classes: int = 0
    dropout: float = 0.0
    normalisation: str = ""

    def __post_init__(self) -> None:
        if self.kind not in CONDITION_KINDS:
            raise ValueError(f"ConditionSpec.kind must be one of {CONDITION_KINDS}, not {self.kind!r}")
        if self.kind == "label" and self.num_classes < 1:
            raise ValueError(f"label condition '{self.name}' needs num_classes >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"condition '{self.name}': dropout must be in [0, 1), got {self.dropout}")
        if "." in self.name or not self.name:
            raise ValueError(f"condition name {self.name!r} must be non-empty and contain no '.'")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    def null(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The null value of this condition for ``batch`` samples."""
        if self.kind == "label":
            return torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        return torch.zeros((batch, *self.shape), device=device)

    def check(self, value: torch.Tensor, batch: int | None = None) -> None:
        """Raise DataError unless ``value`` has this condition's per-sample shape and dtype."""
        want = () if self.kind == "label" else self.shape
        if tuple(value.shape[1:]) != want or (batch is not None and value.shape[0] != batch):
            raise DataError(f"condition '{self.name}' has shape {tuple(value.shape)}, expected "
                            f"[{batch if batch is not None else 'N'}, {', '.join(map(str, want))}]".replace(", ]", "]"))
        if self.kind == "label" and value.is_floating_point():
            raise DataError(f"label condition '{self.name}' must hold integer class ids, got {value.dtype}")

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape), "num_classes": self.num_classes,
                "dropout": self.dropout, "normalisation": self.normalisation}

    @classmethod
    def from_json(cls, d: dict) -> ConditionSpec:
        return cls(d["name"], d.get("kind", "tensor"), tuple(d.get("shape", ())), d.get("num_classes", 0),
                   d.get("dropout", 0.0), d.get("normalisation", ""))


@dataclass(frozen=True)
class DataSpec:
    """What the model sees: continuous tensors of ``shape`` or token ids over ``vocab_size``.

    ``conditions`` name the contexts a sample may carry (``num_classes > 0`` is shorthand for one
    label condition named ``"label"``). ``time_shape`` is a prefix of ``shape`` whose elements carry
    their own time (per frame, per action step, per residue): the model then receives
    ``t: [B, *time_shape]``, and ``known`` masks (given elements) have that shape too.
    """

    kind: Literal["continuous", "discrete"]
    shape: tuple[int, ...]
    vocab_size: int | None = None
    num_classes: int = 0
    conditions: tuple[ConditionSpec, ...] = ()
    time_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("continuous", "discrete"):
            raise ValueError(f"DataSpec.kind must be 'continuous' or 'discrete', not {self.kind!r}")
        if self.kind == "discrete" and not self.vocab_size:
            raise ValueError("a discrete DataSpec needs vocab_size")
        conds = tuple(self.conditions)
        labels = [c for c in conds if c.name == "label"]
        if self.num_classes and not labels:
            conds = (ConditionSpec("label", "label", num_classes=self.num_classes), *conds)
        elif labels and labels[0].kind == "label":
            object.__setattr__(self, "num_classes", labels[0].num_classes)
        names = [c.name for c in conds]
        if len(set(names)) != len(names):
            raise ValueError(f"DataSpec has repeated condition names: {names}")
        object.__setattr__(self, "conditions", conds)
        ts = tuple(int(s) for s in self.time_shape)
        if tuple(self.shape[:len(ts)]) != ts:
            raise ValueError(f"time_shape {ts} must be a prefix of the data shape {tuple(self.shape)}")
        object.__setattr__(self, "time_shape", ts)

    def condition(self, name: str) -> ConditionSpec:
        for c in self.conditions:
            if c.name == name:
                return c
        from .errors import UnknownNameError

        raise UnknownNameError("condition", name, [c.name for c in self.conditions])

    def to_json(self) -> dict:
        return {"kind": self.kind, "shape": list(self.shape), "vocab_size": self.vocab_size,
                "num_classes": self.num_classes, "conditions": [c.to_json() for c in self.conditions],
                "time_shape": list(self.time_shape)}

    @classmethod
    def from_json(cls, d: dict) -> DataSpec:
        conds = tuple(ConditionSpec.from_json(c) for c in d.get("conditions", []))
        return cls(d["kind"], tuple(d["shape"]), d.get("vocab_size"), d.get("num_classes", 0), conds,
                   tuple(d.get("time_shape", ())))


@dataclass
class Samples:
    """A set of samples held in memory.

    - ``x [N, *shape]``: the data (float) or token ids (int64);
    - ``cond``: named context tensors, each ``[N, ...]`` (see :class:`ConditionSpec`); the class
      label is the condition named ``"label"``, and ``y`` is shorthand for it;
    - ``mask [N, *shape or prefix]``: 1 = real element, 0 = padding (losses and metrics skip padding);
    - ``known [N, *time_shape]`` (bool): elements given with their values in ``x`` — presented clean
      and excluded from the loss in training, held at their values in sampling.
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    cond: dict[str, torch.Tensor] = field(default_factory=dict)
    known: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.cond = dict(self.cond or {})
        if self.y is not None:
            if "label" in self.cond and self.cond["label"] is not self.y:
                raise DataError("Samples got both y and cond['label']; give the label once")
            self.cond["label"] = self.y
        self.y = self.cond.get("label")
        n = self.x.shape[0]
        for name, v in [("mask", self.mask), ("known", self.known), *((f"cond['{k}']", v) for k, v in self.cond.items())]:
            if v is not None and v.shape[0] != n:
                raise DataError(f"Samples.{name} has {v.shape[0]} rows but x has {n}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Samples:
        return Samples(fn(self.x), None, None if self.mask is None else fn(self.mask),
                       {k: fn(v) for k, v in self.cond.items()}, None if self.known is None else fn(self.known))

    def index(self, idx: torch.Tensor | slice) -> Samples:
        return self._map(lambda v: v[idx])

    def to(self, device: torch.device | str) -> Samples:
        return self._map(lambda v: v.to(device))

    @staticmethod
    def concat(parts: list[Samples]) -> Samples:
        """Concatenate along the sample axis (every part must carry the same fields)."""
        if not parts:
            raise DataError("cannot concatenate an empty list of Samples")
        first = parts[0]

        def cat(get):
            vals = [get(p) for p in parts]
            if all(v is None for v in vals):
                return None
            if any(v is None for v in vals):
                raise DataError("Samples to concatenate disagree on which fields they carry")
            return torch.cat(vals)

        cond = {k: cat(lambda p, k=k: p.cond.get(k)) for k in first.cond}
        return Samples(cat(lambda p: p.x), None, cat(lambda p: p.mask), cond, cat(lambda p: p.known))


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

    When the training set is lazy (larger than memory), an encoder with ``fits_streaming = True``
    sees all of it batch by batch through :meth:`fit_stream` (e.g. Welford statistics); any other
    encoder gets ``fit`` on a bounded, seeded subset of ``encoder.fit_samples`` (default) samples.
    What it saw is recorded in the checkpoint contract (``encoder_fit``).
    """

    fits_streaming: bool = False
    fit_samples: int = 4096

    def fit(self, train: Samples) -> None:
        """Learn encoder state from raw training samples (default: nothing to learn)."""

    def fit_stream(self, batches: Iterable[Samples]) -> None:
        """Learn encoder state from raw training batches seen once each (``fits_streaming`` encoders)."""
        raise NotImplementedError(f"{type(self).__name__} does not fit from a stream")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def encode_cond(self, cond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map raw condition tensors (``{name: [B, ...]}``) to what the model sees (default: unchanged).

        Training and sampling both pass conditions through here, so normalisation fitted in
        :meth:`fit` (e.g. observation statistics) lives in the encoder's config like the data's.
        """
        return cond

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
    - ``evaluate(run, n=..., seed=...)`` returns a score card (see :mod:`panflow.scorecard`);
    - ``objective`` names a registered :class:`Objective`; ``known`` names a registered known-part
      sampler (:mod:`panflow.known`) with ``known_options``: how training draws the given elements;
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
    objective: str = "flow"  # a registered objective (panflow.Objective): flow | masked | plugin-added
    evaluate: Callable[..., Any] | None = None
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    backbone_presets: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    known: str = "none"
    known_options: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""
    # ``encode_prompt(text, dataset_meta) -> [ids]``: a raw-space prefix from a string (``--prefix``)
    encode_prompt: Callable[[str, dict[str, Any]], list] | None = None


@dataclass
class Dataset:
    """A named dataset of a domain. ``load(options)`` returns a :class:`DataBundle`."""

    name: str
    domain: str
    load: Callable[[DatasetOptions], DataBundle]
    description: str = ""
    plugin: str = ""


def consumes_labels(cond: ConditionSpec, spec: DataSpec) -> bool:
    """The default of :attr:`Backbone.consumes`: class labels only."""
    return cond.kind == "label"


def consumes_labels_and_vectors(cond: ConditionSpec, spec: DataSpec) -> bool:
    """For backbones that embed labels and global tensor conditions (:class:`panflow.UNet` with
    ``conditions=``, anything built on :class:`panflow.ConditionEmbedding`): labels and tensor
    conditions of at most one axis. A grid or per-element tensor (two or more axes) is refused, not
    flattened into a global vector; a backbone that places such a condition says so in its own rule."""
    return cond.kind == "label" or (cond.kind == "tensor" and len(cond.shape) <= 1)


@dataclass
class Backbone:
    """A network ``build(spec, **kwargs) -> nn.Module`` usable by any domain whose spec fits.

    The module's forward is ``model(x_t, t, cond) -> out``: ``x_t [B, *shape]``; ``t [B]``, or
    ``[B, *spec.time_shape]`` when the spec has per-element time; ``cond`` a dict of the spec's
    condition tensors (``{}`` when unconditional; see :class:`ConditionSpec`). ``out`` is shaped
    like ``x_t`` (continuous) or ``[B, L, vocab]`` logits (discrete).

    ``consumes(condition, spec)`` says which conditions the network can use (default: class labels);
    ``per_element_time`` that it accepts ``t: [B, *time_shape]``. A spec the backbone cannot serve is
    a configuration error before anything is built (:meth:`check`).
    """

    name: str
    build: Callable[..., torch.nn.Module]
    kinds: tuple[str, ...] = ("continuous",)
    accepts: Callable[[DataSpec], bool] | None = None
    description: str = ""
    plugin: str = ""
    consumes: Callable[[ConditionSpec, DataSpec], bool] = consumes_labels
    per_element_time: bool = False

    def fits(self, spec: DataSpec) -> bool:
        if spec.kind not in self.kinds:
            return False
        return True if self.accepts is None else bool(self.accepts(spec))

    def problems(self, spec: DataSpec) -> list[str]:
        """Why this backbone cannot serve ``spec`` (empty when it can)."""
        out = []
        if not self.fits(spec):
            out.append(f"its data shapes/kinds do not fit {spec.kind} data of shape {list(spec.shape)}")
        for c in spec.conditions:
            if not self.consumes(c, spec):
                what = f"label over {c.num_classes} classes" if c.kind == "label" else f"tensor {list(c.shape)}"
                out.append(f"it cannot consume condition '{c.name}' ({what})")
        if spec.time_shape and not self.per_element_time:
            out.append(f"it takes one time per sample, but the data has per-element time {list(spec.time_shape)}")
        return out

    def check(self, spec: DataSpec, domain: str = "") -> None:
        """Raise ConfigError naming every mismatch between this backbone and ``spec``."""
        probs = self.problems(spec)
        if probs:
            from .errors import ConfigError

            where = f" of domain '{domain}'" if domain else ""
            raise ConfigError(f"backbone '{self.name}' cannot serve the data{where}: " + "; ".join(probs))


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
class Objective:
    """A training objective and its samplers, registered by name (``flow``, ``masked``, or a plugin's).

    ``build(spec, cfg) -> obj`` makes it for a data spec and run config; ``from_json(d, spec) -> obj``
    rebuilds it from a checkpoint contract. ``obj`` has ``draw(n, x, generator) -> dict`` (all the
    randomness of one loss), ``loss(model, batch, rand) -> scalar``, ``generate(model, shape, opts,
    cond=..., known=..., x_known=..., generator=..., device=...) -> SampleResult`` and ``to_json()``
    (which must include ``"kind": name``). ``model_spec(spec, cfg) -> spec``, when given, is the spec
    the backbone is built for (e.g. with a condition the objective sets itself, like the shortcut
    model's step size); it is also the spec ``build`` receives and the contract records.
    """

    name: str
    build: Callable[..., Any]
    from_json: Callable[..., Any]
    description: str = ""
    plugin: str = ""
    model_spec: Callable[..., Any] | None = None
    # True when built on the affine-path flow objective: it reads flow.schedule / prediction /
    # time_sampler, so ``panflow bench ablate`` can vary them
    affine_path: bool = False


@dataclass
class Benchmark:
    """A recipe: ``run(preset, out_dir, seed) -> ScoreCard`` (rendered to JSON and Markdown).

    ``presets`` are the sizes it offers (``panflow bench --preset P`` skips, and says so, a benchmark
    without ``P``)."""

    name: str
    domain: str
    run: Callable[..., dict[str, Any]]
    description: str = ""
    presets: tuple[str, ...] = ("smoke", "small", "full")
    plugin: str = ""
    headline: tuple[str, ...] = ()  # (metric, section): the number summary.md shows for this benchmark
    headline_higher: bool = False   # True when a larger headline is better (success rates, validity)
    # config overrides (on the domain's preset) of the model the headline scores, when the benchmark's
    # model is not the domain's default one; ``panflow bench ablate`` varies from there
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # previews(result: dict, samples: dict[str, ndarray]) -> list[panflow.Preview]: report.html's
    # previews in the domain's medium, from the result JSON and the card's saved artifacts
    previews: Callable[..., list[Any]] | None = None
