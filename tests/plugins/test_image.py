import gzip
import json
import struct
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from panflow import DataError, DatasetOptions, DataSpec, Samples, frechet_distance, kernel_inception_distance
from panflow.bench import run_benchmarks
from panflow.cli import main
from panflow_image.backbones.dit import build_dit
from panflow_image.backbones.unet import build_unet
from panflow_image.data import load_digits, load_path
from panflow_image.encoder import LatentEncoder, PixelEncoder, load_encoder, make_encoder


def _png(path, size=(8, 8), mode="L", value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(path)


def test_digits_default_is_deterministic():
    a, b = load_digits(DatasetOptions(seed=3)), load_digits(DatasetOptions(seed=3))
    assert a.train.x.shape[1:] == (1, 8, 8) and len(a.train) + len(a.val) == 1797
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.val.y, b.val.y)
    assert float(a.train.x.min()) >= 0 and float(a.train.x.max()) <= 1
    r = load_digits(DatasetOptions(options={"resolution": 16}))
    assert r.train.x.shape[1:] == (1, 16, 16)


def test_folder_with_classes_and_unlabelled(tmp_path):
    for c in ("cat", "dog"):
        for i in range(3):
            _png(tmp_path / "lab" / c / f"{i}.png", value=40 * i)
    b = load_path(DatasetOptions(str(tmp_path / "lab"), val_fraction=0.34))
    assert b.meta["classes"] == ["cat", "dog"] and len(b.train) + len(b.val) == 6
    assert sorted(torch.cat([b.train.y, b.val.y]).tolist()) == [0, 0, 0, 1, 1, 1]
    for i in range(4):
        _png(tmp_path / "flat" / f"{i}.png")
    u = load_path(DatasetOptions(str(tmp_path / "flat")))
    assert u.train.y is None


def test_folder_errors_name_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_path(DatasetOptions(str(tmp_path / "empty")))
    _png(tmp_path / "bad" / "ok.png")
    good = (tmp_path / "bad" / "ok.png").read_bytes()
    (tmp_path / "bad" / "trunc.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="trunc.png"):
        load_path(DatasetOptions(str(tmp_path / "bad")))
    _png(tmp_path / "sizes" / "a.png", (8, 8))
    _png(tmp_path / "sizes" / "b.png", (9, 8))
    with pytest.raises(DataError, match="b.png is 9x8"):
        load_path(DatasetOptions(str(tmp_path / "sizes")))
    ok = load_path(DatasetOptions(str(tmp_path / "sizes"), options={"resolution": 8}))
    assert ok.train.x.shape[1:] == (1, 8, 8)


def test_mixed_modes_warn_with_file_names(tmp_path):
    _png(tmp_path / "m" / "a.png", mode="L")
    _png(tmp_path / "m" / "b.png", mode="RGB")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        b = load_path(DatasetOptions(str(tmp_path / "m")))
    assert any("mixed modes" in str(x.message) and "a.png" in str(x.message) for x in w)
    assert b.train.x.shape[1] == 3


def _idx(path, arr, code=0x08):
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def test_idx_files_gzipped_or_not(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 255, (10, 6, 6))
    _idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(10) % 3)
    b = load_path(DatasetOptions(str(tmp_path / "train-images-idx3-ubyte.gz")))
    assert b.train.x.shape[1:] == (1, 6, 6) and b.meta["classes"] == ["0", "1", "2"]
    x = torch.cat([b.train.x, b.val.x]) * 255
    assert sorted(x.round().flatten().tolist()) == sorted(imgs.flatten().astype(float).tolist())
    _idx(tmp_path / "t10k-images-idx3-ubyte", imgs)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(9))
    with pytest.raises(DataError, match="9 labels but"):
        load_path(DatasetOptions(str(tmp_path / "t10k-images-idx3-ubyte")))
    raw = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "cut-images-idx3-ubyte").write_bytes(raw[:-5])
    with pytest.raises(DataError, match="truncated"):
        load_path(DatasetOptions(str(tmp_path / "cut-images-idx3-ubyte")))


def test_npz_layouts_and_errors(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((5, 4, 4, 3), np.uint8), labels=np.arange(5) % 2)
    b = load_path(DatasetOptions(str(tmp_path / "a.npz")))
    assert b.train.x.shape[1:] == (3, 4, 4)
    np.savez(tmp_path / "b.npz", x=np.full((5, 4, 4), 3.0))
    with pytest.raises(DataError, match="expected uint8, uint16 or floats"):
        load_path(DatasetOptions(str(tmp_path / "b.npz")))
    np.savez(tmp_path / "c.npz", x=np.zeros((5, 4, 4)), y=np.arange(4))
    with pytest.raises(DataError, match="4 labels for 5 images"):
        load_path(DatasetOptions(str(tmp_path / "c.npz")))


