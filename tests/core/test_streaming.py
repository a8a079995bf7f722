"""Streamed data: order as a function of (seed, epoch, step), bit-exact resume, bad input, stats."""

import numpy as np
import pytest
import torch

from panflow import (
    BadItem,
    DataError,
    Encoder,
    FlowObjective,
    LazySamples,
    LoaderOptions,
    RunningMoments,
    Samples,
    ShardedSamples,
    ShardStore,
    ShardWriter,
    StandardEncoder,
    TrainConfig,
    Trainer,
    draw_subset,
    epoch_permutation,
    fit_encoder,
    heldout,
    rank_shards,
)
from panflow.loader import StepBatches

from .streamdata import IndexedLazy, read_npz, record_indices, row, sharded, write_shards
from .tiny import Tiny


def cfg(**kw):
    base = dict(steps=10, batch_size=8, lr=1e-2, seed=5, progress=False, log_every=1, ema_decay=0.9,
                device="cpu", grad_clip=1.0)
    base.update(kw)
    return TrainConfig(**base)


def make(data, run_dir, workers=0, max_bad=0, encode=None, **kw):
    torch.manual_seed(0)
    return Trainer(Tiny(), FlowObjective(), data, cfg(**kw), run_dir=run_dir, encode=encode,
                   loader=LoaderOptions(workers=workers, prefetch=2, max_bad=max_bad))


def state(t):
    return {k: v.clone() for k, v in [*t.model.state_dict().items(), *t.ema.state_dict().items()]}


def test_every_epoch_is_the_dataset_once_and_ranks_are_disjoint():
    n, B, world = 10, 4, 2
    ranks = [StepBatches(n, B, r, world, seed=3) for r in range(world)]
    stream = []
    for step in range(5):  # 20 samples = two epochs, batches straddle the boundary
        parts = [r.indices(step) for r in ranks]
        assert not set(parts[0]) & set(parts[1])
        stream += parts[0] + parts[1]
    assert stream[:10] == epoch_permutation(n, 3, 0).tolist() and stream[10:] == epoch_permutation(n, 3, 1).tolist()
    assert sorted(stream[:10]) == list(range(n)) and stream[:10] != stream[10:]
    one = StepBatches(n, B, 0, 1, seed=3)  # one rank reads the same global batches
    assert [i for s in range(5) for i in one.indices(s)] == stream


def test_shards_are_dealt_disjointly_per_epoch():
    for epoch in range(3):
        got = [rank_shards(7, r, 3, seed=1, epoch=epoch) for r in range(3)]
        assert sorted(sum(got, [])) == list(range(7))
    assert rank_shards(7, 0, 3, 1, 0) != rank_shards(7, 0, 3, 1, 1)


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_resume_is_bit_exact(tmp_path, workers):
    data = IndexedLazy(20)
    whole = make(data, tmp_path / "whole", encode=lambda x: x * 0.1)
    log_whole = []
    record_indices(whole, log_whole, 0.1)
    whole.fit()
    first = make(data, tmp_path / "cut", workers=workers, encode=lambda x: x * 0.1)
    first.fit(until=3)  # mid-epoch: 24 of 20 + 20 samples
    again = make(data, tmp_path / "cut", workers=workers, encode=lambda x: x * 0.1)
    log_again = []
    record_indices(again, log_again, 0.1)
    assert again.resume() == 3
    again.fit()
    a, b = state(whole), state(again)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert log_again == log_whole[3:]
    epoch0 = [i for _, idx in log_whole for i in idx][:20]
    assert sorted(epoch0) == list(range(20))


@pytest.mark.slow
def test_sharded_resume_is_bit_exact_and_reads_each_shard_once_per_epoch(tmp_path):
    data = sharded(tmp_path / "shards", n_shards=4, per_shard=6)
    whole = make(data, tmp_path / "whole", steps=9, workers=2)
    log = []
    record_indices(whole, log)
    whole.fit()
    seen = [i for _, idx in log for i in idx]
    assert sorted(seen[:24]) == list(range(24)) and sorted(seen[24:48]) == list(range(24))
    first = make(data, tmp_path / "cut", steps=9)
    first.fit(until=4)  # 32 samples: inside the second shard of epoch 1
    again = make(data, tmp_path / "cut", steps=9, workers=1)
    again.resume()
    again.fit()
    a, b = state(whole), state(again)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_bad_item_stops_the_run_by_name(tmp_path):
    t = make(IndexedLazy(16, bad=(7,)), tmp_path, steps=4)
    with pytest.raises(DataError, match=r"chunk-007\.bin: ValueError: corrupt chunk.*max_bad_items=0"):
        t.fit()


def test_bad_items_within_budget_are_skipped_and_counted(tmp_path):
    t = make(IndexedLazy(16, bad=(7,)), tmp_path, steps=4, max_bad=2)  # 32 samples: item 7 twice
    log = []
    record_indices(t, log)
    t.fit()
    assert t.feeder.bad == ["chunk-007.bin: ValueError: corrupt chunk"] * 2
    seen = [i for _, idx in log for i in idx]
    assert 7 not in seen and len(seen) == 32  # replaced by the next item: batches stay full
    with pytest.raises(DataError, match="3 bad so far"):
        make(IndexedLazy(16, bad=(7,)), tmp_path / "b", steps=6, max_bad=2).fit()


