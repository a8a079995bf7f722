"""Runs from a domain name: resolve components, train, load, sample and evaluate.

``train(cfg)`` is what ``panflow train`` does; ``load_run(dir)`` rebuilds a trained model from
its checkpoint contract (refusing contracts it cannot honour); ``Run.generate`` draws raw-space
samples through the domain's decoder.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import resume as resume_mod
from ._version import __version__
from .checkpoint import LOAD_KEYS, find_checkpoint, load_contract, load_weights, require_keys, weights_name
from .components import DataBundle, DatasetOptions, DataSpec, Domain, Encoder, Samples
from .config import RunConfig, apply_overrides, check_options, config_from_dict, load_toml, save_toml, validate
from .datainfo import announce_data
from .errors import ConfigError, ContractError, DataError, UnknownNameError
from .masked import MASKED_SAMPLERS
from .objective import FlowObjective, SampleOptions
from .plugins import get_registry, load_plugins
from .registry import Registry
from .solvers import SOLVERS
from .trainer import Trainer, resolve_device

PRESETS = ("smoke", "small", "full")


def build_config(domain: str, preset: str = "small", config_file: str | None = None,
                 overrides: list[str] | dict[str, Any] | None = None, dataset: str | None = None,
                 data: str | None = None, backbone: str | None = None, registry: Registry | None = None) -> RunConfig:
    """Preset defaults < config file < explicit flags < ``--set`` overrides."""
    dom = (registry or get_registry()).domain(domain)
    if preset not in PRESETS:
        raise UnknownNameError("preset", preset, PRESETS)
    cfg = RunConfig(domain=domain, preset=preset)
    apply_overrides(cfg, dict(dom.presets.get(preset, {})))
    if config_file:
        file_cfg = load_toml(config_file)
        file_cfg.pop("domain", None)
        apply_overrides(cfg, _flatten(file_cfg))
    if dataset:
        cfg.data.dataset = dataset
    if data:
        cfg.data.path = data
    if backbone:
        cfg.model.backbone = backbone
    file_keys = list(_flatten(load_toml(config_file))) if config_file else []
    apply_overrides(cfg, overrides or {})
    cfg.data.dataset = cfg.data.dataset or dom.default_dataset
    cfg.model.backbone = cfg.model.backbone or dom.default_backbone
    given = [k for k in [*file_keys, *(_override_keys(overrides))] if k.startswith("model.options")]
    per_backbone = dom.backbone_presets.get(preset, {})
    if not given and cfg.model.backbone in per_backbone:
        cfg.model.options = copy.deepcopy(per_backbone[cfg.model.backbone])
    return cfg


def _override_keys(overrides: list[str] | dict[str, Any] | None) -> list[str]:
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return list(overrides)
    return [o.split("=", 1)[0].strip() for o in overrides]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not key.endswith("options"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def build_objective(domain: Domain, cfg: RunConfig, spec: DataSpec):
    """The objective a domain trains with, from the ``flow`` config section."""
    f = cfg.flow
    if domain.objective == "masked":
        from .masked import MaskedObjective

        return MaskedObjective(spec.vocab_size, schedule=f.schedule)
    if f.time_sampler == "logit_normal":
        ts: Any = {"name": "logit_normal", "mean": f.logit_mean, "std": f.logit_std}
    elif f.time_sampler == "shifted":
        ts = {"name": "shifted", "shift": f.time_shift}
    else:
        ts = f.time_sampler
    return FlowObjective(f.schedule, f.prediction, ts, f.label_dropout if spec.num_classes else 0.0,
                         spec.num_classes)


def objective_from_contract(d: dict[str, Any]):
    if d["kind"] == "flow":
        return FlowObjective.from_json(d)
    if d["kind"] == "masked":
        from .masked import MaskedObjective

        return MaskedObjective.from_json(d)
    raise ContractError(f"objective kind {d['kind']!r} is not supported by panflow {__version__}")


def load_data(reg: Registry, cfg: RunConfig) -> DataBundle:
    ds = reg.dataset(cfg.data.dataset, cfg.domain)
    opts = DatasetOptions(cfg.data.path or None, cfg.data.val_fraction, cfg.data.seed, dict(cfg.data.options))
    bundle = ds.load(opts)
    if len(bundle.train) == 0:
        raise DataError(f"dataset '{ds.name}' produced no training samples")
    return bundle


@dataclass
class Run:
    """A model ready to sample: config, domain, encoder, network (EMA weights), objective."""

    cfg: RunConfig
    domain: Domain
    encoder: Encoder
    model: torch.nn.Module
    objective: Any
    spec: DataSpec
    raw_spec: DataSpec
    contract: dict[str, Any]
    device: torch.device
    run_dir: Path | None = None

    def load_data(self) -> DataBundle:
        """The run's dataset, loaded again exactly as it was for training (same split)."""
        return load_data(get_registry(), self.cfg)

    def options(self, **kw: Any) -> SampleOptions:
        s = self.cfg.sample
        base = {"solver": s.solver, "nfe": s.nfe, "guidance": s.guidance, "noise_scale": s.noise_scale}
        base.update({k: v for k, v in kw.items() if v is not None})
        return SampleOptions(**base)

    @torch.no_grad()
    def generate(self, n: int, opts: SampleOptions | None = None, labels: torch.Tensor | None = None,
                 seed: int = 0, batch_size: int = 1024) -> tuple[Samples, dict]:
        """``n`` raw-space samples (decoded) and the setup that produced them (NFE, wall time)."""
        opts = opts or self.options()
        g = torch.Generator(device=self.device).manual_seed(seed)
        if labels is None and self.spec.num_classes and opts.guidance != 1.0:
            labels = torch.arange(n) % self.spec.num_classes
        outs, nfe, t0 = [], 0, time.perf_counter()
        self.model.eval()
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            cond = None if labels is None else labels[start:start + m].to(self.device)
            if self.objective.kind == "masked":
                res = self.objective.generate(self.model, (m, *self.spec.shape), opts, generator=g,
                                              device=self.device)
            else:
                res = self.objective.generate(self.model, (m, *self.spec.shape), opts, cond, g, self.device)
            outs.append(self.encoder.decode(res.x).cpu())
            nfe = res.nfe
        setup = {"n": n, "nfe": nfe, "solver": opts.solver, "guidance": opts.guidance,
                 "noise_scale": opts.noise_scale, "seed": seed, "wall_s": time.perf_counter() - t0}
        return Samples(torch.cat(outs), labels), setup


