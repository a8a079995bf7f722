"""One assembly path from a run config to a trainable (or loadable) model.

``train``, ``load_run`` and the conformance kit all go data → encoder → spec → backbone →
objective through these functions, with the registry passed explicitly (the plugin-manager
singleton stays at the CLI edge). The core's own objectives are registered here, through the same
:class:`~panflow.Objective` interface a plugin uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ._version import __version__
from .checkpoint import CONTRACT_VERSION
from .components import Backbone, DataBundle, DatasetOptions, DataSpec, Domain, Encoder, Objective
from .config import RunConfig, check_options
from .coupling import couple_objective
from .errors import ConfigError, ContractError, DataError, UnknownNameError
from .objective import FlowObjective
from .registry import Registry
from .stats import fit_encoder


# -- the core's objectives --------------------------------------------------------------------------
def _time_sampler(cfg: RunConfig) -> Any:
    """``{"name": flow.time_sampler, **options}``: the built-ins read their own ``flow.*`` keys, and
    ``flow.time_sampler_options`` adds to or overrides them (a plugin's sampler takes only those)."""
    f = cfg.flow
    own = {"logit_normal": {"mean": f.logit_mean, "std": f.logit_std}, "shifted": {"shift": f.time_shift},
           "u_shaped": {"a": f.u_shape}}.get(f.time_sampler, {})
    return {"name": f.time_sampler, **own, **f.time_sampler_options}


def build_flow(spec: DataSpec, cfg: RunConfig, domain: Domain) -> FlowObjective:
    """Flow matching from the ``[flow]`` config section and the domain's conditioning defaults."""
    f = cfg.flow
    if f.block_size:
        raise ConfigError(f"flow.block_size ({f.block_size}) is for masked (token) objectives; this run uses flow matching")
    known: Any = f.known or domain.known
    if known != "none" or f.known_options or domain.known_options:
        opts = f.known_options if f.known else domain.known_options
        known = {"name": known, **opts}
    return FlowObjective(f.schedule, f.prediction, _time_sampler(cfg), conditions=spec.conditions,
                         time_shape=spec.time_shape, known=known, per_element_time=f.per_element_time)


def build_masked(spec: DataSpec, cfg: RunConfig, domain: Domain):
    from .masked import MaskedObjective

    opts = dict(cfg.flow.objective_options)
    estimator = opts.pop("estimator", "time")
    if opts:
        raise ConfigError(f"unknown flow.objective_options {sorted(opts)} for the masked objective (known: estimator)")
    return MaskedObjective(spec.vocab_size, schedule=cfg.flow.schedule, conditions=spec.conditions,
                           block_size=cfg.flow.block_size, estimator=estimator)


def _masked_from_json(d: dict, spec: DataSpec | None = None):
    from .masked import MaskedObjective

    return MaskedObjective.from_json(d, spec)


def register_core(registry: Registry) -> None:
    """Register the objectives the core ships (plugin name ``panflow``)."""
    reg = registry.scoped("panflow")
    reg.add_objective(Objective("flow", build_flow, FlowObjective.from_json,
                                "conditional flow matching on affine paths (velocity / noise / data targets)",
                                affine_path=True))
    reg.add_objective(Objective("masked", build_masked, _masked_from_json,
                                "absorbing-state masked diffusion for tokens (MDLM NELBO)"))
    from .regression import RegressionObjective, build_regression

    reg.add_objective(Objective("regression", build_regression, RegressionObjective.from_json,
                                "MSE regression to the data: the non-generative baseline (1 NFE)"))
    from .shortcut import ShortcutObjective, build_shortcut, shortcut_spec

    reg.add_objective(Objective("shortcut", build_shortcut, ShortcutObjective.from_json,
                                "shortcut model (Frans et al. 2024): flow matching + self-consistency, 1..N steps",
                                model_spec=shortcut_spec))


# -- specs ------------------------------------------------------------------------------------------
def training_spec(spec: DataSpec, cfg: RunConfig) -> DataSpec:
    """The model-space spec with each condition's training dropout from the config.

    ``flow.label_dropout`` applies to the class label; ``flow.cond_dropout`` (``{name: p}``)
    overrides any condition; other conditions keep the dropout their domain declared.
    """
    over = dict(cfg.flow.cond_dropout)
    names = [c.name for c in spec.conditions]
    for k in over:
        if k not in names:
            raise ConfigError(str(UnknownNameError("condition in flow.cond_dropout", k, names)))
    conds = []
    for c in spec.conditions:
        p = over.get(c.name, cfg.flow.label_dropout if c.name == "label" else c.dropout)
        try:
            conds.append(dataclasses.replace(c, dropout=float(p)))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    return dataclasses.replace(spec, conditions=tuple(conds))


def load_data(reg: Registry, cfg: RunConfig) -> DataBundle:
    ds = reg.dataset(cfg.data.dataset, cfg.domain)
    opts = DatasetOptions(cfg.data.path or None, cfg.data.val_fraction, cfg.data.seed, dict(cfg.data.options))
    bundle = ds.load(opts)
    if len(bundle.train) == 0:
        raise DataError(f"dataset '{ds.name}' produced no training samples")
    return bundle


@dataclass
class Assembly:
    """Everything a run is made of, before training or after loading."""

    domain: Domain
    encoder: Encoder
    raw_spec: DataSpec
    spec: DataSpec
    backbone: Backbone
    model: torch.nn.Module
    objective: Any
    encoder_fit: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the encoder saw


def build_model(reg: Registry, dom: Domain, spec: DataSpec, backbone: str, options: dict) -> tuple[Backbone, torch.nn.Module]:
    bb = reg.backbone(backbone)
    bb.check(spec, dom.name)
    check_options(bb.build, options, "model.options", f"backbone '{bb.name}'")
    try:
        return bb, bb.build(spec, **options)
    except TypeError as exc:
        raise ConfigError(f"backbone '{bb.name}' rejected model.options {sorted(options)}: {exc}") from exc


def assemble(reg: Registry, cfg: RunConfig, bundle: DataBundle, encoder: Encoder | None = None,
             raw_spec: DataSpec | None = None) -> Assembly:
    """Fit the encoder on ``bundle.train`` and build the spec, backbone and objective for ``cfg``.

    ``bundle.train`` may be lazy (the encoder then sees a stream or a bounded seeded subset, see
    :func:`panflow.stats.fit_encoder`); a given ``encoder`` (with ``raw_spec``) is used as fitted.
    """
    dom = reg.domain(cfg.domain)
    raw_spec = raw_spec or dom.data_spec(bundle)
    fit: dict[str, Any] = {"mode": "given"}
    if encoder is None:
        encoder = dom.make_encoder(dict(cfg.encoder.options))
        fit = fit_encoder(encoder, bundle.train, cfg.data.seed, cfg.encoder.fit_samples or None)
    spec = training_spec(encoder.model_spec(raw_spec), cfg)
    obj = reg.objective(cfg.flow.objective or dom.objective)
    spec = obj.model_spec(spec, cfg) if obj.model_spec is not None else spec  # e.g. shortcut: + step condition
    torch.manual_seed(cfg.train.seed)
    bb, model = build_model(reg, dom, spec, cfg.model.backbone, dict(cfg.model.options))
    objective = couple_objective(obj.build(spec, cfg, dom), cfg.flow.coupling, cfg.flow.coupling_options)
    return Assembly(dom, encoder, raw_spec, spec, bb, model, objective, fit)


def make_contract(a: Assembly, cfg: RunConfig, bundle_meta: dict, plugin_version: str) -> dict[str, Any]:
    """The train/inference contract every checkpoint of the run carries."""
    return {"domain": a.domain.name, "plugin": {"name": a.domain.plugin, "version": plugin_version},
            "objective": a.objective.to_json(), "data_spec": a.spec.to_json(), "raw_spec": a.raw_spec.to_json(),
            "encoder": a.encoder.config(), "encoder_fit": a.encoder_fit,
            "backbone": {"name": a.backbone.name, "options": cfg.model.options},
            "dataset": {"name": cfg.data.dataset, "path": cfg.data.path, **_jsonable(bundle_meta)},
            "config": cfg.to_dict()}


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}


