"""No silent data loss: every document of a small corpus is trained on, 16-bit PNGs keep their
levels, loose images beside class folders are an error, and training says what it loaded."""

import json

import numpy as np
import pytest

from panflow import DataError, DatasetOptions
from panflow.cli import main

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from panflow_image.data import load_path  # noqa: E402
from panflow_text.corpus import user_corpus  # noqa: E402

DOCS = ["alpha " * 40, "bravo " * 40, "charlie " * 40]


@pytest.mark.parametrize("n_docs", [2, 3, 9])
@pytest.mark.parametrize("kind", ["folder", "jsonl"])
def test_every_document_of_a_small_corpus_is_trained_on(tmp_path, kind, n_docs):
    docs = [f"document {i}: " + f"word{i} " * 30 for i in range(n_docs)]
    if kind == "folder":
        for i, d in enumerate(docs):
            (tmp_path / f"{i}.txt").write_text(d)
        path = tmp_path
    else:
        path = tmp_path / "c.jsonl"
        path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    c = user_corpus(str(path), 0.1)
    train = "".join(c.train)
    for i in range(n_docs):
        assert f"document {i}:" in train
    assert sum(map(len, c.train)) + sum(map(len, c.val)) == sum(map(len, docs))  # nothing dropped
    assert 0 < sum(map(len, c.val)) <= 0.12 * sum(map(len, docs))


def test_sixteen_bit_grayscale_png_keeps_its_levels(tmp_path):
    levels = np.arange(64, dtype=np.uint16) * 1000  # 64 distinct 16-bit levels, most above 255
    for i in range(2):
        Image.fromarray(levels.reshape(8, 8)).save(tmp_path / f"{i}.png")
    assert Image.open(tmp_path / "0.png").mode.startswith("I")
    b = load_path(DatasetOptions(str(tmp_path), val_fraction=0.5))
    x = b.train.x[0, 0].flatten().numpy()
    assert len(np.unique(x)) == 64
    np.testing.assert_allclose(x, levels / 65535.0, atol=1e-6)
    assert b.meta["bit_depth"] == 16
    r = load_path(DatasetOptions(str(tmp_path), val_fraction=0.5, options={"resolution": 4}))
    assert len(np.unique(r.train.x.numpy())) > 2  # resizing keeps more than 8 bits too


def test_loose_images_beside_class_folders_are_an_error(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        Image.new("L", (8, 8), 10).save(tmp_path / d / "x.png")
    Image.new("L", (8, 8), 10).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match="loose.png"):
        load_path(DatasetOptions(str(tmp_path)))


def test_training_prints_what_was_loaded(tmp_path, capsys):
    data = tmp_path / "docs"
    data.mkdir()
    for i, d in enumerate(DOCS):
        (data / f"{i}.txt").write_text(d)
    (data / "notes.bin").write_bytes(b"\x00\x01")
    assert main(["train", "text", "--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--set", "train.steps=1", "--set", "data.options.seq_len=16", "--set", "model.options.dim=16",
                 "--set", "model.options.depth=1", "--set", "model.options.heads=1"]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("panflow: data "))
    assert str(data) in line and "documents 3" in line and "train documents 3" in line
    assert "skipped 1 file(s)" in line and "notes.bin" in line
