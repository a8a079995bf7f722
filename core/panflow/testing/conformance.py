"""Implementation of the conformance kit (see :mod:`panflow.testing`)."""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from ..assembly import build_model, load_data, training_spec
from ..components import Samples
from ..config import RunConfig
from ..plugins import PluginManager, load_plugins
from ..run import build_config
from ..sampling import SampleOptions

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


@dataclass
class CheckResult:
    name: str
    passed: bool
    message: str = ""


@dataclass
class ConformanceReport:
    plugin: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def summary(self) -> str:
        lines = [f"plugin '{self.plugin}': {len(self.results) - len(self.failures)}/{len(self.results)} checks passed"]
        lines += [f"  FAIL {r.name}: {r.message}" for r in self.failures]
        return "\n".join(lines)


class _Checker:
    def __init__(self, report: ConformanceReport):
        self.report = report

    def run(self, name: str, fn, *args) -> Any:
        try:
            out = fn(*args)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a report line
            tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
            self.report.results.append(CheckResult(name, False, f"{type(exc).__name__}: {exc} [{tb}]"))
            return None
        self.report.results.append(CheckResult(name, True))
        return out


def _manager_for(plugin: Any, name: str | None) -> tuple[PluginManager, str]:
    if isinstance(plugin, str):
        mgr = load_plugins()
        if plugin not in mgr.plugins:
            from ..errors import UnknownNameError

            raise UnknownNameError("plugin", plugin, mgr.plugins)
        return mgr, plugin
    mgr = PluginManager()
    pname = name or getattr(plugin, "name", None) or type(plugin).__name__.lower()
    mgr.load_object(pname, plugin)
    return mgr, pname


def _smoke_config(reg, domain: str) -> RunConfig:
    return build_config(domain, "smoke", registry=reg)


def _check_domain(reg, dom) -> dict:
    cfg = _smoke_config(reg, dom.name)
    bundle = load_data(reg, cfg)
    if len(bundle.val) == 0:
        raise AssertionError(f"dataset '{cfg.data.dataset}' gave no validation samples")
    spec = dom.data_spec(bundle)
    enc = dom.make_encoder(dict(cfg.encoder.options))
    enc.fit(bundle.train)
    x = bundle.val.x[:8]
    back = enc.decode(enc.encode(x))
    if back.shape != x.shape:
        raise AssertionError(f"decode(encode(x)) has shape {tuple(back.shape)}, expected {tuple(x.shape)}")
    if x.is_floating_point():
        if not torch.allclose(back.float(), x.float(), atol=1e-4, rtol=1e-4):
            raise AssertionError(f"encode→decode is not the identity (max error {float((back - x).abs().max()):.3g})")
    elif not torch.equal(back, x):
        raise AssertionError("encode→decode changed some tokens")
    again = dom.load_encoder(enc.config(), enc.tensors())
    if not torch.equal(again.encode(x), enc.encode(x)):
        raise AssertionError("load_encoder(config(), tensors()) does not rebuild the same encoder")
    return {"cfg": cfg, "bundle": bundle, "spec": training_spec(enc.model_spec(spec), cfg), "encoder": enc}


def _batch(ctx, n: int) -> Samples:
    """``n`` encoded validation samples with every condition of the spec."""
    val = ctx["bundle"].val.index(slice(0, n))
    return Samples(ctx["encoder"].encode(val.x), None, val.mask, ctx["encoder"].encode_cond(dict(val.cond)), val.known)


def _check_backbone(reg, bb, dom, ctx) -> None:
    spec = ctx["spec"]
    opts = build_config(dom.name, "smoke", backbone=bb.name, registry=reg).model.options
    torch.manual_seed(0)
    _, model = build_model(reg, dom, spec, bb.name, opts)
    b = _batch(ctx, 4)
    obj = reg.objective(dom.objective).build(spec, ctx["cfg"], dom)
    t = torch.rand(4) if not spec.time_shape else torch.rand(4, *spec.time_shape)
    cond = obj.train_cond(b.cond, torch.ones(4, max(1, len(spec.conditions)))) if hasattr(obj, "train_cond") else b.cond
    out = model(b.x, t, cond)
    want = (*b.x.shape, spec.vocab_size) if spec.kind == "discrete" else tuple(b.x.shape)
    if tuple(out.shape) != tuple(want):
        raise AssertionError(f"backbone '{bb.name}' returned {tuple(out.shape)} for domain '{dom.name}', expected {want}")


def _sample_options(obj, spec) -> SampleOptions:
    return SampleOptions("ancestral" if obj.kind == "masked" else "euler", nfe=2)


