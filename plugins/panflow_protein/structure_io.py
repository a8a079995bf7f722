"""Reading Cα traces from PDB / mmCIF / BinaryCIF files (biotite) and writing generated ones.

Policy (documented in docs/guide.md, checked in tests/plugins/test_protein.py):

- files: ``.pdb``/``.ent``, ``.cif``/``.mmcif``, ``.bcif``, each optionally ``.gz``/``.bz2``;
- models: ``"first"`` (default) or ``"all"`` (NMR ensembles, trajectories: one chain record per model);
- alternative locations: the highest-occupancy one (biotite ``altloc="occupancy"``);
- residues: amino acids by the chemical component dictionary (so MSE, SEP, ... count), insertion
  codes are separate residues; a residue without a Cα atom is counted and breaks the chain;
- non-standard residues map to their parent's one-letter code when the CCD names one, else ``X``;
  residue names outside the CCD are counted as unknown (kept as ``X``, warned);
- chain breaks: a residue-number gap (> 1) or a Cα–Cα distance > 4.2 Å splits the chain into
  segments (``breaks="split"``) or raises (``breaks="refuse"``);
- a segment shorter than ``min_length`` is dropped with a count; non-finite or absurd coordinates
  (|x| > 9999 Å) raise a :class:`panflow.DataError` naming the file and chain.
"""

from __future__ import annotations

import bz2
import gzip
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from panflow import DataError

MAX_BOND = 4.2        # Å: a longer Cα–Cα step is a chain break
ABSURD = 9999.0       # Å: PDB columns cannot hold more; larger values are corrupt
SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".bcif")
AMINO = "ACDEFGHIKLMNPQRSTVWY"
THREE = {"ALA": "A", "CYS": "C", "ASP": "D", "GLU": "E", "PHE": "F", "GLY": "G", "HIS": "H", "ILE": "I",
         "LYS": "K", "LEU": "L", "MET": "M", "ASN": "N", "PRO": "P", "GLN": "Q", "ARG": "R", "SER": "S",
         "THR": "T", "VAL": "V", "TRP": "W", "TYR": "Y"}
ONE_TO_THREE = {v: k for k, v in THREE.items()}


@dataclass
class ChainRecord:
    """One contiguous Cα trace: ``ca [L, 3]`` (Å), its one-letter sequence and where it came from."""

    source: str
    chain: str
    model: int
    segment: int
    seq: str
    ca: np.ndarray
    res_ids: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.source}:{self.chain or '-'}:m{self.model}:s{self.segment}"


@dataclass
class ReadReport:
    """Counts of everything left out or changed while reading (nothing is dropped silently)."""

    files: int = 0
    chains: int = 0
    segments: int = 0
    breaks: int = 0
    short_dropped: int = 0
    missing_ca: int = 0
    unknown_residues: int = 0
    nonstandard_residues: int = 0
    no_protein: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(vars(self))


def structure_format(path: Path) -> tuple[str, str]:
    """(format, compression) of ``path`` from its suffixes, or DataError naming it."""
    name = path.name.lower()
    comp = ""
    for c in (".gz", ".bz2"):
        if name.endswith(c):
            comp, name = c, name[: -len(c)]
    for s in SUFFIXES:
        if name.endswith(s):
            return {".ent": ".pdb", ".mmcif": ".cif"}.get(s, s), comp
    raise DataError(f"{path}: not a structure file (expected one of {', '.join(SUFFIXES)}, optionally .gz/.bz2)")


def _read_bytes(path: Path, comp: str) -> bytes:
    opener = {"": open, ".gz": gzip.open, ".bz2": bz2.open}[comp]
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc


_CACHE: dict[tuple, object] = {}
_CACHE_SIZE = 256


def load_atoms(path: str | Path, models: str = "first"):
    """The file's atoms as a biotite ``AtomArrayStack`` (one model, or all of them).

    Parsed files are cached per process by (path, size, mtime, models): a dataset loaded again
    (evaluation, the conformance kit) does not parse its files twice; a changed file is re-read.
    """
    path = Path(path)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, models)
    except OSError:
        key = None
    if key is not None and key in _CACHE:
        return _CACHE[key].copy()
    atoms = _parse(path, models)
    if key is not None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = atoms
    return atoms.copy()