def train(cfg: RunConfig, out_dir: str | Path, resume: bool = False) -> Path:
    """Train ``cfg`` into ``out_dir`` (a run directory) and return it."""
    reg = get_registry()
    dom = reg.domain(cfg.domain)
    validate(cfg, SOLVERS + MASKED_SAMPLERS)  # config.py: refuse nonsensical values before any work
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a run directory")
    if resume and not out.exists():
        raise ConfigError(f"cannot resume: run directory {out} does not exist")
    if not resume and (out / "checkpoints").exists() and any((out / "checkpoints").glob("step_*")):
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    plan = resume_mod.plan_resume(cfg, out) if resume else None  # resume.py: refuse a changed config
    torch.manual_seed(cfg.train.seed)
    bundle = load_data(reg, cfg)
    announce_data(cfg.data.dataset, bundle)  # datainfo.py: files, items, split sizes
    raw_spec = dom.data_spec(bundle)
    encoder = dom.make_encoder(dict(cfg.encoder.options))
    encoder.fit(bundle.train)
    spec = encoder.model_spec(raw_spec)
    bb = reg.backbone(cfg.model.backbone)
    if not bb.fits(spec):
        raise ConfigError(f"backbone '{bb.name}' does not fit data {spec} of domain '{dom.name}'")
    check_options(bb.build, cfg.model.options, "model.options", f"backbone '{bb.name}'")  # config.py
    torch.manual_seed(cfg.train.seed)
    model = bb.build(spec, **cfg.model.options)
    objective = build_objective(dom, cfg, spec)
    with torch.no_grad():
        train_x = encoder.encode(bundle.train.x)
    data = Samples(train_x, bundle.train.y, bundle.train.mask)
    info = load_plugins().plugins.get(dom.plugin)
    contract = {"domain": dom.name, "plugin": {"name": dom.plugin, "version": info.version if info else ""},
                "objective": objective.to_json(), "data_spec": spec.to_json(), "raw_spec": raw_spec.to_json(),
                "encoder": encoder.config(), "backbone": {"name": bb.name, "options": cfg.model.options},
                "dataset": {"name": cfg.data.dataset, "path": cfg.data.path, **_jsonable(bundle.meta)},
                "config": cfg.to_dict()}
    if plan is not None:  # resume.py: same data/model as the checkpoint, history of safe changes
        resume_mod.check_same_data(plan, contract)
        contract["history"] = plan.history
    out.mkdir(parents=True, exist_ok=True)
    save_toml(cfg, out / "config.toml")
    trainer = Trainer(model, objective, data, cfg.train, out, contract,
                      extra_weights={"encoder": encoder.tensors()})
    if resume:
        trainer.resume()
    trainer.fit()
    return out


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}


def check_contract(contract: dict[str, Any], dom: Domain, plugin_version: str) -> None:
    """Refuse a checkpoint this installation cannot honour, saying what differs."""
    if contract.get("contract_version", 1) > 1:
        raise ContractError(f"checkpoint contract version {contract['contract_version']} is newer than this "
                            f"panflow ({__version__}) understands; upgrade panflow")
    written = contract.get("plugin", {}).get("version", "")
    if written and plugin_version and written.split(".")[0] != plugin_version.split(".")[0]:
        raise ContractError(f"checkpoint was written by plugin '{dom.plugin}' {written}, installed is "
                            f"{plugin_version}: major versions differ, the encoder/backbone format may differ")


def load_run(run_dir: str | Path, device: str = "auto", use_ema: bool = True) -> Run:
    """Rebuild a trained run from its newest checkpoint (EMA weights by default)."""
    ckpt = find_checkpoint(run_dir)
    contract = load_contract(ckpt)
    require_keys(contract, LOAD_KEYS, ckpt)  # checkpoint.py: a contract missing a section is an error
    reg = get_registry()
    dom = reg.domain(contract["domain"])
    info = load_plugins().plugins.get(dom.plugin)
    check_contract(contract, dom, info.version if info else "")
    cfg = config_from_dict({k: v for k, v in contract["config"].items()})
    spec, raw_spec = DataSpec.from_json(contract["data_spec"]), DataSpec.from_json(contract["raw_spec"])
    encoder = dom.load_encoder(contract["encoder"], load_weights(ckpt, "encoder"))
    bb = reg.backbone(contract["backbone"]["name"])
    model = bb.build(spec, **contract["backbone"]["options"])
    name = weights_name(ckpt, contract, use_ema)  # checkpoint.py: a missing EMA file is an error
    try:
        model.load_state_dict(load_weights(ckpt, name))
    except RuntimeError as exc:
        raise ContractError(f"weights in {ckpt} do not match backbone '{bb.name}' built from the contract: "
                            f"{str(exc).splitlines()[0]}") from exc
    dev = resolve_device(device)
    objective = objective_from_contract(contract["objective"])
    return Run(cfg, dom, encoder, model.to(dev).eval(), objective, spec, raw_spec, contract, dev, Path(run_dir))
