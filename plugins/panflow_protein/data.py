"""Datasets of Cα traces as padded tensors.

A sample is ``x [L_max, 3]`` (Å, centred on its real residues, zeros at padding) with the padding
``mask [L_max]`` and the conditions ``residues [L_max]`` (the same mask: how the network learns the
length) and, with ``sequence=True``, ``seq [L_max, 21]`` (one-hot over 20 amino acids + ``X``).

Datasets:
- ``pdb``: protein chains split **by protein** (file): the embedded 49 DSSP test chains of
  MDAnalysisTests, or the user's files with ``--data``;
- ``ensemble``: the models of one multi-model file (NMR ensemble / trajectory), train = odd-numbered
  models, held-out = even-numbered ones (the conformational-ensemble task: the same protein, unseen
  conformers); embedded default PDB 2JUY (24 models).

Chains longer than ``max_len`` are cut into windows of ``max_len`` with stride ``max_len // 2``
(counted in ``meta["report"]["cropped"]``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from panflow import DataBundle, DataError, DatasetOptions, Samples

from . import embedded
from .structure_io import AMINO, ChainRecord, ReadReport, chain_records, expand_paths

log = logging.getLogger("panflow.protein")
SEQ_ALPHABET = AMINO + "X"
DEFAULTS = {"max_len": 176, "min_length": 16, "chains": None, "models": "first", "breaks": "split",
            "sequence": False, "max_proteins": 0, "max_models": 0}


def _options(opts: DatasetOptions, **over) -> dict:
    o = {**DEFAULTS, **over, **dict(opts.options)}
    unknown = sorted(set(o) - set(DEFAULTS))
    if unknown:
        from panflow import UnknownNameError

        raise UnknownNameError("protein data option", unknown[0], DEFAULTS)
    if isinstance(o["chains"], str):
        o["chains"] = [c.strip() for c in o["chains"].split(",") if c.strip()]
    if int(o["max_len"]) < int(o["min_length"]) or int(o["min_length"]) < 2:
        raise DataError(f"protein data: need 2 <= min_length <= max_len, got {o['min_length']} and {o['max_len']}")
    return o


def read_records(files, o: dict) -> tuple[list[ChainRecord], ReadReport]:
    report = ReadReport()
    recs: list[ChainRecord] = []
    for f in files:
        recs += chain_records(f, o["chains"], o["models"], int(o["min_length"]), o["breaks"], report)
    for m in report.messages:
        log.warning(m)
    if not recs:
        raise DataError(f"no usable protein chain in {len(files)} file(s) (min_length {o['min_length']}; "
                        f"{len(report.no_protein)} without protein, {report.short_dropped} segment(s) too short)")
    return recs, report


def windows(rec: ChainRecord, max_len: int) -> list[tuple[np.ndarray, str]]:
    """``rec`` as one trace, or windows of ``max_len`` residues (stride ``max_len // 2``, last one flush)."""
    n = len(rec.ca)
    if n <= max_len:
        return [(rec.ca, rec.seq)]
    starts = list(range(0, n - max_len + 1, max_len // 2))
    if starts[-1] != n - max_len:
        starts.append(n - max_len)
    return [(rec.ca[s:s + max_len], rec.seq[s:s + max_len]) for s in starts]


def one_hot(seq: str, length: int) -> torch.Tensor:
    """``[length, 21]`` one-hot of a one-letter sequence (rows past ``len(seq)`` are zero)."""
    out = torch.zeros(length, len(SEQ_ALPHABET))
    idx = [SEQ_ALPHABET.index(c) if c in SEQ_ALPHABET else len(AMINO) for c in seq]
    out[torch.arange(len(idx)), torch.tensor(idx, dtype=torch.long)] = 1.0
    return out


def decode_sequence(onehot: torch.Tensor, length: int) -> str:
    return "".join(SEQ_ALPHABET[int(i)] for i in onehot[:length].argmax(-1))


def to_samples(traces: list[tuple[np.ndarray, str]], max_len: int, sequence: bool) -> Samples:
    """Centre each trace on its own residues and pad to ``max_len``."""
    n = len(traces)
    x = torch.zeros(n, max_len, 3)
    mask = torch.zeros(n, max_len)
    seq = torch.zeros(n, max_len, len(SEQ_ALPHABET))
    for i, (ca, s) in enumerate(traces):
        c = torch.as_tensor(ca, dtype=torch.float64)
        c = c - c.mean(0)
        x[i, : len(c)] = c.float()
        mask[i, : len(c)] = 1.0
        if sequence:
            seq[i] = one_hot(s, max_len)
    cond = {"residues": mask.clone()}
    if sequence:
        cond["seq"] = seq
    return Samples(x, mask=mask, cond=cond)


def _bundle(train: list, val: list, o: dict, meta: dict) -> DataBundle:
    ml = int(o["max_len"])
    tr = [w for r in train for w in windows(r, ml)]
    va = [w for r in val for w in windows(r, ml)]
    if not tr:
        raise DataError("protein data: the split left no training chains")
    if not va:
        raise DataError("protein data: the split left no held-out chains (give more proteins or a larger val_fraction)")
    meta["report"]["cropped"] = sum(len(r.ca) > ml for r in train + val)
    meta.update({"max_len": ml, "sequence": bool(o["sequence"]),
                 "train_names": [r.name for r in train], "val_names": [r.name for r in val],
                 "val_seqs": [w[1] for w in va]})
    return DataBundle(to_samples(tr, ml, o["sequence"]), to_samples(va, ml, o["sequence"]), meta)


def load_pdb(opts: DatasetOptions) -> DataBundle:
    """Chains of the embedded set or of ``opts.path``, split by protein (file)."""
    o = _options(opts)
    files = expand_paths(opts.path) if opts.path else embedded.dssp_files()
    if int(o["max_proteins"]):
        files = files[: int(o["max_proteins"])]
    recs, report = read_records(files, o)
    held = embedded.split_by_protein([embedded.protein_key(r.source) for r in recs], opts.val_fraction, opts.seed)
    train = [r for r in recs if embedded.protein_key(r.source) not in held]
    val = [r for r in recs if embedded.protein_key(r.source) in held]
    source = "user files" if opts.path else "MDAnalysisTests DSSP chains (embedded)"
    meta = {"source": source, "files": [str(f) for f in files], "val_proteins": sorted(held),
            "report": report.to_json(), "split": "by protein (SHA-1 of seed:file stem)"}
    return _bundle(train, val, o, meta)


def load_ensemble(opts: DatasetOptions) -> DataBundle:
    """The models of one multi-model file: odd-numbered models train, even-numbered held out."""
    o = _options(opts, models="all")
    files = expand_paths(opts.path) if opts.path else [embedded.ensemble_file()]
    if len(files) != 1:
        raise DataError(f"dataset 'ensemble' takes one multi-model file, got {len(files)}")
    recs, report = read_records(files, o)
    chains = sorted({(r.chain, r.segment) for r in recs})
    if len(chains) != 1:
        raise DataError(f"{files[0]}: the ensemble task needs one chain segment, found {len(chains)} "
                        f"({chains[:4]}); select one with data.options.chains")
    recs = sorted(recs, key=lambda r: r.model)
    if "max_len" not in opts.options:  # one protein: pad to its own length, not the chain-set default
        o["max_len"] = max(len(r.ca) for r in recs)
    if int(o["max_models"]):
        recs = recs[: int(o["max_models"])]
    if len(recs) < 4:
        raise DataError(f"{files[0]}: an ensemble needs at least 4 models, found {len(recs)}")
    train = [r for r in recs if r.model % 2 == 1]
    val = [r for r in recs if r.model % 2 == 0]
    meta = {"source": str(files[0]), "files": [str(files[0])], "report": report.to_json(),
            "split": "by model: odd-numbered models train, even-numbered held out (same protein)",
            "models": len(recs)}
    return _bundle(train, val, o, meta)