def test_encoders_round_trip():
    x = load_digits(DatasetOptions()).train.x[:64]
    pe = PixelEncoder()
    assert torch.allclose(pe.decode(pe.encode(x)), x)
    le = make_encoder({"latent": True, "steps": 300, "latent_channels": 4})
    assert isinstance(le, LatentEncoder)
    le.fit(Samples(load_digits(DatasetOptions()).train.x))
    z = le.encode(x)
    assert z.shape == (64, 4, 4, 4) and abs(float(z.std()) - 1) < 0.3
    err = float((le.decode(z) - x).pow(2).mean())
    assert err < 0.02, err  # a trained autoencoder, not the identity: reconstruction is close
    again = load_encoder(le.config(), le.tensors())
    assert torch.equal(again.encode(x), z)


@pytest.mark.parametrize("build", [build_unet, build_dit])
def test_backbones_shapes_and_class_conditioning(build):
    spec = DataSpec("continuous", (3, 8, 8), num_classes=4)
    kw = {"channels": 16, "num_res": 1} if build is build_unet else {"dim": 32, "depth": 2, "heads": 2}
    m = build(spec, **kw)
    x, t = torch.randn(5, 3, 8, 8), torch.rand(5)
    out = m(x, t, {"label": torch.tensor([0, 1, 2, 3, 4])})
    assert out.shape == x.shape
    uncond = m(x, t, {})
    assert uncond.shape == x.shape


def test_feature_metrics_sanity():
    a = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    b = torch.randn(500, 8, generator=torch.Generator().manual_seed(1))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b + 1.0) == pytest.approx(8.0, rel=0.15)
    kid, sd = kernel_inception_distance(a, b, subsets=10, subset_size=200)
    assert abs(kid) < 3 * sd + 0.01


def test_cli_smoke_writes_pngs_and_grid(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "image", "--preset", "smoke", "--out", str(run)]) == 0
    assert main(["sample", str(run), "--n", "6", "--nfe", "2", "--guidance", "2", "--out", str(tmp_path / "png")]) == 0
    files = sorted(p.name for p in (tmp_path / "png").glob("*.png"))
    assert "grid.png" in files and len(files) == 7 and "sample_00001_class1.png" in files
    with Image.open(tmp_path / "png" / "sample_00000_class0.png") as im:
        assert im.size == (8, 8)


def test_latent_run_smoke(tmp_path):
    run = tmp_path / "lat"
    assert main(["train", "image", "--preset", "smoke", "--out", str(run), "--latent",
                 "--set", "encoder.options.steps=5"]) == 0
    contract = json.loads((next((run / "checkpoints").glob("step_*")) / "contract.json").read_text())
    assert contract["encoder"]["type"] == "latent" and contract["data_spec"]["shape"] == [4, 4, 4]
    assert main(["sample", str(run), "--n", "2", "--nfe", "2", "--out", str(tmp_path / "o")]) == 0


def test_benchmark_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("PANFLOW_CACHE", str(tmp_path / "cache"))
    paths = run_benchmarks(["image"], "smoke", tmp_path, log=lambda m: None)
    result = json.loads(paths["image"].read_text())
    roles = [r["role"] for r in result["rows"]]
    assert roles[:2] == ["floor", "baseline"] and "model · unet" in roles
    assert result["classifier"]["val_accuracy"] > 0 and list((tmp_path / "cache").rglob("*.safetensors"))


