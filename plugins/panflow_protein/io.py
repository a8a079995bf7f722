"""Writing generated Cα traces: one PDB and one mmCIF file per sample (padding removed).

Residue names come from the sample's ``seq`` condition when the model was sequence-conditioned
(``X`` → ``UNK``), otherwise every residue is ``GLY`` (a Cα trace carries no side chain; viewers
draw GLY traces as a backbone). Files are numbered ``sample_0000.pdb`` / ``.cif``.
"""

from __future__ import annotations

from pathlib import Path

from panflow import Samples

from .data import decode_sequence
from .structure_io import write_structure


def sample_lengths(samples: Samples) -> list[int]:
    """Real residues per sample: from ``cond['residues']``, else the padding mask, else all."""
    m = samples.cond.get("residues", samples.mask)
    if m is None:
        return [samples.x.shape[1]] * len(samples)
    lengths = [int((row > 0.5).sum()) for row in m]
    return [n if n else samples.x.shape[1] for n in lengths]


def write_structures(samples: Samples, out_dir: str | Path, meta: dict | None = None) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seqs = samples.cond.get("seq")
    paths = []
    for i, n in enumerate(sample_lengths(samples)):
        ca = samples.x[i, :n].double().numpy()
        seq = decode_sequence(seqs[i], n) if seqs is not None else None
        for suffix in (".pdb", ".cif"):
            paths.append(write_structure(out / f"sample_{i:04d}{suffix}", ca, seq))
    return paths
