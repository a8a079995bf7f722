import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

import panflow
from panflow import Domain, Encoder, PanflowError, UnknownNameError
from panflow.plugins import PluginManager, load_plugins
from panflow.registry import DuplicateComponentError
from panflow.testing import assert_plugin_conforms, check_plugin


def _domain(name):
    return Domain(name=name, description="", default_dataset="d", default_backbone="b", data_spec=lambda b: None,
                  make_encoder=lambda c: Encoder(), load_encoder=lambda c, t: Encoder(), write_samples=lambda *a: [])


class Good:
    PANFLOW_HOOK_API = 1

    @panflow.hookimpl
    def panflow_register(self, registry):
        registry.add_domain(_domain("alpha"))


class Same:
    @panflow.hookimpl
    def panflow_register(self, registry):
        registry.add_domain(_domain("alpha"))


class Future:
    PANFLOW_HOOK_API = 99

    @panflow.hookimpl
    def panflow_register(self, registry):
        registry.add_domain(_domain("beta"))


def test_builtin_plugins_are_loaded():
    mgr = load_plugins()
    for name in ("toy2d", "image", "text"):
        assert mgr.plugins[name].status == "loaded", mgr.plugins[name].message
    assert "toy2d" in mgr.registry.names("domain")


def test_duplicate_names_name_both_plugins():
    mgr = PluginManager()
    assert mgr.load_object("first", Good()).status == "loaded"
    info = mgr.load_object("second", Same())
    assert info.status == "error"
    assert "'first'" in info.message and "'second'" in info.message and "alpha" in info.message
    assert mgr.registry.domain("alpha").plugin == "first"  # the host keeps working


class Wrapper:
    """Registers an objective that wraps the core's ``flow`` (looked up through its scoped registry)."""

    @panflow.hookimpl
    def panflow_register(self, registry):
        flow = registry.objective("flow")
        registry.add_objective(panflow.Objective("wrapped-flow", flow.build, flow.from_json))


def test_a_plugin_can_look_up_a_registered_objective():
    mgr = PluginManager()
    info = mgr.load_object("wrapper", Wrapper())
    assert info.status == "loaded", info.message
    assert mgr.registry.objective("wrapped-flow").build is mgr.registry.objective("flow").build
    assert mgr.registry.objective("wrapped-flow").plugin == "wrapper"


def test_strict_mode_reraises(monkeypatch):
    monkeypatch.setenv("PANFLOW_STRICT_PLUGINS", "1")
    mgr = PluginManager()
    mgr.load_object("first", Good())
    with pytest.raises(DuplicateComponentError):
        mgr.load_object("second", Same())


def test_newer_hook_api_is_reported_not_crashed():
    info = PluginManager().load_object("future", Future())
    assert info.status == "error" and "hook API 99" in info.message


def test_missing_extra_makes_plugin_unavailable_with_hint(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *a, **k):
        return None if name in ("PIL", "ot") else real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    mgr = load_plugins(refresh=True)
    try:
        assert mgr.plugins["image"].status == "unavailable"
        assert mgr.plugins["image"].enable == 'pip install "panflow[image]"'
        assert mgr.plugins["toy2d"].enable == 'pip install "panflow[toy2d]"'
        assert mgr.plugins["text"].status == "loaded"
        assert "image" not in mgr.registry.names("domain")
    finally:
        monkeypatch.undo()
        load_plugins(refresh=True)


def test_unknown_names_suggest_closest():
    reg = load_plugins().registry
    with pytest.raises(UnknownNameError, match="Did you mean 'toy2d'"):
        reg.domain("toy2")
    with pytest.raises(UnknownNameError, match="Did you mean 'moons'"):
        reg.dataset("moon")


def _install_fake_dist(root, dist, module, source, entry="plugin"):
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"  # the folder name escapes '-' (PEP 427)
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[panflow.plugins]\n{dist} = {module}:{entry}\n")


OUT_OF_TREE = '''
import torch
import panflow
from panflow import Backbone, DataBundle, Dataset, DataSpec, Domain, Encoder, Metric, Samples

class Scale(Encoder):
    def __init__(self, s=2.0):
        self.s = s
    def encode(self, x):
        return x / self.s
    def decode(self, z):
        return z * self.s
    def config(self):
        return {"s": self.s}

def load(opts):
    g = torch.Generator().manual_seed(opts.seed)
    return DataBundle(Samples(torch.randn(64, 3, generator=g)), Samples(torch.randn(16, 3, generator=g)))

class Net(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.lin = torch.nn.Linear(dim + 1, dim)
    def forward(self, x, t, cond=None):
        return self.lin(torch.cat([x, t[:, None]], -1))

def mean_gap(real, gen, seed=0):
    return {"mean_gap": float((real.x.mean(0) - gen.x.mean(0)).abs().sum())}

class Plugin:
    PANFLOW_HOOK_API = 1
    @panflow.hookimpl
    def panflow_register(self, registry):
        registry.add_domain(Domain("vec3", "3-vectors", "gauss3", "lin3", lambda b: DataSpec("continuous", (3,)),
                                   lambda c: Scale(**c) if c else Scale(), lambda c, t: Scale(c.get("s", 2.0)),
                                   lambda s, out: [], presets={"smoke": {"train.steps": 2}}))
        registry.add_dataset(Dataset("gauss3", "vec3", load))
        registry.add_backbone(Backbone("lin3", lambda spec, **kw: Net(spec.shape[0])))
        registry.add_metric(Metric("mean_gap", "vec3", mean_gap))

plugin = Plugin()
'''


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    load_plugins(refresh=True)