def _check_train_and_sample(reg, dom, ctx) -> None:
    spec, cfg = ctx["spec"], ctx["cfg"]
    torch.manual_seed(0)
    _, model = build_model(reg, dom, spec, cfg.model.backbone, cfg.model.options)
    obj = reg.objective(dom.objective).build(spec, cfg, dom)
    tr = ctx["bundle"].train.index(slice(0, 8))
    data = Samples(ctx["encoder"].encode(tr.x), None, tr.mask, ctx["encoder"].encode_cond(dict(tr.cond)), tr.known)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = obj.loss(model, data, generator=torch.Generator().manual_seed(0))
    if not torch.isfinite(loss):
        raise AssertionError(f"one training step gave a non-finite loss ({loss.item()})")
    loss.backward()
    opt.step()
    b = _batch(ctx, 2)
    res = obj.generate(model, (2, *spec.shape), _sample_options(obj, spec), cond=b.cond,
                       generator=torch.Generator().manual_seed(0))
    if tuple(res.x.shape) != (2, *spec.shape):
        raise AssertionError(f"sampling returned {tuple(res.x.shape)}, expected {(2, *spec.shape)}")
    decoded = ctx["encoder"].decode(res.x)
    if decoded.shape[0] != 2:
        raise AssertionError("decoding samples lost the batch dimension")
    if spec.conditions and any(c.dropout > 0 for c in spec.conditions):
        drop = [c.name for c in spec.conditions if c.dropout > 0]
        kept = {k: v for k, v in b.cond.items() if k not in drop}
        res = obj.generate(model, (2, *spec.shape), _sample_options(obj, spec), cond=kept,
                           generator=torch.Generator().manual_seed(0))
        if not torch.isfinite(res.x.float()).all():
            raise AssertionError(f"sampling without conditions {drop} gave non-finite values")
        guided = SampleOptions(_sample_options(obj, spec).solver, nfe=2, guidance=2.0, guided=drop)
        res = obj.generate(model, (2, *spec.shape), guided, cond=b.cond, generator=torch.Generator().manual_seed(0))
        if tuple(res.x.shape) != (2, *spec.shape):
            raise AssertionError("guided sampling returned the wrong shape")
    if spec.time_shape:
        known = torch.zeros(2, *spec.time_shape, dtype=torch.bool)
        known.reshape(2, -1)[:, : max(1, known[0].numel() // 2)] = True
        res = obj.generate(model, (2, *spec.shape), _sample_options(obj, spec), cond=b.cond, known=known,
                           x_known=b.x, generator=torch.Generator().manual_seed(0))
        k = known.reshape(*known.shape, *([1] * (b.x.dim() - known.dim()))).expand_as(b.x)
        if not torch.equal(res.x[k], b.x[k]):
            raise AssertionError("known elements were not held exactly at their given values in sampling")


def _check_metric(reg, metric) -> None:
    dom = reg.domain(metric.domain)
    b = load_data(reg, _smoke_config(reg, dom.name))
    n = min(len(b.train), len(b.val), 64)
    real, fake = b.val.index(slice(0, n)), b.train.index(slice(0, n))
    a, c = metric.fn(real, fake, seed=0), metric.fn(real, fake, seed=0)
    if not isinstance(a, dict) or not a:
        raise AssertionError(f"metric '{metric.name}' must return a non-empty dict of floats")
    if a != c:
        raise AssertionError(f"metric '{metric.name}' is not deterministic for a fixed seed: {a} vs {c}")


def check_plugin(plugin: Any, name: str | None = None) -> ConformanceReport:
    """Check a plugin object (loaded into a fresh manager) or an installed plugin by name."""
    mgr, pname = _manager_for(plugin, name)
    report = ConformanceReport(pname)
    ck = _Checker(report)
    info = mgr.plugins[pname]
    report.results.append(CheckResult("registers cleanly", info.status == "loaded",
                                      f"status {info.status}: {info.message}"))
    if info.status != "loaded":
        return report
    reg = mgr.registry
    contributed = info.contributes
    if not any(contributed.values()):
        report.results.append(CheckResult("contributes something", False, "the plugin registered no component"))
    for kind, names in contributed.items():
        for n in names:
            report.results.append(CheckResult(f"{kind} '{n}' is well named", bool(NAME_RE.match(n)),
                                              "names are lower-case letters, digits, '_', '-', '.'"))
    for dname in contributed["domain"]:
        dom = reg.domain(dname)
        ctx = ck.run(f"domain '{dname}': smoke data loads and encode→decode round-trips", _check_domain, reg, dom)
        if ctx is None:
            continue
        for bb in reg.all("backbone"):
            if bb.plugin == pname and bb.fits(ctx["spec"]):
                ck.run(f"backbone '{bb.name}' on '{dname}': output shape", _check_backbone, reg, bb, dom, ctx)
        ck.run(f"domain '{dname}': a training step is finite and sampling has the right shape",
               _check_train_and_sample, reg, dom, ctx)
    for mname in contributed["metric"]:
        ck.run(f"metric '{mname}' is deterministic", _check_metric, reg, reg.metric(mname))
    for bname in contributed["benchmark"]:
        b = reg.benchmark(bname)
        report.results.append(CheckResult(f"benchmark '{bname}' offers the smoke preset", "smoke" in b.presets,
                                          f"presets: {b.presets}"))
    return report


def assert_plugin_conforms(plugin: Any, name: str | None = None) -> ConformanceReport:
    """Raise ``AssertionError`` listing every failed check; return the report when all pass."""
    report = check_plugin(plugin, name)
    if not report.passed:
        raise AssertionError(report.summary())
    return report
