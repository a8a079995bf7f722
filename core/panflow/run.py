"""Runs from a domain name: resolve components, train, load, sample and evaluate.

``train(cfg)`` is what ``panflow train`` does; ``load_run(dir)`` rebuilds a trained model from
its checkpoint contract (refusing contracts it cannot honour); ``Run.generate`` draws raw-space
samples through the domain's decoder.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import resume as resume_mod
from .assembly import build_model, check_contract, load_data, make_contract, objective_from_contract
from .checkpoint import LOAD_KEYS, find_checkpoint, load_contract, load_weights, require_keys, weights_name
from .components import DataBundle, DataSpec, Domain, Encoder, Samples
from .config import RunConfig, apply_overrides, config_from_dict, load_toml, save_toml, validate
from .datapath import prepare_training
from .errors import ConfigError, ContractError, DataError, UnknownNameError
from .init_weights import init_from_run
from .known import expand_known
from .masked import MASKED_SAMPLERS
from .plugins import get_registry, load_plugins
from .presets import PRESETS
from .registry import Registry
from .sampling import SampleOptions
from .solvers import SOLVERS
from .trainer import Trainer, resolve_device


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
        """The run's ``[sample]`` settings with ``kw`` (those not None) overriding them."""
        base = {f.name: getattr(self.cfg.sample, f.name) for f in dataclasses.fields(SampleOptions)}
        base.update({k: v for k, v in kw.items() if v is not None})
        return SampleOptions(**base)

    @torch.no_grad()
    def generate(self, n: int, opts: SampleOptions | None = None, labels: torch.Tensor | None = None,
                 seed: int = 0, batch_size: int = 1024, cond: dict[str, torch.Tensor] | None = None,
                 known: torch.Tensor | None = None, x_known: torch.Tensor | None = None) -> tuple[Samples, dict]:
        """``n`` raw-space samples (decoded) and the setup that produced them (NFE, wall time).

        ``cond`` gives condition tensors by name (raw values, ``[n, ...]``; ``labels`` is shorthand
        for ``cond["label"]``); ``known [n, *time_shape]`` with ``x_known`` (raw space, ``[n, *shape]``)
        holds given elements. A class-conditional model asked for guidance without labels samples
        the classes in turn — unless elements are given: they speak for the sample, which then
        gets the null label (guiding towards an arbitrary class would fight them).
        """
        opts = opts or self.options()
        g = torch.Generator(device=self.device).manual_seed(seed)
        cond = dict(cond or {})
        if labels is not None:
            cond["label"] = labels
        if "label" not in cond and self.spec.num_classes and opts.guides and known is None:
            cond["label"] = torch.arange(n) % self.spec.num_classes
        for k, v in cond.items():
            if v.shape[0] != n:
                raise DataError(f"condition '{k}' has {v.shape[0]} rows for {n} samples")
        if known is not None:
            if x_known is None or x_known.shape[0] != n or known.shape[0] != n:
                raise DataError(f"known and x_known must both have {n} rows (one per sample)")
            z_known = self.encoder.encode(x_known.to(self.device))
        outs, nfe, t0 = [], 0, time.perf_counter()
        self.model.eval()
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            m = sl.stop - sl.start
            kw: dict[str, Any] = {"cond": self.encoder.encode_cond({k: v[sl].to(self.device) for k, v in cond.items()})}
            if known is not None:
                kw.update(known=known[sl].to(self.device), x_known=z_known[sl])
            res = self.objective.generate(self.model, (m, *self.spec.shape), opts, generator=g, device=self.device, **kw)
            x = self.encoder.decode(res.x)
            if known is not None:  # decoding round-trips within tolerance; give back the exact values
                x = torch.where(expand_known(known[sl].to(x.device), x), x_known[sl].to(x.device, x.dtype), x)
            outs.append(x.cpu())
            nfe = res.nfe
        setup = {"n": n, "nfe": nfe, "solver": opts.solver, "guidance": opts.guidance,
                 "guidance_scales": dict(opts.guidance_scales), "guided": list(opts.guided),
                 "guidance_interval": list(opts.guidance_interval), "conditions": sorted(cond),
                 "known_fraction": 0.0 if known is None else float(known.float().mean()), "inpaint": opts.inpaint,
                 "resample": opts.resample if known is not None and opts.inpaint == "repaint" else 1,
                 "noise_scale": opts.noise_scale if opts.solver == "sde" else 0.0, "seed": seed,
                 "unmasking": {k: getattr(opts, k) for k in ("temperature", "top_p", "remask", "order_noise")},
                 "potentials": {k: dict(v) for k, v in opts.potentials.items()},
                 "wall_s": time.perf_counter() - t0}
        return Samples(torch.cat(outs), cond={k: v.cpu() for k, v in cond.items()}), setup


def train(cfg: RunConfig, out_dir: str | Path, resume: bool = False) -> Path:
    """Train ``cfg`` into ``out_dir`` (a run directory) and return it."""
    reg = get_registry()
    reg.domain(cfg.domain)  # an unknown domain fails before anything is read or written
    validate(cfg, (*SOLVERS, *MASKED_SAMPLERS))  # config.py: refuse nonsensical values before any work
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a run directory")
    if resume and not out.exists():
        raise ConfigError(f"cannot resume: run directory {out} does not exist")
    if not resume and (out / "checkpoints").exists() and any((out / "checkpoints").glob("step_*")):
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    plan = resume_mod.plan_resume(cfg, out) if resume else None  # resume.py: refuse a changed config
    torch.manual_seed(cfg.train.seed)
    td = prepare_training(reg, cfg)  # in memory (fast path) or streamed: panflow.datapath
    bundle, a, data = td.bundle, td.assembly, td.data
    info = load_plugins().plugins.get(a.domain.plugin)
    contract = make_contract(a, cfg, bundle.meta, info.version if info else "")
    model, objective, encoder = a.model, a.objective, a.encoder
    if cfg.train.init_from and plan is None:  # a resumed run's weights come from its own checkpoint
        contract["init_from"] = init_from_run(model, cfg.train.init_from, contract)
    if plan is not None:  # resume.py: same data/model as the checkpoint, history of safe changes
        resume_mod.check_same_data(plan, contract)
        contract["history"] = plan.history
        if "init_from" in plan.contract:  # the run still did not start from scratch
            contract["init_from"] = plan.contract["init_from"]
    out.mkdir(parents=True, exist_ok=True)
    save_toml(cfg, out / "config.toml")
    trainer = Trainer(model, objective, data, cfg.train, out, contract,
                      extra_weights={"encoder": encoder.tensors()}, encode=td.encode, loader=td.loader)
    if resume:
        trainer.resume()
    trainer.fit()
    return out


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
    bb, model = build_model(reg, dom, spec, contract["backbone"]["name"], dict(contract["backbone"]["options"]))
    name = weights_name(ckpt, contract, use_ema)  # checkpoint.py: a missing EMA file is an error
    try:
        model.load_state_dict(load_weights(ckpt, name))
    except RuntimeError as exc:
        raise ContractError(f"weights in {ckpt} do not match backbone '{bb.name}' built from the contract: "
                            f"{str(exc).splitlines()[0]}") from exc
    dev = resolve_device(device)
    objective = objective_from_contract(reg, contract["objective"], spec)
    return Run(cfg, dom, encoder, model.to(dev).eval(), objective, spec, raw_spec, contract, dev, Path(run_dir))
