import json

import numpy as np
import pytest
import torch

from panflow import DataError, DatasetOptions, DataSpec, SampleOptions, UnknownNameError, build_config, load_run, train
from panflow.testing import assert_plugin_conforms
from panflow_video import metrics as M
from panflow_video.backbone import build, build_per_frame
from panflow_video.data import load_moving, load_path
from panflow_video.known import VideoTasks, ends_mask, prefix_mask
from panflow_video.moving import Recipe, centroids, moving_digits, trajectories
from panflow_video.video_io import read_video, write_video

SMOKE = Recipe(frames=6, size=16, digit_size=8, clips=12)


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PANFLOW_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def _digits(k=5):
    g = np.random.default_rng(0)
    return g.integers(0, 17, (k, 8, 8)).astype(float), np.arange(k)


# -- the embedded data ---------------------------------------------------------------------------
def test_centroid_tracks_are_the_recorded_physics():
    d = moving_digits(*_digits(), Recipe(frames=10, size=24, digit_size=12, clips=20, speed_max=3.0))
    assert torch.allclose(centroids(d["x"]), d["centroids"][:, 0], atol=1e-4)
    pos = d["positions"][:, 0].double()
    assert pos.min() >= 0 and pos.max() <= 12


def test_reflections_equal_the_closed_form_fold():
    """Elastic bounces between walls at 0 and R: p_t = R − |R − ((p0 + t·v) mod 2R)| per axis."""
    r = Recipe(frames=12, size=20, digit_size=8, speed_min=2, speed_max=4)
    room = 12
    pos = trajectories(50, 1, r, np.random.default_rng(7))[:, 0]
    g = np.random.default_rng(7)
    p0 = g.uniform(0, room, (50, 1, 2))[:, 0]
    speed, ang = g.uniform(2, 4, (50, 1))[:, 0], g.uniform(0, 2 * np.pi, (50, 1))[:, 0]
    v = np.stack([speed * np.sin(ang), speed * np.cos(ang)], -1)
    u = p0[:, None] + np.arange(12)[None, :, None] * v[:, None]
    fold = room - np.abs(room - np.mod(u, 2 * room))
    assert np.allclose(pos, fold, atol=1e-9)
    assert (np.abs(np.diff(pos, axis=1)) < 4).all()


def test_moving_digits_are_seeded():
    a = moving_digits(*_digits(), SMOKE)
    b = moving_digits(*_digits(), SMOKE)
    assert torch.equal(a["x"], b["x"]) and not torch.equal(a["x"], moving_digits(*_digits(), SMOKE, seed_offset=1)["x"])


def test_bounce_reflects_velocity():
    r = Recipe(frames=3, size=12, digit_size=8, speed_min=3, speed_max=3)
    g = np.random.default_rng(3)
    pos = trajectories(400, 1, r, g)[:, 0]
    step = np.abs(pos[:, 1:] - pos[:, :-1])
    assert (step <= 3 + 1e-9).all() and (pos >= 0).all() and (pos <= 4).all()


def test_embedded_split_uses_unseen_digit_images():
    b = load_moving(DatasetOptions(None, 0.25, 0, {"recipe": "smoke", "clips": 40}))
    tr, va = b.meta["train_tracks"]["source"], b.meta["val_tracks"]["source"]
    assert len(b.train) == 30 and len(b.val) == 10 and b.train.x.shape[1:] == (6, 1, 16, 16)
    assert b.meta["train_tracks"]["labels"].shape == (30, 1) and 0 <= float(b.train.x.min()) and float(b.train.x.max()) <= 1
    assert tr.max() < 1348 and va.max() < 449  # indices into disjoint image sets (1797 = 1348 + 449)
    with pytest.raises(DataError, match="unknown moving-digits option"):
        load_moving(DatasetOptions(None, 0.25, 0, {"recipe": "smoke", "fps": 3}))


