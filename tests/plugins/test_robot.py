import json

import h5py
import numpy as np
import pytest
import torch

import panflow
from panflow import DataError, DatasetOptions
from panflow.testing import assert_plugin_conforms
from panflow_robot.__main__ import main as robot_main
from panflow_robot.data import load_demos, pointmass_episodes
from panflow_robot.encoder import ChunkEncoder
from panflow_robot.env import PointMassEnv, expert_demos, expert_rollout
from panflow_robot.episodes import Episodes, Horizons, windows
from panflow_robot.evaluate import mean_of_modes
from panflow_robot.formats import export_zarr, read_episodes, read_lerobot
from panflow_robot.known import committed_mask
from panflow_robot.metrics import boundary_jerk, wilson
from panflow_robot.policy import ChunkPolicy, rollout


# -- task --------------------------------------------------------------------------------------
def test_env_and_demos_are_deterministic():
    a, b = PointMassEnv(8, seed=3), PointMassEnv(8, seed=3)
    assert np.array_equal(a.reset(), b.reset())
    d1, d2, d3 = expert_demos(6, seed=1), expert_demos(6, seed=1), expert_demos(6, seed=2)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(d1, d2))
    assert not np.array_equal(d1[0][1], d3[0][1])


def test_expert_is_bimodal_and_the_mean_of_its_modes_crashes():
    sides = np.array([s for *_, s in expert_demos(200, seed=0)])
    assert 0.35 < (sides == 1).mean() < 0.65
    ex = expert_rollout(200, seed=10_000)
    assert ex.success.mean() > 0.95 and {1, -1} <= set(ex.side.tolist())
    avg = mean_of_modes(100, seed=10_000)
    assert avg.collided.mean() > 0.8 and avg.success.mean() < 0.1


def test_wilson_interval_and_boundary_jerk():
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)
    acts = np.concatenate([np.ones((8, 2)), 2 * np.ones((8, 2))])   # a step in velocity at the boundary t = 8
    on, off = boundary_jerk(acts, np.ones(16, bool), [0, 8])
    assert np.allclose(on, np.sqrt(2) / 0.01) and np.allclose(off, 0.0)


# -- data ----------------------------------------------------------------------------------------
def _episodes(n=3, T=20, o=3, a=2, seed=0) -> Episodes:
    rng = np.random.default_rng(seed)
    return Episodes([rng.normal(size=(T + i, o)).astype(np.float32) for i in range(n)],
                    [rng.normal(size=(T + i, a)).astype(np.float32) for i in range(n)])


def _write_robomimic(path, eps: Episodes, image=False):
    with h5py.File(path, "w") as f:
        for i, (o, a) in enumerate(zip(eps.obs, eps.actions)):
            g = f.create_group(f"data/demo_{i}")
            g["actions"] = a
            g["obs/robot0_eef_pos"] = o[:, :2]
            g["obs/robot0_gripper_qpos"] = o[:, 2:]
            if image:
                g["obs/agentview_image"] = np.zeros((len(a), 4, 4, 3), np.uint8)


def _write_lerobot(root, eps: Episodes, video=False):
    import pyarrow as pa
    import pyarrow.parquet as pq

    feats = {"observation.state": {"dtype": "float32", "shape": [eps.obs[0].shape[1]]},
             "action": {"dtype": "float32", "shape": [eps.actions[0].shape[1]]}}
    if video:
        feats["observation.images.top"] = {"dtype": "video", "shape": [8, 8, 3]}
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({"fps": 10, "features": feats}))
    (root / "data" / "chunk-000").mkdir(parents=True)
    for i, (o, a) in enumerate(zip(eps.obs, eps.actions)):
        tab = pa.table({"observation.state": o.tolist(), "action": a.tolist(), "episode_index": [i] * len(a),
                        "frame_index": list(range(len(a)))})
        rows_reversed = tab.take(pa.array(list(range(len(a)))[::-1]))   # out of order: the reader sorts by frame
        pq.write_table(rows_reversed, root / "data" / "chunk-000" / f"episode_{i:06d}.parquet")


