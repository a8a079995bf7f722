"""Every case of the reliability audit (issue 20) plus a generated fuzz of each loader."""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import numpy as np

from .cases import (
    TOY,
    TXT,
    Case,
    _corrupt_run,
    _image_data,
    _npz,
    _png_folder,
    _sample,
    _text_data,
    _train,
    _write,
    copy_run,
    idx_bytes,
    png_bytes,
)

IDX = "t-images-idx3-ubyte"
IDX_OK = idx_bytes(np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8))


# -- the listed inputs: each must be a one-line error naming the file or key -----------------------
def _contract_edit(fn):
    def mutate(run: Path, ckpt: Path) -> str:
        p = ckpt / "contract.json"
        c = json.loads(p.read_text())
        p.write_text(json.dumps(fn(c)))
        return "contract.json"
    return mutate


def _drop(key):
    def f(c):
        c.pop(key)
        return c
    return f


def _flip_weights(run: Path, ckpt: Path) -> str:
    p = ckpt / "ema.safetensors"  # the weights sampling uses
    b = bytearray(p.read_bytes())
    b[-3] ^= 0x01  # a low mantissa bit of the last float: still finite
    p.write_bytes(bytes(b))
    return "ema.safetensors"


def _latest_outside(run: Path, ckpt: Path) -> str:
    (run / "checkpoints" / "latest").write_text("../../elsewhere")
    return "latest"


def _no_ema(run: Path, ckpt: Path) -> str:
    (ckpt / "ema.safetensors").unlink()
    return "ema.safetensors"


def _no_tokenizers(folder: Path):
    (folder / "t.txt").write_text("some text to learn from " * 40)

    def action():
        from panflow.cli import main

        saved = sys.modules.get("tokenizers")
        sys.modules["tokenizers"] = None  # what an install without the library looks like to import
        try:
            return main(["train", "text", *TXT, "--data", str(folder / "t.txt"), "--set", 'data.options.tokenizer="bpe"',
                         "--out", str(folder / "run")])
        finally:
            if saved is None:
                sys.modules.pop("tokenizers", None)
            else:
                sys.modules["tokenizers"] = saved
    return action, "panflow[text]"


def _unavailable_extra(folder: Path):
    def action():
        import panflow.cli as cli
        import panflow.plugins as plugins
        import panflow.run as run
        from panflow.plugins import PluginInfo
        from panflow.registry import Registry

        class Stub:
            plugins = {"image": PluginInfo("image", "panflow_image.plugin", "panflow", "0.1.0", "unavailable",
                                           "No module named 'PIL'", enable='pip install "panflow[image]"')}

        real_load, real_reg = plugins.load_plugins, run.get_registry
        plugins.load_plugins, run.get_registry = (lambda refresh=False: Stub()), (lambda refresh=False: Registry())
        try:
            return cli.main(["train", "image", "--preset", "smoke", "--out", str(folder / "run")])
        finally:
            plugins.load_plugins, run.get_registry = real_load, real_reg
    return action, 'pip install "panflow[image]"'


def _max_bad_steps(folder: Path):
    def action():
        from panflow import FlowObjective, TrainConfig, Trainer
        from tests.core.tiny import Tiny, toy_data

        model = Tiny()
        model.poison_after = 1
        cfg = TrainConfig(steps=300, batch_size=32, max_bad_steps=299, progress=False, device="cpu", log_every=50)
        Trainer(model, FlowObjective(), toy_data(), cfg, run_dir=folder / "run").fit()
        return 0
    return action, "non-finite"


def _nan_message(folder: Path):
    def action():
        from panflow import FlowObjective, NonFiniteError, TrainConfig, Trainer
        from tests.core.tiny import Tiny, toy_data

        model = Tiny()
        model.poison_after = 0
        cfg = TrainConfig(steps=5, batch_size=32, progress=False, device="cpu")
        try:
            Trainer(model, FlowObjective(), toy_data(), cfg, run_dir=folder / "run").fit()
        except NonFiniteError as exc:
            return True if "no checkpoint was written" in str(exc) and "intact" not in str(exc) else False
        return False
    return action, ""