def test_bad_shard_is_named(tmp_path):
    paths = write_shards(tmp_path, 3, 4)
    open(paths[1], "wb").write(b"not a zip")
    data = ShardedSamples(paths, read_npz, lengths=[4, 4, 4])
    with pytest.raises(DataError, match=r"shard-001\.npz"):
        make(data, tmp_path / "run", steps=4).fit()
    counted = ShardedSamples(paths, read_npz)  # counting reads the shards: the bad one is known up front
    assert counted.lengths == [4, 0, 4] and "shard-001.npz" in counted.bad[0].name
    t = make(counted, tmp_path / "run2", steps=4, max_bad=1)
    t.fit()
    assert len(t.feeder.bad) == 1


def test_running_moments_match_closed_form():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 3, 5, generator=g) * torch.tensor([1.0, 10.0, 0.1])[None, :, None] + 4.0
    m = RunningMoments(dim=1)
    for chunk in x.split(37):
        m.update(chunk)
    flat = x.transpose(0, 1).reshape(3, -1).double()
    torch.testing.assert_close(m.mean, flat.mean(1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.var, flat.var(1, unbiased=False), rtol=1e-10, atol=1e-12)


def test_standard_encoder_fits_a_stream_like_the_whole():
    x = torch.randn(300, 2, 4) * torch.tensor([3.0, 0.5])[None, :, None] + 1.0
    whole, streamed = StandardEncoder(), StandardEncoder()
    whole.fit(Samples(x))
    lazy = LazySamples(300, get=lambda i: {"x": x[i]})
    assert fit_encoder(streamed, lazy) == {"mode": "stream", "samples": 300}
    torch.testing.assert_close(whole.mean, streamed.mean)
    torch.testing.assert_close(streamed.decode(streamed.encode(x)), x, rtol=1e-5, atol=1e-5)
    z = streamed.encode(x)
    torch.testing.assert_close(z.transpose(0, 1).reshape(2, -1).std(1, unbiased=False), torch.ones(2), rtol=1e-4, atol=1e-4)


def test_non_streaming_encoder_sees_a_bounded_seeded_subset():
    class Recording(Encoder):
        fit_samples = 7

        def fit(self, train):
            self.seen = train.x[:, 0].long().tolist()

    a, b = Recording(), Recording()
    rec = fit_encoder(a, IndexedLazy(50), seed=4)
    fit_encoder(b, IndexedLazy(50), seed=4)
    assert rec == {"mode": "subset", "samples": 7, "of": 50, "seed": 4}
    assert a.seen == b.seen and len(set(a.seen)) == 7 and a.seen == sorted(a.seen)
    assert fit_encoder(Recording(), Samples(torch.zeros(5, 2))) == {"mode": "all", "samples": 5}


def test_heldout_draw_is_bounded_seeded_and_distinct(tmp_path):
    lazy = IndexedLazy(100)
    a, b, c = heldout(lazy, 10, seed=1), heldout(lazy, 10, seed=1), heldout(lazy, 10, seed=2)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert len(set(a.x[:, 0].tolist())) == 10 and len(heldout(lazy, 500)) == 100
    sh = draw_subset(sharded(tmp_path, 5, 6), 8, seed=0)
    assert len(sh) == 8 and len(set(sh.x[:, 0].tolist())) == 8


def test_shard_store_round_trip_and_truncation(tmp_path):
    n = 23
    x = torch.randn(n, 3, 2)
    s = Samples(x, cond={"label": torch.arange(n) % 4, "obs": torch.randn(n, 5)}, mask=torch.rand(n, 3) > 0.3)
    w = ShardWriter(tmp_path / "store", shard_size=10)
    for part in (s.index(slice(0, 7)), s.index(slice(7, n))):
        w.append(part)
    w.close()
    store = ShardStore(tmp_path / "store")
    assert len(store) == n and store.lengths == [10, 10, 3]
    back = draw_subset(store, n)
    assert torch.equal(back.x, x) and torch.equal(back.cond["label"], s.cond["label"])
    assert torch.equal(back.cond["obs"], s.cond["obs"]) and torch.equal(back.mask, s.mask)
    f = tmp_path / "store" / "x-00001.npy"
    f.write_bytes(f.read_bytes()[:-30])
    bad = ShardStore(tmp_path / "store")[19]
    assert "x-00001.npy[9]" in bad.name and "truncated" in bad.error
    with pytest.raises(DataError, match="not a panflow store"):
        ShardStore(tmp_path)
    with pytest.raises(DataError, match="already holds a store"):
        ShardWriter(tmp_path / "store")


def test_in_memory_data_keeps_the_fast_path(tmp_path):
    t = make(Samples(torch.stack([row(i) for i in range(20)])), tmp_path)
    assert t.feeder is None and isinstance(t.data, Samples)
    assert np.isfinite(t.fit()[-1]["loss"])


def test_batched_read_falls_back_to_single_reads_to_name_the_bad_item():
    class Batched(IndexedLazy):
        def items(self, indices):
            if self.bad & set(indices):
                raise OSError("chunk read failed")
            return [{"x": row(i) * 0 + i} for i in indices]  # the batched read is its own code path

    got = Batched(8, bad=(3,)).__getitems__([1, 3, 5])
    assert isinstance(got[1], BadItem) and got[1].name == "chunk-003.bin" and "corrupt chunk" in got[1].error
    assert got[0]["x"].tolist() == row(1).tolist()  # fell back to item()
    assert [g["x"][1].item() for g in Batched(8).__getitems__([2, 4])] == [2.0, 4.0]  # batched path used
