"""Audio datasets: the embedded spoken digits and notes, folders of WAV/FLAC/OGG (class =
sub-folder) and CSV/JSONL manifests (``path,label``).

Raw space: log-mel spectrograms ``[N, 1, n_mels, frames]`` (see :mod:`.frontend`); labels ``[N]``.
The conformed waveforms ``[N, num_samples]`` ride along in ``meta["waves"]`` (a tuple, so the
checkpoint contract, which keeps only JSON values, leaves them out) for waveform-level metrics.
``data.options`` sets the frontend (sample_rate, n_fft, hop_length, n_mels, frames, f_min, f_max,
griffin_lim_iters) and the clip policy (trim_db, crop, max_seconds).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from panflow import ConfigError, DataBundle, DataError, DatasetOptions

from .audio_io import AUDIO_SUFFIXES, Policy, conform, load_clips
from .frontend import Frontend

DIGITS_FRONTEND = {"sample_rate": 8000, "n_fft": 512, "hop_length": 192, "n_mels": 32, "frames": 32}
# hop 256 (16 frames, 0.48 s) rather than 128 x 32 frames: half the UNet's cost per step and 5x faster
# Griffin-Lim. n_fft 512 rather than 1024: real notes inverted through the 1024-point path had frame
# energies a KS test tells from real (p 4e-6 over 192 clips; 0.001 even with the non-negative mel
# refinement), through the 512-point path p 0.38-0.48 (two draws of 192 clips, refinement on)
NOTES_FRONTEND = {"sample_rate": 8000, "n_fft": 512, "hop_length": 256, "n_mels": 64, "frames": 16,
                  "f_min": 60.0, "f_max": 2000.0}
POLICY_KEYS = {"trim_db", "crop", "max_seconds"}


def settings(options: dict, defaults: dict) -> tuple[Frontend, Policy]:
    """The frontend and clip policy from ``data.options`` over the dataset's defaults."""
    opts = {**defaults, **options}
    known = set(Frontend.__dataclass_fields__) | POLICY_KEYS
    bad = sorted(set(opts) - known)
    if bad:
        raise ConfigError(f"unknown audio data option(s) {bad}; known: {sorted(known)}")
    fe = Frontend(**{k: v for k, v in opts.items() if k in Frontend.__dataclass_fields__})
    pol = Policy(fe.sample_rate, fe.num_samples, **{k: v for k, v in opts.items() if k in POLICY_KEYS})
    return fe, pol