def _tmp_cleanup(folder: Path):
    run, ckpt = copy_run(folder)
    stale = run / "checkpoints" / ".step_00000001.abc.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"x" * 1000)

    def action():
        from panflow.cli import main

        rc = main(["train", "toy2d", "--out", str(run), "--resume", "--set", "train.steps=3"])
        return rc == 0 and not stale.exists()
    return action, ""


def _huge_images(folder: Path) -> Path:
    d = folder / "huge"
    d.mkdir()
    for i in range(20):  # headers of 9000x9000 images: 6.5 GB as float32, refused before decoding
        (d / f"{i:02d}.png").write_bytes(png_bytes(9000, 9000))
    return d


LISTED = [
    Case("contract without domain", "contract", _corrupt_run(_contract_edit(_drop("domain")))),
    Case("contract without config", "contract", _corrupt_run(_contract_edit(_drop("config")))),
    Case("contract not an object", "contract", _corrupt_run(_contract_edit(lambda c: [c]))),
    Case("IDX header shorter than ndim", "image", _image_data(_write("x-images-idx3-ubyte", bytes([0, 0, 8, 3, 0, 0])))),
    Case("NPZ with object arrays", "image", _image_data(_npz(x=np.array([np.zeros(3), "a"], dtype=object)))),
    Case("negative labels", "image", _image_data(_npz(x=np.zeros((6, 8, 8), np.uint8), y=np.array([0, 1, -1, 0, 1, 0])))),
    Case("unknown image mode", "image", _image_data(_png_folder(png_bytes(), "b.png"), "mode",
                                                     ("--set", 'data.options.mode="CMYK"'))),
    Case("negative lr", "config", _train("--set", "train.lr=-1")),
    Case("log_every=0", "config", _train("--set", "train.log_every=0")),
    Case("ema_decay=2", "config", _train("--set", "train.ema_decay=2")),
    Case("unknown model.options key", "config", _train("--set", "model.options.widht=3", )),
    Case("--out is a file", "cli", lambda f: ((f / "file").write_text("x") and None) or
         (["train", "toy2d", *TOY, "--out", str(f / "file")], "file")),
    Case("--out unwritable", "cli", lambda f: ((f / "file").write_text("x") and None) or
         (["train", "toy2d", *TOY, "--out", str(f / "file" / "run")], "file")),
    Case("sample --n 0", "cli", _sample("--n", "0", needle="--n")),
    Case("--label out of range", "cli", _sample("--label", "12", needle="--label", kind="image")),
    Case("BPE without tokenizers", "text", _no_tokenizers),
    Case("image domain without its extra", "cli", _unavailable_extra),
    # silently accepted before
    Case("checkpoint_every=-1", "config", _train("--set", "train.checkpoint_every=-1")),
    Case("val_fraction=1.5", "config", _train("--set", "data.val_fraction=1.5")),
    Case("unknown strategy", "config", _train("--set", 'train.strategy="zero"')),
    Case("unknown sampler at train time", "config", _train("--set", 'sample.solver="eulr"')),
    Case("unknown toy2d data option", "config", _train("--set", "data.options.n_trian=5")),
    Case("guidance on an unconditional model", "cli", _sample("--guidance", "3", needle="--guidance")),
    Case("label on an unconditional model", "cli", _sample("--label", "1", needle="--label")),
    Case("--noise-scale -1", "cli", _sample("--noise-scale", "-1", needle="--noise-scale")),
    Case("eval --n 0", "cli", lambda f: (["eval", str(copy_run(f)[0]), "--n", "0"], "--n")),
    Case("max_bad_steps 299 of 300", "train", _max_bad_steps),
    # integrity and leftovers
    Case("finite bit flip in weights", "checkpoint", _corrupt_run(_flip_weights)),
    Case("latest points outside the run", "checkpoint", _corrupt_run(_latest_outside)),
    Case("missing EMA file", "checkpoint", _corrupt_run(_no_ema)),
    Case("sample into a foreign non-empty dir", "cli",
         lambda f: ((f / "s").mkdir() or (f / "s" / "mine.txt").write_text("x") and None) or
         (["sample", str(copy_run(f)[0]), "--out", str(f / "s")], "not empty")),
    Case("huge image folder", "image", _image_data(_huge_images, "max_gb")),
    Case("NaN stop message is honest", "train", _nan_message, "keep"),
    Case(".step_*.tmp removed", "checkpoint", _tmp_cleanup, "keep"),
]