def _same(a: Episodes, b: Episodes):
    assert len(a) == len(b)
    for x, y in zip(a.obs + a.actions, b.obs + b.actions):
        np.testing.assert_array_equal(x, y)


def test_zarr_export_and_every_reader_round_trip(tmp_path):
    eps = _episodes()
    export_zarr(eps, tmp_path / "demo.zarr")
    _same(read_episodes(tmp_path / "demo.zarr"), eps)
    _write_robomimic(tmp_path / "demo.hdf5", eps)
    _same(read_episodes(tmp_path / "demo.hdf5"), eps)   # obs keys concatenated in sorted order
    _write_lerobot(tmp_path / "lerobot", eps)
    _same(read_episodes(tmp_path / "lerobot"), eps)
    b = load_demos(DatasetOptions(path=str(tmp_path / "demo.zarr"), val_fraction=0.34))
    assert b.train.x.shape[1:] == (16, 2) and b.train.cond["obs"].shape[1:] == (2, 3)
    assert len(b.train) + len(b.val) == sum(len(a) for a in eps.actions)


def test_readers_refuse_images_and_video(tmp_path):
    eps = _episodes()
    _write_lerobot(tmp_path / "lr", eps, video=True)
    with pytest.raises(DataError, match="video"):
        read_lerobot(tmp_path / "lr", ["observation.images.top"])
    _same(read_lerobot(tmp_path / "lr"), eps)   # the state features still load
    _write_robomimic(tmp_path / "img.hdf5", eps, image=True)
    with pytest.raises(DataError, match="image"):
        read_episodes(tmp_path / "img.hdf5", {"obs_keys": ["agentview_image"]})