def _parse(path: Path, models: str):
    from biotite.structure.io import pdb, pdbx

    fmt, comp = structure_format(path)
    raw = _read_bytes(path, comp)
    model = 1 if models == "first" else None
    if models not in ("first", "all"):
        raise DataError(f"option models must be 'first' or 'all', got {models!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # biotite warns about guessed elements, which a Cα trace never needs
            if fmt == ".pdb":
                f = pdb.PDBFile.read(io.StringIO(raw.decode("utf-8", errors="replace")))
                atoms = f.get_structure(model=model, altloc="occupancy")
            elif fmt == ".cif":
                f = pdbx.CIFFile.read(io.StringIO(raw.decode("utf-8", errors="replace")))
                atoms = pdbx.get_structure(f, model=model, altloc="occupancy", use_author_fields=True)
            else:
                f = pdbx.BinaryCIFFile.read(io.BytesIO(raw))
                atoms = pdbx.get_structure(f, model=model, altloc="occupancy", use_author_fields=True)
    except DataError:
        raise
    except Exception as exc:  # biotite raises many types for malformed files
        raise DataError(f"{path}: biotite cannot parse it as {fmt[1:].upper()} ({type(exc).__name__}: {exc})") from exc
    from biotite.structure import AtomArrayStack, stack

    return atoms if isinstance(atoms, AtomArrayStack) else stack([atoms])


def _one_letter(name: str, report: ReadReport) -> str:
    if name in THREE:
        return THREE[name]
    from biotite.structure import info

    try:
        one = info.one_letter_code(name)
    except Exception:  # noqa: BLE001 - unknown to the CCD
        one = None
    if one is None or one.upper() not in AMINO:
        report.unknown_residues += 1
        return "X"
    report.nonstandard_residues += 1
    return one.upper()


def chain_records(path: str | Path, chains: list[str] | None = None, models: str = "first", min_length: int = 16,
                  breaks: str = "split", report: ReadReport | None = None) -> list[ChainRecord]:
    """Cα segments of the protein chains of one file (see the module docstring for the policy)."""
    import biotite.structure as struc

    if breaks not in ("split", "refuse"):
        raise DataError(f"option breaks must be 'split' or 'refuse', got {breaks!r}")
    path = Path(path)
    report = report if report is not None else ReadReport()
    stack = load_atoms(path, models)
    report.files += 1
    first = stack[0]
    aa = struc.filter_amino_acids(first)
    if not aa.any():
        report.no_protein.append(str(path))
        report.messages.append(f"{path}: no protein chain (no amino-acid residues); skipped")
        return []
    ids = [c for c in dict.fromkeys(first.chain_id[aa].tolist())]
    if chains:
        missing = [c for c in chains if c not in ids]
        if missing:
            raise DataError(f"{path}: chain(s) {', '.join(missing)} not found among protein chains {ids}")
        ids = [c for c in ids if c in chains]
    out = []
    for cid in ids:
        sel = aa & (first.chain_id == cid)
        sub = first[sel]
        starts = struc.get_residue_starts(sub)
        has_ca = sub.atom_name == "CA"
        ca_idx = np.flatnonzero(sel)[has_ca]
        n_missing = len(starts) - int(has_ca.sum())
        report.missing_ca += max(0, n_missing)
        if n_missing:
            report.messages.append(f"{path} chain {cid or '-'}: {n_missing} residue(s) without a Cα atom (chain broken there)")
        if len(ca_idx) == 0:
            continue
        names = first.res_name[ca_idx].tolist()
        seq = "".join(_one_letter(n, report) for n in names)
        rid = first.res_id[ca_idx]
        ins = first.ins_code[ca_idx]
        keys = [f"{r}{i}" for r, i in zip(rid.tolist(), ins.tolist())]
        report.chains += 1
        for m in range(stack.stack_depth()):
            xyz = stack.coord[m, ca_idx].astype(np.float64)
            if not np.isfinite(xyz).all() or np.abs(xyz).max() > ABSURD:
                raise DataError(f"{path} chain {cid or '-'} model {m + 1}: non-finite or absurd Cα coordinates "
                                f"(|x| > {ABSURD:g} Å)")
            step = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
            gap = (np.diff(rid) > 1) | (step > MAX_BOND)
            cut = np.flatnonzero(gap) + 1
            if len(cut) and breaks == "refuse":
                raise DataError(f"{path} chain {cid or '-'}: {len(cut)} chain break(s) (residue-number gap or "
                                f"Cα–Cα > {MAX_BOND} Å) at residue {keys[cut[0]]}; use breaks='split'")
            if m == 0:
                report.breaks += len(cut)
            bounds = [0, *cut.tolist(), len(xyz)]
            for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
                if b - a < min_length:
                    report.short_dropped += 1
                    if m == 0:
                        report.messages.append(f"{path} chain {cid or '-'}: segment of {b - a} residues "
                                               f"< min_length {min_length}; dropped")
                    continue
                out.append(ChainRecord(str(path), cid, m + 1, s, seq[a:b], xyz[a:b].copy(), keys[a:b]))
                report.segments += 1
    return out


def expand_paths(spec: str | Path) -> list[Path]:
    """A file, a folder (recursively, structure suffixes only) or a list file (one path per line)."""
    p = Path(spec)
    if not p.exists():
        raise DataError(f"--data {spec}: no such file or folder")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and _is_structure(f))
        if not files:
            raise DataError(f"--data {spec}: the folder holds no {', '.join(SUFFIXES)} files")
        return files
    if _is_structure(p):
        return [p]
    lines = [ln.strip() for ln in p.read_text(errors="replace").splitlines() if ln.strip() and not ln.startswith("#")]
    files = [(p.parent / ln) if not Path(ln).is_absolute() else Path(ln) for ln in lines]
    bad = [str(f) for f in files if not f.exists()]
    if not files or bad:
        raise DataError(f"--data {spec}: a list file must name existing structure files, one per line"
                        + (f"; missing: {', '.join(bad[:3])}" if bad else "; it names none"))
    return files