# -- data that must load completely ----------------------------------------------------------------
def _keep_text(n_docs: int, jsonl: bool):
    def build(folder: Path):
        from panflow_text.corpus import user_corpus

        docs = [f"doc{i} " + "lorem ipsum " * 20 for i in range(n_docs)]
        if jsonl:
            target = folder / "c.jsonl"
            target.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
        else:
            target = folder / "docs"
            target.mkdir()
            for i, d in enumerate(docs):
                (target / f"{i}.txt").write_text(d)
        return (lambda: all(f"doc{i} " in "".join(user_corpus(str(target)).train) for i in range(n_docs))), ""
    return build


def _keep_png16(folder: Path):
    from PIL import Image

    from panflow import DatasetOptions
    from panflow_image.data import load_path

    levels = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    for i in range(3):
        Image.fromarray(levels).save(folder / f"{i}.png")
    return (lambda: len(np.unique(load_path(DatasetOptions(str(folder))).train.x.numpy())) == 64), ""


KEEP = [Case(f"text {'JSONL' if j else 'folder'} with {n} documents", "data loss", _keep_text(n, j), "keep")
        for n in (2, 3, 5, 9) for j in (False, True)]
KEEP.append(Case("16-bit grayscale PNG levels", "data loss", _keep_png16, "keep"))


def _keep_png_without_trailer(folder: Path):
    """A PNG cut inside its IEND trailer or the checksums of its pixel chunk still holds every
    pixel: Pillow loads it, and nothing may be lost."""
    from panflow import DatasetOptions
    from panflow_image.data import load_path

    for i, cut in enumerate((1, 13, 17)):
        (folder / f"{i}.png").write_bytes(png_bytes(value=37 + i)[:-cut])

    def check():
        b = load_path(DatasetOptions(str(folder), val_fraction=0.5))
        got = sorted({int(v) for v in np.unique((255 * np.concatenate([b.train.x.numpy().ravel(),
                                                                       b.val.x.numpy().ravel()])).round())})
        return got == [37, 38, 39]
    return check, ""


KEEP.append(Case("PNG cut in its trailing CRC/IEND bytes", "data loss", _keep_png_without_trailer, "keep"))