def test_embedded_clips_carry_their_digit_as_the_label_condition():
    from panflow_video.plugin import data_spec

    b = load_moving(DatasetOptions(None, 0.25, 0, {"recipe": "smoke", "clips": 40}))
    assert torch.equal(b.train.y, b.meta["train_tracks"]["labels"][:, 0]) and data_spec(b).num_classes == 10
    plain = load_moving(DatasetOptions(None, 0.25, 0, {"recipe": "smoke", "clips": 40, "labels": False}))
    assert plain.train.y is None and data_spec(plain).num_classes == 0 and torch.equal(plain.train.x, b.train.x)
    two = load_moving(DatasetOptions(None, 0.25, 0, {"recipe": "smoke", "clips": 40, "digits": 2}))
    assert two.train.y is None  # two digits have no single label: unconditional by default
    with pytest.raises(DataError, match="no single clip label"):
        load_moving(DatasetOptions(None, 0.25, 0, {"recipe": "smoke", "digits": 2, "labels": True}))
    with pytest.raises(DataError, match="true or false"):
        load_moving(DatasetOptions(None, 0.25, 0, {"recipe": "smoke", "labels": "yes"}))
    with pytest.raises(UnknownNameError, match="smal"):
        load_moving(DatasetOptions(None, 0.25, 0, {"recipe": "smal"}))


# -- your clips ------------------------------------------------------------------------------------
def _clips(n=4, t=5, h=8, w=10):
    return np.random.default_rng(1).integers(0, 256, (n, t, h, w), dtype=np.uint8)


def test_npz_and_npy_round_trip(tmp_path):
    x = _clips()
    np.savez(tmp_path / "c.npz", clips=x)
    np.save(tmp_path / "c.npy", x[..., None])
    for f in ("c.npz", "c.npy"):
        b = load_path(DatasetOptions(str(tmp_path / f), 0.25, 0, {"frames": 5}))
        got = torch.cat([b.train.x, b.val.x])
        assert got.shape == (4, 5, 1, 8, 10)
        want = torch.from_numpy(x).float()[:, :, None] / 255
        assert sorted(got.sum((1, 2, 3, 4)).tolist()) == pytest.approx(sorted(want.sum((1, 2, 3, 4)).tolist()))
    b = load_path(DatasetOptions(str(tmp_path / "c.npz"), 0.25, 0, {"frames": 2, "windows": "all"}))
    assert len(b.train) + len(b.val) == 8 and b.meta["policy"]["windows"] == "all"
    rgb = np.repeat(x[..., None], 3, -1)
    np.savez(tmp_path / "rgb.npz", x=rgb)
    assert load_path(DatasetOptions(str(tmp_path / "rgb.npz"), 0.25, 0, {"frames": 5, "mode": "RGB"})).train.x.shape[2] == 3
    with pytest.raises(DataError, match=r"rgb.npz\[0\]: RGB clip with data.options.mode = 'L'"):
        load_path(DatasetOptions(str(tmp_path / "rgb.npz"), 0.25, 0, {"frames": 5}))
    np.savez(tmp_path / "f.npz", x=x.astype(np.float32) * 2)
    with pytest.raises(DataError, match=r"f.npz\[0\]: float clips must hold finite values in \[0, 1\]"):
        load_path(DatasetOptions(str(tmp_path / "f.npz"), 0.25, 0, {"frames": 5}))


def test_npz_labels_become_the_label_condition(tmp_path):
    from panflow_video.plugin import data_spec

    x = np.broadcast_to((np.arange(6, dtype=np.uint8) * 40)[:, None, None, None], (6, 4, 8, 10)).copy()  # clip k = 40k
    np.savez(tmp_path / "c.npz", clips=x, labels=np.array([0, 1, 2, 0, 1, 2]))
    b = load_path(DatasetOptions(str(tmp_path / "c.npz"), 0.34, 0, {"frames": 2, "windows": "all"}))
    assert data_spec(b).num_classes == 3 and len(b.train) + len(b.val) == 12
    for part in (b.train, b.val):  # every window keeps the label of the clip it was cut from
        clip = (part.x[:, 0, 0, 0, 0] * 255 / 40).round().long()
        assert part.y.tolist() == (clip % 3).tolist()
    off = load_path(DatasetOptions(str(tmp_path / "c.npz"), 0.34, 0, {"frames": 2, "labels": False}))
    assert off.train.y is None and data_spec(off).num_classes == 0
    np.savez(tmp_path / "plain.npz", clips=x)
    with pytest.raises(DataError, match="carry no labels"):
        load_path(DatasetOptions(str(tmp_path / "plain.npz"), 0.25, 0, {"frames": 2, "labels": True}))
    np.savez(tmp_path / "bad.npz", clips=x, labels=np.array([0.5] * 6))
    with pytest.raises(DataError, match="'labels' must be non-negative integers"):
        load_path(DatasetOptions(str(tmp_path / "bad.npz"), 0.25, 0, {"frames": 5}))
    np.savez(tmp_path / "short.npz", clips=x, labels=np.arange(5))
    with pytest.raises(DataError, match=r"one per clip \(6\)"):
        load_path(DatasetOptions(str(tmp_path / "short.npz"), 0.25, 0, {"frames": 5}))