def split(waves: torch.Tensor, y: torch.Tensor | None, fe: Frontend, opts: DatasetOptions, meta: dict) -> DataBundle:
    """Deterministic train/validation split (a permutation seeded with ``opts.seed``); spectrograms computed here."""
    n = waves.shape[0]
    if n < 2:
        raise DataError(f"need at least 2 audio clips, found {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(opts.seed))
    n_val = max(1, int(round(n * opts.val_fraction)))
    tr, va = perm[n_val:], perm[:n_val]
    spec = fe.features(waves)
    h = hashlib.sha256(waves.numpy().tobytes())
    if y is not None:
        h.update(y.numpy().tobytes())
    from panflow import Samples

    meta = {**meta, "frontend": fe.to_json(), "n_train": int(tr.numel()), "n_val": int(va.numel()),
            "split_seed": opts.seed, "hash": h.hexdigest()[:16], "shape": list(spec.shape[1:]),
            "waves": (waves[tr], waves[va])}
    ys = (None, None) if y is None else (y[tr], y[va])
    return DataBundle(Samples(spec[tr], ys[0]), Samples(spec[va], ys[1]), meta)


@functools.lru_cache(maxsize=4)
def _conformed(source, pol: Policy, name: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The embedded clips conformed to ``pol`` (kept per process: loading a run's data again is free)."""
    waves, labels, sr, info = source()
    xs = [conform(w[None], sr, pol, f"{name}[{i}]")[0] for i, w in enumerate(waves)]
    return torch.stack(xs), torch.from_numpy(labels), info


def _embedded(opts: DatasetOptions, source, defaults: dict, name: str) -> DataBundle:
    fe, pol = settings(opts.options, defaults)
    waves, labels, info = _conformed(source, pol, name)
    meta = {"source": name, "classes": info.get("classes"), "policy": pol.to_json(),
            "recipe": info["recipe"], "synthesiser": info["synthesiser"], "files": len(waves)}
    return split(waves.clone(), labels.clone(), fe, opts, meta)


def load_digits(opts: DatasetOptions) -> DataBundle:
    """The embedded spoken digits (espeak-ng, 64 synthetic speakers x 10 digits x 3), or ``--data``."""
    if opts.path:
        return load_path(opts)
    from .embedded import DIGITS, spoken_digits

    b = _embedded(opts, spoken_digits, DIGITS_FRONTEND, "embedded spoken digits (espeak-ng)")
    b.meta["classes"] = DIGITS
    return b


def load_notes(opts: DatasetOptions) -> DataBundle:
    """The embedded harmonic notes C4..B4 (exact pitch labels); ``meta['classes_hz']`` gives each f0."""
    from .embedded import NOTE_NAMES, NOTES_RECIPE, notes

    b = _embedded(opts, notes, NOTES_FRONTEND, "embedded notes (procedural)")
    a4, lo = NOTES_RECIPE["a4_hz"], NOTES_RECIPE["midi"][0]
    b.meta.update(classes=NOTE_NAMES, classes_hz=[a4 * 2 ** ((lo + i - 69) / 12) for i in range(len(NOTE_NAMES))])
    return b


def load_path(opts: DatasetOptions) -> DataBundle:
    """A folder of audio files (class = sub-folder, else unlabelled) or a ``.csv``/``.jsonl`` manifest."""
    path = Path(opts.path)
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if path.is_dir():
        files, labels = folder_files(path)
    elif path.suffix.lower() in (".csv", ".jsonl"):
        files, labels = manifest_files(path)
    else:
        raise DataError(f"{path}: not a folder of audio files or a .csv/.jsonl manifest (path,label)")
    fe, pol = settings(opts.options, DIGITS_FRONTEND)
    waves, counts = load_clips(files, pol)
    classes = sorted(set(labels)) if all(v is not None for v in labels) else []
    y = torch.tensor([classes.index(v) for v in labels], dtype=torch.long) if classes else None
    meta = {"source": str(path), "classes": classes, "files": len(files), "policy": pol.to_json(), **counts}
    return split(waves, y, fe, opts, meta)


def folder_files(root: Path) -> tuple[list[Path], list[str | None]]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if subdirs:
        pairs = [(f, d.name) for d in subdirs for f in sorted(d.rglob("*")) if f.suffix.lower() in AUDIO_SUFFIXES]
    else:
        pairs = [(f, None) for f in sorted(root.iterdir()) if f.suffix.lower() in AUDIO_SUFFIXES]
    if not pairs:
        raise DataError(f"{root} holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return [p for p, _ in pairs], [c for _, c in pairs]


def manifest_files(path: Path) -> tuple[list[Path], list[str | None]]:
    """Rows ``path[,label]``; relative paths are taken from the manifest's folder."""
    rows: list[tuple[str, object]] = []
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or "path" not in reader.fieldnames:
                    raise DataError(f"{path}: a CSV manifest needs a header with a 'path' column (and optional 'label')")
                rows = [(r["path"], r.get("label")) for r in reader]
        else:
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip():
                    d = json.loads(line)
                    if "path" not in d:
                        raise DataError(f"{path}:{i}: a JSONL manifest line needs a 'path' key")
                    rows.append((d["path"], d.get("label")))
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot parse manifest {path}: {exc}") from exc
    if not rows:
        raise DataError(f"manifest {path} lists no files")
    files, labels = [], []
    for i, (p, lab) in enumerate(rows, 1):
        f = Path(p) if Path(p).is_absolute() else path.parent / p
        if not f.exists():
            raise DataError(f"{path}: entry {i} names {f}, which does not exist")
        files.append(f)
        labels.append(None if lab in (None, "") else str(lab))
    return files, labels


def waves_of(bundle: DataBundle) -> tuple[torch.Tensor, torch.Tensor]:
    """The conformed train and validation waveforms ``[N, num_samples]`` of a loaded bundle."""
    return bundle.meta["waves"]


def frontend_of(meta: dict) -> Frontend:
    return Frontend.from_json(meta["frontend"])


__all__ = ["load_digits", "load_notes", "load_path", "waves_of", "frontend_of", "np"]
