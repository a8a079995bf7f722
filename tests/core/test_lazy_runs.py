"""Whole runs on lazy data: a plugin dataset returning LazySamples, and the pre-encoding cache."""

import json

import pytest
import torch

from panflow import (
    DataBundle,
    DataSpec,
    Domain,
    Samples,
    ShardStore,
    StandardEncoder,
    build_config,
    get_registry,
    load_run,
    train,
)
from panflow.cli import main
from panflow.config import save_toml
from panflow.latents import encode_source

from .streamdata import IndexedLazy

PLUGIN = "test-lazy"


def _load(opts):
    return DataBundle(IndexedLazy(64), Samples(torch.stack([torch.tensor([1.0, 0.0])] * 8)), {"shape": [2]})


@pytest.fixture
def lazy_domain():
    reg = get_registry().scoped(PLUGIN)
    reg.add_domain(Domain("lazyvec", "2-D vectors from a lazy dataset", "indexed", "mlp",
                          data_spec=lambda b: DataSpec("continuous", tuple(b.meta["shape"])),
                          make_encoder=lambda cfg: StandardEncoder(), load_encoder=StandardEncoder.load,
                          write_samples=lambda s, out, meta=None: [],
                          presets={"smoke": {"train.steps": 6, "train.batch_size": 16, "train.log_every": 2,
                                             "train.progress": False, "train.device": "cpu", "data.workers": 1,
                                             "model.options": {"width": 16, "depth": 2}}}))
    from panflow import Dataset

    reg.add_dataset(Dataset("indexed", "lazyvec", _load, "96 indexed rows, read lazily"))
    yield
    get_registry().remove_plugin(PLUGIN)


@pytest.mark.slow
def test_plugin_lazy_dataset_trains_streamed_with_streamed_encoder_stats(tmp_path, lazy_domain):
    cfg = build_config("lazyvec", "smoke")
    run_dir = train(cfg, tmp_path / "run")
    contract = json.loads(next((run_dir / "checkpoints").glob("step_*")).joinpath("contract.json").read_text())
    assert contract["encoder_fit"] == {"mode": "stream", "samples": 64}
    run = load_run(run_dir, device="cpu")
    x = torch.stack([IndexedLazy(64).item(i)["x"] for i in range(64)])
    torch.testing.assert_close(run.encoder.mean, x.mean(0))  # Welford over the stream = the whole set
    samples, setup = run.generate(4, run.options(nfe=2))
    assert samples.x.shape == (4, 2) and torch.isfinite(samples.x).all()


def test_encode_config_then_train_from_the_cache(tmp_path, lazy_domain):
    cfg = build_config("lazyvec", "smoke")
    save_toml(cfg, tmp_path / "cfg.toml")
    cache = encode_source(tmp_path / "cfg.toml", tmp_path / "cache", device="cpu", shard_size=24)
    store = ShardStore(cache / "train")
    assert store.lengths == [24, 24, 16]
    info = json.loads((cache / "cache.json").read_text())
    enc = StandardEncoder.load(info["encoder"], {"mean": torch.tensor([31.5, 0.0]), "std": torch.ones(2)})
    assert info["encoder_hash"] != "" and enc.config() == info["encoder"]
    z = torch.stack([store.item(i)["x"] for i in range(64)])
    x = torch.stack([IndexedLazy(64).item(i)["x"] for i in range(64)])
    torch.testing.assert_close(z.mean(0), torch.zeros(2), atol=1e-5, rtol=0)  # encoded: standardised
    torch.testing.assert_close(z[:, 0] * x[:, 0].std(unbiased=False) + 31.5, x[:, 0], rtol=1e-5, atol=1e-4)
    cfg.data.cache = str(cache)
    run_dir = train(cfg, tmp_path / "run")
    contract = json.loads(next((run_dir / "checkpoints").glob("step_*")).joinpath("contract.json").read_text())
    assert contract["encoder_fit"] == {"mode": "given"} and contract["dataset"]["cache"] == str(cache)
    assert contract["dataset"]["encoder_hash"] == info["encoder_hash"]


@pytest.mark.slow
def test_latent_image_run_encodes_to_a_cache_and_trains_from_it(tmp_path, capsys):
    run = tmp_path / "lat"
    assert main(["train", "image", "--preset", "smoke", "--out", str(run), "--latent",
                 "--set", "encoder.options.steps=5"]) == 0
    assert main(["encode", str(run), "--out", str(tmp_path / "cache"), "--device", "cpu", "--shard-size", "32"]) == 0
    assert "train with --set data.cache=" in capsys.readouterr().out
    r = load_run(run, device="cpu")
    store = ShardStore(tmp_path / "cache" / "train")
    train_x = r.load_data().train.x
    assert len(store) == len(train_x) and store.fields["x"]["shape"] == [4, 4, 4]
    with torch.no_grad():
        want = r.encoder.encode(train_x[:5])
    got = torch.stack([store.item(i)["x"] for i in range(5)])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert main(["train", "image", "--preset", "smoke", "--out", str(tmp_path / "from-cache"),
                 "--set", f"data.cache={tmp_path / 'cache'}", "--set", "data.workers=0"]) == 0
    assert main(["sample", str(tmp_path / "from-cache"), "--n", "2", "--nfe", "2", "--out", str(tmp_path / "o")]) == 0
    # a cache refuses a run of another domain, and a missing source is a one-line error
    assert main(["train", "toy2d", "--preset", "smoke", "--out", str(tmp_path / "t"),
                 "--set", f"data.cache={tmp_path / 'cache'}"]) == 2
    assert "holds domain 'image' latents" in capsys.readouterr().err
    assert main(["encode", str(tmp_path / "nothing"), "--out", str(tmp_path / "c2")]) == 2
    assert "neither a run directory nor a config file" in capsys.readouterr().err