def test_frame_folders_round_trip_and_errors(tmp_path):
    from PIL import Image

    x = _clips(3, 4)
    for i in range(3):
        (tmp_path / f"clip{i}").mkdir()
        for j in range(4):
            Image.fromarray(x[i, j]).save(tmp_path / f"clip{i}" / f"{j:03d}.png")
    b = load_path(DatasetOptions(str(tmp_path), 0.34, 0, {"frames": 4}))
    got = torch.cat([b.train.x, b.val.x])
    want = torch.from_numpy(x).float()[:, :, None] / 255
    assert any(torch.equal(got[k], want[0]) for k in range(3))
    with pytest.raises(DataError, match=r"clip0: 4 frames.*shorter than the 5 frames"):
        load_path(DatasetOptions(str(tmp_path), 0.34, 0, {"frames": 5, "stride": 1}))
    Image.fromarray(np.zeros((9, 10), np.uint8)).save(tmp_path / "clip2" / "001.png")
    with pytest.raises(DataError, match=r"001.png: frame is 10x9"):
        load_path(DatasetOptions(str(tmp_path), 0.34, 0, {"frames": 4}))
    with pytest.raises(DataError, match="unknown video data option"):
        load_path(DatasetOptions(str(tmp_path), 0.34, 0, {"frame": 4}))


def test_mp4_gif_round_trip_and_mixed_resolutions(tmp_path):
    g = np.zeros((6, 16, 16, 1), np.uint8)
    for t in range(6):
        g[t, 4:10, 2 + t:8 + t] = 200
    write_video(tmp_path / "a.mp4", g, 8)
    write_video(tmp_path / "b.gif", g, 8)
    for f, tol in (("a.mp4", 12.0), ("b.gif", 2.0)):
        back, fps = read_video(tmp_path / f)
        assert back.shape == (6, 16, 16, 1) and fps == pytest.approx(8.0, rel=0.1)
        assert np.abs(back.astype(float) - g).mean() < tol, f
    b = load_path(DatasetOptions(str(tmp_path), 0.5, 0, {"frames": 6}))
    assert len(b.train) + len(b.val) == 2 and b.meta["fps"] == pytest.approx(8.0, rel=0.1)
    write_video(tmp_path / "c.mp4", np.zeros((6, 20, 16, 1), np.uint8), 8)
    with pytest.raises(DataError, match=r"c.mp4: clip is \[6, 1, 20, 16\].*resolution"):
        load_path(DatasetOptions(str(tmp_path), 0.5, 0, {"frames": 6}))
    b = load_path(DatasetOptions(str(tmp_path), 0.5, 0, {"frames": 6, "resolution": 12}))
    assert b.train.x.shape[-2:] == (12, 12)
    (tmp_path / "bad.webm").write_bytes(b"not a video at all")
    with pytest.raises(DataError, match=r"bad.webm: not a readable video container"):
        read_video(tmp_path / "bad.webm")