@pytest.mark.parametrize("breakage, message", [
    ("empty", "episode 1 is empty"), ("short", "episode 1 has 5 steps, shorter than the prediction horizon 16"),
    ("mismatch", "episode 1: 21 actions but 20 observations"), ("nan", "episode 1: actions hold NaN"),
])
def test_bad_episodes_name_episode_and_file(tmp_path, breakage, message):
    eps = _episodes()
    if breakage == "empty":
        eps.obs[1], eps.actions[1] = eps.obs[1][:0], eps.actions[1][:0]
    elif breakage == "short":
        eps.obs[1], eps.actions[1] = eps.obs[1][:5], eps.actions[1][:5]
    elif breakage == "mismatch":
        eps.obs[1] = eps.obs[1][:20]
    else:
        eps.actions[1][3, 0] = np.nan
    path = tmp_path / "bad.hdf5"
    _write_robomimic(path, eps)
    with pytest.raises(DataError, match=message) as err:
        load_demos(DatasetOptions(path=str(path)))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unknown_layout_is_a_clear_error(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a recognised demonstration set"):
        load_demos(DatasetOptions(path=str(tmp_path / "x.txt")))


def test_windows_follow_the_recipe():
    eps = pointmass_episodes(2, seed=0)
    h = Horizons()
    obs, chunk, ep = windows(eps, h)
    t = 10
    np.testing.assert_array_equal(obs[t], eps.obs[0][t - 1: t + 1])
    np.testing.assert_array_equal(chunk[t], eps.actions[0][t - 2: t + 14])   # overlap 2 steps back
    np.testing.assert_array_equal(chunk[0, :3], eps.actions[0][[0, 0, 0]])   # padded with the first step


def test_normalisation_round_trip_and_contract():
    b = load_demos(DatasetOptions(options={"episodes": 10}))
    enc = ChunkEncoder()
    enc.fit(b.train)
    z, zc = enc.encode(b.train.x), enc.encode_cond(b.train.cond)["obs"]
    assert float(z.min()) == pytest.approx(-1, abs=1e-5) and float(z.max()) == pytest.approx(1, abs=1e-5)
    assert float(zc.abs().max()) <= 1 + 1e-5
    torch.testing.assert_close(enc.decode(z), b.train.x, atol=1e-5, rtol=1e-5)
    again = ChunkEncoder.from_config(json.loads(json.dumps(enc.config())))
    assert torch.equal(again.encode_cond(b.val.cond)["obs"], enc.encode_cond(b.val.cond)["obs"])


# -- model, policy, rollout ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """A flow and a regression run of the smoke preset (one thread: these tiny nets lose to contention)."""
    root = tmp_path_factory.mktemp("robot")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = {}
    for obj in ("flow", "regression"):
        cfg = panflow.build_config("robot", "smoke", overrides={"train.progress": False, "flow.objective": obj,
                                                                "data.options": {"episodes": 8}})
        runs[obj] = panflow.load_run(panflow.train(cfg, root / obj), device="cpu")
    yield runs
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_smoke_train_and_closed_loop_rollout(smoke_runs):
    for name, run in smoke_runs.items():
        assert run.contract["objective"]["kind"] == name
        assert run.contract["encoder"]["obs"]["min"] and run.contract["objective"]["known"]["name"] == "committed"
        res = rollout(run, episodes=6, nfe=2)
        m = res.metrics()
        assert len(res.success) == 6 and 0 <= m["success_lo95"] <= m["success"] <= m["success_hi95"] <= 1
        assert res.boundary_jerk and m["latency_ms_per_chunk"] > 0


@pytest.mark.slow
def test_committed_overlap_is_held_exactly(smoke_runs):
    for run in smoke_runs.values():
        obs = torch.randn(4, 2, 2)
        x_known = torch.randn(4, 16, 2)
        known = committed_mask(4, 16, 2)
        out, _ = run.generate(4, run.options(nfe=3), cond={"obs": obs}, known=known, x_known=x_known)
        assert torch.equal(out.x[:, :2], x_known[:, :2]) and not torch.equal(out.x[:, 2:], x_known[:, 2:])
        pol = ChunkPolicy(run, nfe=2)
        first = pol(obs.numpy())
        assert first.shape == (4, 8, 2)
        committed = torch.from_numpy(first[:, -2:]).clone()
        pol(obs.numpy())
        assert torch.equal(pol.last_chunk[:, :2], committed)


@pytest.mark.slow
def test_cli_export_and_rollout(tmp_path, smoke_runs, capsys):
    assert robot_main(["export", "--out", str(tmp_path / "d.zarr"), "--episodes", "3"]) == 0
    assert len(read_episodes(tmp_path / "d.zarr")) == 3
    assert robot_main(["rollout", str(smoke_runs["flow"].run_dir), "--episodes", "3", "--nfe", "1"]) == 0
    assert '"success"' in capsys.readouterr().out
    assert robot_main(["export", "--out", str(tmp_path / "e.zarr"), "--data", str(tmp_path / "nope.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_plugin_conforms():
    assert_plugin_conforms("robot")


@pytest.mark.slow
def test_benchmark_smoke_writes_score_card(tmp_path):
    from panflow.bench import run_benchmarks

    paths = run_benchmarks(["robot"], "smoke", tmp_path, log=lambda m: None)
    result = json.loads(paths["robot"].read_text())
    roles = [r["role"] for r in result["rows"]]
    assert roles[:3] == ["floor", "baseline", "model"] and roles[-1] == "oracle"
    assert {b["name"] for b in result["bars"]} >= {"MSE baseline success", "smallest NFE keeping success >= 90%"}
    assert set(result["latency_ms_per_chunk"]) == {"1", "2"}
    assert "Success against NFE" in (tmp_path / "robot.md").read_text()


def test_reacher_expert_demos_run_in_mujoco():
    """The MuJoCo task's expert runs headless through gymnasium (its mujoco extra: imageio etc.).

    The smoke benchmark skips Reacher, so without this a missing gymnasium dependency only
    surfaced at the end of a 40-minute `small` run.
    """
    from panflow_robot.reacher import reacher_episodes

    eps = reacher_episodes(n=2, seed=0)
    assert len(eps) == 2 and eps.actions[0].shape[1] == 2 and np.isfinite(eps.obs[0]).all()
    assert eps.meta["elbow_up"] == reacher_episodes(n=2, seed=0).meta["elbow_up"]
