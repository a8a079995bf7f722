"""The docs are executed: the plugin guide's code runs, and every hook is documented."""

import inspect
import json
import re
import sys
from pathlib import Path

from panflow.config import tomllib
from panflow.hooks import PanflowHookSpec
from panflow.plugins import load_plugins

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_writing_a_plugin_guide_runs(tmp_path, monkeypatch):
    text = (DOCS / "writing-a-plugin.md").read_text()
    pyproject = tomllib.loads(_blocks(text, "toml")[0])
    module_src, test_src, conditional_src = _blocks(text, "python")[:3]
    dist = pyproject["project"]["name"]
    entry = pyproject["project"]["entry-points"]["panflow.plugins"]
    (name, target), = entry.items()
    module = target.split(":")[0]
    (tmp_path / f"{module}.py").write_text(module_src)
    info = tmp_path / f"{dist.replace('-', '_')}-{pyproject['project']['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {pyproject['project']['version']}\n")
    (info / "entry_points.txt").write_text(f"[panflow.plugins]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        mgr = load_plugins(refresh=True)
        assert mgr.plugins[name].status == "loaded", mgr.plugins[name].traceback
        exec(compile(test_src, "writing-a-plugin.md", "exec"), {})
        exec(compile(conditional_src, "writing-a-plugin.md (conditional)", "exec"), {})
        from panflow.cli import main

        monkeypatch.chdir(tmp_path)
        assert main(["train", "vec", "--preset", "smoke", "--out", str(tmp_path / "runs" / "vec")]) == 0
        assert main(["sample", str(tmp_path / "runs" / "vec"), "--n", "4", "--solver", "heun", "--nfe", "4"]) == 0
        assert (tmp_path / "runs" / "vec" / "samples" / "vectors.csv").exists()
        assert main(["eval", str(tmp_path / "runs" / "vec"), "--n", "100"]) == 0  # the default evaluator
        card = json.loads((tmp_path / "runs" / "vec" / "scorecard.json").read_text())
        roles = [r["role"] for r in card["rows"]]
        assert roles[:3] == ["floor", "baseline", "model"] and "model · euler NFE 1" in roles
        assert [b["name"] for b in card["bars"]] == ["radius_error: model / Gaussian baseline"]
        floor = card["rows"][0]["metrics"]["radius_error"]
        assert 0 <= floor < card["rows"][1]["metrics"]["radius_error"]  # real vs real beats the Gaussian
        assert main(["bench", "--domains", "vec", "--preset", "smoke", "--out", str(tmp_path / "bench")]) == 0
        result = json.loads((tmp_path / "bench" / "vec.json").read_text())
        assert result["bars"] and result["rows"][2]["role"] == "model"  # a real score card, not "bars 0/0"
    finally:
        sys.modules.pop(module, None)
        load_plugins(refresh=True)


def test_every_hook_is_documented_with_its_signature():
    text = (DOCS / "hooks.md").read_text()
    hooks = [n for n, f in inspect.getmembers(PanflowHookSpec, inspect.isfunction) if n.startswith("panflow_")]
    assert hooks
    for name in hooks:
        sig = str(inspect.signature(getattr(PanflowHookSpec, name))).replace("'", "")
        assert f"def {name}{sig}" in text, f"docs/hooks.md lacks `def {name}{sig}`"