def _is_structure(p: Path) -> bool:
    try:
        structure_format(p)
        return True
    except DataError:
        return False


def ca_atoms(ca: np.ndarray, seq: str | None = None, chain: str = "A"):
    """A biotite ``AtomArray`` of Cα atoms for coordinates ``[L, 3]`` (Å); residue names from the
    one-letter ``seq`` (``X`` → ``UNK``), or ``GLY`` without a sequence."""
    import biotite.structure as struc

    n = len(ca)
    atoms = struc.AtomArray(n)
    atoms.coord = np.asarray(ca, dtype=np.float32)
    atoms.chain_id[:] = chain
    atoms.res_id[:] = np.arange(1, n + 1)
    atoms.res_name[:] = [ONE_TO_THREE.get(c, "UNK") for c in seq] if seq else ["GLY"] * n
    atoms.atom_name[:] = "CA"
    atoms.element[:] = "C"
    atoms.hetero[:] = False
    return atoms


def write_structure(path: str | Path, ca: np.ndarray, seq: str | None = None) -> Path:
    """Write one Cα-only model as PDB (``.pdb``), mmCIF (``.cif``) or BinaryCIF (``.bcif``), by suffix."""
    from biotite.structure.io import pdb, pdbx

    path = Path(path)
    atoms = ca_atoms(ca, seq)
    if path.suffix == ".pdb":
        f = pdb.PDBFile()
        f.set_structure(atoms)
    elif path.suffix in (".cif", ".bcif"):
        f = pdbx.CIFFile() if path.suffix == ".cif" else pdbx.BinaryCIFFile()
        pdbx.set_structure(f, atoms)
    else:
        raise DataError(f"{path}: write .pdb, .cif or .bcif")
    f.write(str(path))
    return path