# -- generated fuzz: each loader, a few mutations of a valid file ----------------------------------
def _mutations(valid: bytes, seed: int, trailer: int = 0) -> list[tuple[str, bytes]]:
    """Cuts (seeded), empty and wrong magic; ``trailer`` bytes at the end hold no data (PNG IEND)."""
    rng = random.Random(seed)
    end = len(valid) - trailer
    cuts = sorted({1, 3, 9, end // 2, end - 1, rng.randrange(2, end - 1)})
    out = [(f"truncated at {c}", valid[:c]) for c in cuts if 0 < c < len(valid)]
    out += [("empty", b""), ("wrong magic", b"\x7fELF" + valid[4:])]
    return out


def _fuzz() -> list[Case]:
    cases = []
    for label, data in _mutations(png_bytes(), 1, trailer=20):  # zlib adler32, IDAT CRC, IEND: see KEEP
        cases.append(Case(f"PNG {label}", "fuzz: PNG folder", _image_data(_png_folder(data))))
    cases.append(Case("PNG huge header", "fuzz: PNG folder", _image_data(_png_folder(png_bytes(40000, 40000)))))
    for label, data in _mutations(IDX_OK, 2):
        cases.append(Case(f"IDX {label}", "fuzz: IDX", _image_data(_write("t-images-idx3-ubyte", data))))
    cases += [
        Case("IDX wrong dtype code", "fuzz: IDX", _image_data(_write(IDX, IDX_OK[:2] + b"\x0d" + IDX_OK[3:]))),
        Case("IDX unknown dtype code", "fuzz: IDX", _image_data(_write(IDX, IDX_OK[:2] + b"\x07" + IDX_OK[3:]))),
        Case("IDX float NaN", "fuzz: IDX", _image_data(_write("t-images-idx3-ubyte",
                                                              idx_bytes(np.full((4, 8, 8), np.nan, ">f4"), 0x0D)))),
        Case("IDX huge dims", "fuzz: IDX", _image_data(_write("t-images-idx3-ubyte", bytes([0, 0, 8, 3]) +
                                                              bytes.fromhex("7fffffff000000ff000000ff")))),
    ]
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((4, 8, 8), np.uint8))
    for label, data in _mutations(buf.getvalue(), 3):
        cases.append(Case(f"NPZ {label}", "fuzz: NPZ", _image_data(_write("d.npz", data))))
    cases += [
        Case("NPZ NaN", "fuzz: NPZ", _image_data(_npz(x=np.full((4, 8, 8), np.nan, np.float32)))),
        Case("NPZ string dtype", "fuzz: NPZ", _image_data(_npz(x=np.full((4, 8, 8), "a")))),
        Case("NPZ empty", "fuzz: NPZ", _image_data(_npz(x=np.zeros((0, 8, 8), np.uint8)))),
        Case("NPZ wrong key", "fuzz: NPZ", _image_data(_npz(pixels=np.zeros((4, 8, 8), np.uint8)))),
        Case("NPZ label count", "fuzz: NPZ", _image_data(_npz(x=np.zeros((4, 8, 8), np.uint8), y=np.arange(3)))),
    ]
    text = "hello world, a short corpus. " * 20
    cases += [
        Case("text empty file", "fuzz: text", _text_data(_write("t.txt", ""))),
        Case("text whitespace only", "fuzz: text", _text_data(_write("t.txt", " \n\t\n"))),
        Case("text NUL bytes", "fuzz: text", _text_data(_write("t.txt", b"abc\x00def" * 10))),
        Case("text invalid UTF-8", "fuzz: text", _text_data(_write("t.txt", text.encode() + b"\xff\xfe"))),
        Case("text folder without text files", "fuzz: text", _text_data(lambda f: _write("a.bin", b"\x01", "docs")(f).parent)),
        Case("JSONL truncated line", "fuzz: text", _text_data(_write("c.jsonl", json.dumps({"text": text})[:-5]))),
        Case("JSONL missing field", "fuzz: text", _text_data(_write("c.jsonl", json.dumps({"body": text})))),
        Case("JSONL not objects", "fuzz: text", _text_data(_write("c.jsonl", "[1, 2]\n"))),
        Case("text shorter than one sequence", "fuzz: text", _text_data(_write("t.txt", "ab"), "seq_len")),
    ]
    toml = "[train]\nsteps = 2\nlr = 0.001\n"
    for label, data in [("truncated", toml[:12]), ("wrong type", "[train]\nsteps = \"many\"\n"),
                        ("unknown key", "[train]\nstepz = 2\n"), ("binary", "\x00\x01")]:
        cases.append(Case(f"config TOML {label}", "fuzz: config", lambda f, d=data, lab=label: (
            (f / "run.toml").write_text(d) and None) or
            (["train", "toy2d", *TOY, "--config", str(f / "run.toml"), "--out", str(f / "run")],
             "stepz" if lab == "unknown key" else ("steps" if lab == "wrong type" else "run.toml"))))

    def _ckpt_file(name: str, data: bytes):
        def mutate(run: Path, ckpt: Path) -> str:
            (ckpt / name).write_bytes(data)
            return name
        return mutate

    for name in ("contract.json", "model.safetensors", "ema.safetensors", "encoder.safetensors", "state.pt"):
        for label, fn in [("truncated", lambda b: b[: len(b) // 2]), ("empty", lambda b: b""),
                          ("garbage", lambda b: b"\x00garbage" * 4)]:
            def mutate(run, ckpt, name=name, fn=fn):
                p = ckpt / name
                p.write_bytes(fn(p.read_bytes()))
                return name
            command = "resume" if name in ("state.pt", "model.safetensors") else "sample"  # who reads it
            cases.append(Case(f"checkpoint {name} {label}", "fuzz: checkpoint", _corrupt_run(mutate, command)))
    return cases


FUZZ = _fuzz()
ALL = LISTED + KEEP + FUZZ
GOOD = {"error": ("clean",), "keep": ("kept",)}
