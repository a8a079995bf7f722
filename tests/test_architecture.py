"""Architecture rules: import-linter contracts, plugins use only panflow's public API, ruff clean."""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ["panflow_toy2d", "panflow_image", "panflow_text", "panflow_weather", "panflow_audio", "panflow_robot",
           "panflow_protein"]
PUBLIC = {"panflow", "panflow.testing"}


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else (shutil.which(name) or name)


def test_import_linter_contracts():
    proc = subprocess.run([_tool("lint-imports"), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken" in proc.stdout


def test_plugins_import_only_the_public_api():
    graph = grimp.build_graph("panflow", *PLUGINS, cache_dir=None)
    bad = []
    for plugin in PLUGINS:
        for module in graph.find_descendants(plugin) | {plugin}:
            for imported in graph.find_modules_directly_imported_by(module):
                if imported.startswith("panflow.") or imported == "panflow":
                    if imported not in PUBLIC:
                        bad.append(f"{module} imports {imported}")
    assert not bad, "plugins must import from `panflow` (or panflow.testing) only:\n" + "\n".join(bad)


def test_core_does_not_import_domain_libraries_at_runtime():
    code = ("import sys, panflow, panflow.cli, panflow.testing; "
            "bad = [m for m in ('PIL', 'sklearn', 'ot', 'scipy', 'tokenizers', 'torchaudio', 'biotite', 'xarray', 'zarr') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_listing_plugins_imports_no_heavy_domain_library():
    code = ("import sys; from panflow.plugins import load_plugins; load_plugins(); "
            "print([m for m in ('PIL', 'sklearn', 'ot', 'scipy', 'tokenizers', 'xarray', 'zarr', 'netCDF4') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_ruff_clean():
    proc = subprocess.run([_tool("ruff"), "check", "core", "plugins", "tests", "benchmarks"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