def test_out_of_tree_plugin_is_discovered_listed_and_checked(fake_site):
    _install_fake_dist(fake_site, "panflow-vec3", "panflow_vec3_demo", OUT_OF_TREE)
    mgr = load_plugins(refresh=True)
    info = mgr.plugins["panflow-vec3"]
    assert info.status == "loaded", info.traceback
    assert info.contributes["domain"] == ["vec3"] and info.version == "1.0"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake_site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "panflow", "plugins", "--json"], capture_output=True, text=True,
                         env=env, check=True).stdout
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["panflow-vec3"]["status"] == "loaded" and listed["toy2d"]["status"] == "loaded"
    report = assert_plugin_conforms("panflow-vec3")
    assert report.passed and len(report.results) >= 6


def test_broken_third_party_plugin_is_an_error_and_host_still_works(fake_site):
    _install_fake_dist(fake_site, "panflow-broken", "panflow_broken_demo", "raise RuntimeError('boom at import')\n")
    mgr = load_plugins(refresh=True)
    info = mgr.plugins["panflow-broken"]
    assert info.status == "error" and "boom at import" in info.message and "Traceback" in info.traceback
    assert mgr.plugins["toy2d"].status == "loaded"
    assert "toy2d" in mgr.registry.names("domain")


def test_third_party_missing_dependency_is_unavailable(fake_site):
    _install_fake_dist(fake_site, "panflow-needy", "panflow_needy_demo", "import some_missing_lib_xyz\n")
    info = load_plugins(refresh=True).plugins["panflow-needy"]
    assert info.status == "unavailable" and "some_missing_lib_xyz" in info.message
    assert info.enable == "pip install panflow-needy"


BROKEN_CONTRACTS = {
    "round-trips": OUT_OF_TREE.replace("return z * self.s", "return z * self.s + 1"),
    "output shape": OUT_OF_TREE.replace("self.lin = torch.nn.Linear(dim + 1, dim)",
                                        "self.lin = torch.nn.Linear(dim + 1, dim + 1)"),
    "deterministic": OUT_OF_TREE.replace('float((real.x.mean(0) - gen.x.mean(0)).abs().sum())',
                                         'float(torch.rand(1))'),
    "finite": OUT_OF_TREE.replace("return self.lin(torch.cat([x, t[:, None]], -1))",
                                  "return self.lin(torch.cat([x, t[:, None]], -1)) * float('nan')"),
    "well named": OUT_OF_TREE.replace('Metric("mean_gap"', 'Metric("Mean Gap"'),
}


@pytest.mark.parametrize("contract", sorted(BROKEN_CONTRACTS))
def test_conformance_kit_fails_loudly_on_broken_plugins(tmp_path, contract):
    ns: dict = {}
    exec(compile(BROKEN_CONTRACTS[contract], f"<broken {contract}>", "exec"), ns)
    report = check_plugin(ns["plugin"], "broken")
    assert not report.passed
    assert any(contract in f.name or contract in f.message for f in report.failures), report.summary()
    with pytest.raises(AssertionError, match="FAIL"):
        assert_plugin_conforms(ns["plugin"], "broken")


def test_conformance_kit_passes_the_reference_out_of_tree_plugin():
    ns: dict = {}
    exec(compile(OUT_OF_TREE, "<vec3>", "exec"), ns)
    assert assert_plugin_conforms(ns["plugin"], "vec3").passed


@pytest.mark.parametrize("name", ["toy2d", "image", "text"])
def test_builtin_plugins_conform(name):
    assert_plugin_conforms(name)


def test_errors_are_panflow_errors():
    assert issubclass(UnknownNameError, PanflowError)


def test_lazy_defers_import_until_called():
    import sys

    from panflow import lazy

    sys.modules.pop("colorsys", None)
    fn = lazy("colorsys:rgb_to_hsv")
    assert "colorsys" not in sys.modules
    assert fn(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0) and "colorsys" in sys.modules
    with pytest.raises(ValueError, match="package.module:attr"):
        lazy("colorsys.rgb_to_hsv")