def check_contract(contract: dict[str, Any], dom: Domain, plugin_version: str) -> None:
    """Refuse a checkpoint this installation cannot honour, saying what differs."""
    if not isinstance(contract, dict):
        raise ContractError("the checkpoint contract is not a JSON object")
    missing = [k for k in ("domain", "objective", "data_spec", "raw_spec", "encoder", "backbone", "config")
               if k not in contract]
    if missing:
        raise ContractError(f"the checkpoint contract lacks {', '.join(missing)}: not a complete panflow contract")
    if contract.get("contract_version", 1) > CONTRACT_VERSION:
        raise ContractError(f"checkpoint contract version {contract['contract_version']} is newer than this "
                            f"panflow ({__version__}) understands; upgrade panflow")
    written = contract.get("plugin", {}).get("version", "")
    if written and plugin_version and written.split(".")[0] != plugin_version.split(".")[0]:
        raise ContractError(f"checkpoint was written by plugin '{dom.plugin}' {written}, installed is "
                            f"{plugin_version}: major versions differ, the encoder/backbone format may differ")


def objective_from_contract(reg: Registry, d: dict[str, Any], spec: DataSpec):
    kind = d.get("kind")
    if kind not in reg.names("objective"):
        raise ContractError(f"objective kind {kind!r} is not available in this installation "
                            f"(panflow {__version__}; known: {', '.join(reg.names('objective'))})")
    return reg.objective(kind).from_json(d, spec)
