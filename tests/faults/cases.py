"""The fault-injection catalogue: bad inputs, corrupted runs and leftovers, each as a case.

A case builds its input under a fresh folder and returns what to run; :func:`run_case` runs it
in-process (bounded by an alarm, so a hang is reported, not waited for) and classifies it:
``clean`` (exit 2, one line ``panflow: error: ...`` naming the file/key), ``silent`` (accepted),
``traceback`` (any other exception or exit), ``unclear`` (exit 2 without naming the culprit),
``hang``, and for cases that must load everything, ``kept`` or ``lost``. Used by the tests in this
folder and by ``benchmarks/faults_report.py``.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOY = ["--preset", "smoke", "--set", "model.options.width=16", "--set", "model.options.depth=1",
       "--set", "train.steps=2", "--set", "data.options.n_train=256", "--set", "data.options.n_val=64"]
IMG = ["--preset", "smoke", "--set", "train.steps=0", "--set", "model.options.channels=8"]
TXT = ["--preset", "smoke", "--set", "train.steps=0", "--set", "data.options.seq_len=8",
       "--set", "model.options.dim=16", "--set", "model.options.depth=1", "--set", "model.options.heads=1"]


@dataclass
class Case:
    """``build(folder) -> (action, needle)``: ``action`` is CLI argv (a list) or a callable that
    returns an exit status / raises; the error must name ``needle``. ``expect``: ``error`` or ``keep``
    (then ``action`` returns True when every item was loaded)."""

    name: str
    group: str
    build: Callable[[Path], tuple[object, str]]
    expect: str = "error"


class Alarm(Exception):
    pass


def _on_alarm(signum, frame):
    raise Alarm


def run_case(case: Case, folder: Path, limit_s: int = 60) -> tuple[str, str]:
    """(outcome, the message or reason)."""
    from panflow import PanflowError
    from panflow.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    action, needle = case.build(folder)
    err = io.StringIO()
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(limit_s)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            if callable(action):
                try:
                    rc = action()
                except PanflowError as exc:
                    print(f"panflow: error: {exc}", file=sys.stderr)
                    rc = 2
            else:
                rc = main(list(action))
    except Alarm:
        return "hang", f"no result within {limit_s} s"
    except BaseException as exc:  # noqa: BLE001 - anything else is what the suite exists to catch
        return "traceback", f"{type(exc).__name__}: {exc}"[:300]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    text = err.getvalue()
    last = [line for line in text.splitlines() if line.startswith("panflow: error:")]
    if case.expect == "keep":
        return ("kept" if rc is True else "lost"), text[-300:]
    if rc == 2 and last:
        return ("clean" if needle.lower() in last[-1].lower() else "unclear"), last[-1][:300]
    if rc in (0, None, True):
        return "silent", "accepted"
    return "traceback", f"exit {rc}: {text[-300:]}"


# -- builders -------------------------------------------------------------------------------------
_BASE: dict[str, Path] = {}


def base_run(kind: str = "toy") -> Path:
    """A tiny trained run (made once per process) to copy and corrupt."""
    if kind not in _BASE:
        import tempfile

        from panflow.cli import main

        root = Path(tempfile.mkdtemp(prefix=f"panflow-faults-{kind}-"))
        args = ["train", "toy2d", *TOY] if kind == "toy" else ["train", "image", *IMG, "--set", "train.steps=1"]
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            assert main([*args, "--out", str(root / "run")]) == 0
        _BASE[kind] = root / "run"
    return _BASE[kind]


def copy_run(folder: Path, kind: str = "toy") -> tuple[Path, Path]:
    run = folder / "run"
    shutil.copytree(base_run(kind), run)
    ckpt = sorted((run / "checkpoints").glob("step_*"))[-1]
    return run, ckpt


def png_bytes(w: int = 8, h: int = 8, value: int = 100, bits: int = 8) -> bytes:
    """A valid grayscale PNG written by hand (so huge headers cost nothing)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes([value]) * (w * bits // 8)
    raw = zlib.compress(row * h) if w * h <= 1 << 16 else zlib.compress(row[:64])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _train(*extra: str, domain: str = "toy2d"):
    def build(folder: Path):
        base = TOY if domain == "toy2d" else IMG
        return ["train", domain, *base, *extra, "--out", str(folder / "run")], extra[-1].split("=")[0]
    return build


def _image_data(write: Callable[[Path], Path], needle: str | None = None, extra: tuple[str, ...] = ()):
    def build(folder: Path):
        target = write(folder)
        return ["train", "image", *IMG, *extra, "--data", str(target), "--out", str(folder / "run")], \
            needle or target.name
    return build


def _text_data(write: Callable[[Path], Path], needle: str | None = None):
    def build(folder: Path):
        target = write(folder)
        return ["train", "text", *TXT, "--data", str(target), "--out", str(folder / "run")], needle or target.name
    return build


def _write(name: str, data: bytes | str, sub: str = ""):
    def write(folder: Path) -> Path:
        d = folder / sub if sub else folder
        d.mkdir(parents=True, exist_ok=True)
        p = d / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        return p
    return write


def _png_folder(bad: bytes, name: str = "bad.png"):
    def write(folder: Path) -> Path:
        d = folder / "imgs"
        d.mkdir()
        (d / "good.png").write_bytes(png_bytes())
        (d / name).write_bytes(bad)
        return d
    return write


def _npz(**arrays):
    def write(folder: Path) -> Path:
        p = folder / "data.npz"
        np.savez(p, **arrays)
        return p
    return write


def _sample(*extra: str, needle: str, kind: str = "toy"):
    def build(folder: Path):
        run, _ = copy_run(folder, kind)
        return ["sample", str(run), *extra, "--out", str(folder / "s")], needle
    return build


def _corrupt_run(mutate: Callable[[Path, Path], str], command: str = "sample"):
    def build(folder: Path):
        run, ckpt = copy_run(folder)
        needle = mutate(run, ckpt)
        argv = ["sample", str(run), "--n", "2"] if command == "sample" else \
            ["train", "toy2d", "--out", str(run), "--resume", "--set", "train.steps=3"]
        return argv, needle
    return build