# -- model and conditioning ------------------------------------------------------------------------
def _randomised(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def test_per_frame_model_is_frame_independent_and_st_unet_is_not():
    spec = DataSpec("continuous", (5, 1, 8, 8), time_shape=(5,))
    x, t = torch.randn(2, 5, 1, 8, 8), torch.rand(2, 5)
    x2 = x.clone()
    x2[:, 0] += 1.0
    for net, mixes in ((build(spec, channels=8, mults=[1, 2], heads=2), True),
                       (build_per_frame(spec, channels=8, mults=[1, 2], heads=2), False)):
        net = _randomised(net)
        with torch.no_grad():
            d = (net(x2, t) - net(x, t))[:, 3:].abs().max()
        assert (d > 1e-4) if mixes else (d == 0), (mixes, float(d))


def test_video_tasks_sampler_leaves_frames_to_generate():
    s = VideoTasks(p_none=0.2, p_prefix=0.4)
    m = s.draw(4000, (8,), torch.Generator().manual_seed(0), "cpu")
    assert m.shape == (4000, 8) and not m.all(1).any()
    none = ~m.any(1)
    prefix = m[:, 0] & ~m[:, -1]
    ends = m[:, 0] & m[:, -1]
    assert abs(float(none.float().mean()) - 0.2) < 0.03 and abs(float(prefix.float().mean()) - 0.4) < 0.03
    assert abs(float(ends.float().mean()) - 0.4) < 0.03
    assert torch.equal(prefix_mask(2, 5, 2)[0], torch.tensor([1, 1, 0, 0, 0]).bool())
    assert torch.equal(ends_mask(1, 5, 1, 2)[0], torch.tensor([1, 0, 0, 1, 1]).bool())


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    cfg = build_config("video", "smoke", overrides={"train.progress": False, "data.options": {"recipe": "smoke",
                                                                                              "clips": 24}})
    return load_run(train(cfg, tmp_path_factory.mktemp("video-run")), device="cpu")


def test_smoke_train_sample_and_known_frames_stay_given(smoke_run, tmp_path):
    run = smoke_run
    assert run.contract["objective"]["known"]["name"] == "video-tasks" and run.spec.time_shape == (6,)
    seen = []
    model = run.model
    run.model = lambda x, t, c: (seen.append(t.clone()), model(x, t, c))[1]
    z_known = torch.rand(3, *run.spec.shape) * 2 - 1
    known = prefix_mask(3, 6, 2)
    res = run.objective.generate(run.model, (3, *run.spec.shape), SampleOptions("euler", nfe=3), known=known,
                                 x_known=z_known)
    run.model = model
    assert torch.equal(res.x[:, :2], z_known[:, :2]) and not torch.equal(res.x[:, 2:], z_known[:, 2:])
    assert all(bool((t[:, :2] == 1).all()) and bool((t[:, 2:] < 1).all()) for t in seen)
    out, setup = run.generate(3, run.options(nfe=2), known=known, x_known=(z_known + 1) / 2)
    assert out.x.shape == (3, 6, 1, 16, 16) and setup["known_fraction"] == pytest.approx(2 / 6)
    files = run.domain.write_samples(out, tmp_path / "s", meta={"fps": 8})
    names = sorted(f.name for f in files)
    assert names == ["grid.png", "sample_00000.mp4", "sample_00001.mp4", "sample_00002.mp4"]
    back, _ = read_video(tmp_path / "s" / "sample_00000.mp4")
    assert back.shape == (6, 64, 64, 1)
    assert run.spec.num_classes == 10  # the digit is the clip's label: ask for one, guided
    digits, setup = run.generate(4, run.options(nfe=2, guidance=2.0), labels=torch.tensor([3, 3, 7, 7]))
    assert digits.x.shape == (4, 6, 1, 16, 16) and digits.y.tolist() == [3, 3, 7, 7] and setup["guidance"] == 2.0
    _, setup = run.generate(3, run.options(nfe=2, guidance=2.0))
    assert setup["conditions"] == ["label"]  # guided, no labels given: the classes in turn
    _, setup = run.generate(3, run.options(nfe=2, guidance=2.0), known=known, x_known=(z_known + 1) / 2)
    assert setup["conditions"] == []  # given frames speak for the clip: no arbitrary class to guide towards


def test_card_of_a_model_that_never_learnt_its_null_label(tmp_path):
    """Label dropout 0: no unconditional row, and prediction / interpolation get the true labels."""
    from panflow_video.evaluate import video_card

    cfg = build_config("video", "smoke", overrides={"train.progress": False, "flow.label_dropout": 0.0,
                                                     "data.options": {"recipe": "smoke", "clips": 24}})
    run = load_run(train(cfg, tmp_path / "run"), device="cpu")
    card = video_card(run, run.load_data(), 4, classifier_steps=(5, 5))
    model = card.row("model")
    assert [r.role for r in card.rows] == ["floor", "baseline · copy-last-frame", "model"]
    assert model.setup["task_labels"] == "held-out clips' digits" and "pred_mse@1" in model.metrics


def test_metrics_on_known_cases():
    a = np.linspace(0, 1, 1001)
    assert M.wasserstein_1d(a, a + 0.3) == pytest.approx(0.3, abs=1e-6)
    x = torch.rand(4, 5, 1, 6, 6)
    c = M.copy_last(x, 2)
    assert torch.equal(c[:, 4], x[:, 1]) and torch.equal(c[:, :2], x[:, :2])
    assert M.horizon_mse(c, c, 2) == [0.0, 0.0, 0.0]
    tracks = torch.tensor([[[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 1.0]]])
    assert M.speeds(tracks).tolist() == [1.0, 1.0, 1.0] and M.bounce_rate(tracks) == 0.5


def test_plugin_conforms():
    assert_plugin_conforms("video")


@pytest.mark.slow
def test_benchmark_smoke_writes_score_card(tmp_path, monkeypatch):
    from panflow.bench import run_benchmarks
    from panflow_video.plugin import PRESETS

    monkeypatch.setitem(PRESETS["smoke"], "sample.guidance", 1.5)  # the card samples with the run's own settings
    paths = run_benchmarks(["video"], "smoke", tmp_path, log=lambda m: None)
    result = json.loads(paths["video"].read_text())
    roles = [r["role"] for r in result["rows"]]
    assert roles == ["floor", "baseline · per-frame model", "baseline · copy-last-frame", "model", "model · null label"]
    model = next(r for r in result["rows"] if r["role"] == "model")
    assert model["setup"]["labels"] == "held-out clips' digits" and model["setup"]["guidance"] == 1.5
    assert {b["name"] for b in result["bars"]} >= {"per-frame FD / floor", "identity consistency / real"}


def _clip_folders(tmp_path):
    from PIL import Image

    x = _clips(5, 4)
    for i in range(5):
        (tmp_path / f"clip{i}").mkdir()
        for j in range(4 if i != 3 else 2):  # clip3 is too short: found only when it is read
            Image.fromarray(x[i, j]).save(tmp_path / f"clip{i}" / f"{j:03d}.png")
    return x, {"frames": 4, "lazy": True}


def test_lazy_clip_folders_read_one_clip_at_a_time_and_name_bad_clips(tmp_path):
    from panflow import BadItem, is_lazy

    x, opts = _clip_folders(tmp_path)
    b = load_path(DatasetOptions(str(tmp_path), 0.2, 0, opts))
    assert is_lazy(b.train) and b.meta["shape"] == [4, 1, 8, 10] and len(b.train) + len(b.val) == 5
    items = [b.train[i] for i in range(len(b.train))] + [b.val[i] for i in range(len(b.val))]
    bad = [it for it in items if isinstance(it, BadItem)]
    assert len(bad) == 1 and "clip3: 2 frames" in bad[0].describe()
    want = {float(torch.from_numpy(x[i]).float().sum() / 255) for i in (0, 1, 2, 4)}
    got = {float(it["x"].sum()) for it in items if not isinstance(it, BadItem)}
    assert all(any(abs(g - w) < 1e-3 for w in want) for g in got)
    with pytest.raises(DataError, match="lazy reads one window per clip"):
        load_path(DatasetOptions(str(tmp_path), 0.2, 0, {**opts, "windows": "all"}))


@pytest.mark.slow
def test_lazy_clip_folders_train(tmp_path):
    _, opts = _clip_folders(tmp_path)
    cfg = build_config("video", "smoke", data=str(tmp_path), overrides={
        "data.options": opts, "data.workers": 0, "data.max_bad_items": 1, "train.progress": False,
        "data.val_fraction": 0.2, "train.steps": 2, "train.batch_size": 2})
    run = load_run(train(cfg, tmp_path / "run"), device="cpu")
    assert run.spec.shape == (4, 1, 8, 10)


def test_report_previews_are_film_strips_one_row_per_clip():
    from io import BytesIO

    from PIL import Image

    from panflow_video.previews import film_strip, previews

    clips = np.zeros((2, 3, 1, 4, 4))
    clips[1, 2] = 1.0                                  # clip 1, frame 2 is white
    g = film_strip(clips)
    assert g.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert g[1 + 5: 1 + 5 + 4, 1 + 2 * 5: 1 + 2 * 5 + 4].min() == 1.0 and g[1:5, 1:5].max() == 0.0
    out = previews({}, {"real.clips": clips, "model.clips": clips})
    assert [p.title.split(":")[0] for p in out] == ["real", "model"]
    img = np.asarray(Image.open(BytesIO(out[0].data)))
    assert img.shape[1] >= 480 and previews({}, {}) == []


def test_fresh_process_trains_without_importing_the_benchmark(tmp_path):
    """The domain names the 'video-tasks' known sampler; registering the plugin must register it,
    not a later import of the benchmark (a bare `panflow train --domain video` failed before)."""
    import subprocess
    import sys

    code = ("import panflow; from panflow.run import build_config, train\n"
            "train(build_config('video', 'smoke', overrides={'train.progress': False}), r'%s')" % (tmp_path / "run"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert any((tmp_path / "run" / "checkpoints").glob("step_*"))