def _mnist_folder(root, n_train=40, n_test=20, gz_train=True, gz_test=False):
    """Real IDX bytes of real 8x8 digits (sklearn's, as uint8) in the MNIST file layout."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    imgs, ys = (d.images * 255 / 16).round().astype(np.uint8), d.target.astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    tr, te = (".gz" if gz_train else ""), (".gz" if gz_test else "")
    _idx(root / f"train-images-idx3-ubyte{tr}", imgs[:n_train])
    _idx(root / f"train-labels-idx1-ubyte{tr}", ys[:n_train])
    if n_test:
        _idx(root / f"t10k-images-idx3-ubyte{te}", imgs[n_train:n_train + n_test])
        _idx(root / f"t10k-labels-idx1-ubyte{te}", ys[n_train:n_train + n_test])
    return imgs, ys


def test_mnist_folder_layout_uses_t10k_as_held_out(tmp_path):
    imgs, ys = _mnist_folder(tmp_path / "m")
    b = load_path(DatasetOptions(str(tmp_path / "m"), val_fraction=0.5))
    assert (len(b.train), len(b.val)) == (40, 20) and b.meta["split"] == "given"  # val_fraction does not apply
    assert torch.equal((b.train.x[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(imgs[:40]))
    assert torch.equal((b.val.x[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(imgs[40:60]))
    assert b.val.y.tolist() == ys[40:60].tolist() and b.meta["classes"] == [str(i) for i in range(10)]
    _mnist_folder(tmp_path / "only_train", n_test=0, gz_train=False)
    r = load_path(DatasetOptions(str(tmp_path / "only_train"), val_fraction=0.25))
    assert (len(r.train), len(r.val)) == (30, 10) and "split" not in r.meta


def test_mnist_folder_errors_are_one_line_and_name_the_file(tmp_path):
    def fails(folder, match):
        with pytest.raises(DataError, match=match) as e:
            load_path(DatasetOptions(str(folder)))
        assert "\n" not in str(e.value)

    _mnist_folder(tmp_path / "nolab", n_test=0)
    (tmp_path / "nolab" / "train-labels-idx1-ubyte.gz").unlink()
    fails(tmp_path / "nolab", "train-images-idx3-ubyte.gz but no train-labels-idx1-ubyte")
    _mnist_folder(tmp_path / "both")
    _idx(tmp_path / "both" / "train-images-idx3-ubyte", np.zeros((40, 8, 8)))
    fails(tmp_path / "both", "train-images-idx3-ubyte and train-images-idx3-ubyte.gz")
    _mnist_folder(tmp_path / "size")
    _idx(tmp_path / "size" / "t10k-images-idx3-ubyte", np.zeros((20, 9, 9)))
    fails(tmp_path / "size", "t10k-images-idx3-ubyte holds 9x9 images but .*train-images-idx3-ubyte.gz holds 8x8")
    _mnist_folder(tmp_path / "count")
    _idx(tmp_path / "count" / "t10k-labels-idx1-ubyte", np.zeros(19))
    fails(tmp_path / "count", "19 labels but .*t10k-images-idx3-ubyte has 20 images")
    _mnist_folder(tmp_path / "test_only")
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / "test_only" / f).unlink()
    fails(tmp_path / "test_only", "no train-images-idx3-ubyte")
    _mnist_folder(tmp_path / "corrupt")
    raw = (tmp_path / "corrupt" / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "corrupt" / "train-images-idx3-ubyte.gz").write_bytes(raw[:12] + bytes(len(raw) - 12))
    fails(tmp_path / "corrupt", "cannot read IDX file .*train-images-idx3-ubyte.gz")
    (tmp_path / "swap").mkdir()
    _mnist_folder(tmp_path / "swap", n_test=0, gz_train=False)
    (tmp_path / "swap" / "train-labels-idx1-ubyte").write_bytes((tmp_path / "swap" / "train-images-idx3-ubyte").read_bytes())
    fails(tmp_path / "swap", "train-labels-idx1-ubyte: labels must be a 1-D integer array")


@pytest.mark.slow
def test_cli_trains_samples_and_evaluates_from_an_mnist_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PANFLOW_CACHE", str(tmp_path / "cache"))
    _mnist_folder(tmp_path / "m")
    run = tmp_path / "run"
    assert main(["train", "image", "--preset", "smoke", "--data", str(tmp_path / "m"), "--out", str(run)]) == 0
    assert main(["sample", str(run), "--n", "4", "--nfe", "2", "--out", str(tmp_path / "png")]) == 0
    assert len(list((tmp_path / "png").glob("sample_*_class*.png"))) == 4
    assert main(["eval", str(run), "--n", "4"]) == 0  # the classifier is trained on these 40 digits, tested on t10k
    card = json.loads((run / "scorecard.json").read_text())
    assert card["classifier"]["n_val"] == 20 and [r["role"] for r in card["rows"]] == ["floor", "baseline", "model"]
    assert any("held-out accuracy" in n for n in card["notes"])
    (tmp_path / "m" / "t10k-labels-idx1-ubyte").unlink()
    capsys.readouterr()
    assert main(["train", "image", "--preset", "smoke", "--data", str(tmp_path / "m"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("panflow: error: ") and "no t10k-labels-idx1-ubyte" in err[-1]
