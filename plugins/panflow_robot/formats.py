"""Users' demonstration formats: Diffusion Policy zarr replay buffers, robomimic HDF5, LeRobot datasets.

Each reader returns :class:`~panflow_robot.episodes.Episodes` (validation is the caller's, so every
format fails the same way); :func:`read_episodes` picks the reader from the path, and
:func:`export_zarr` writes any demonstration set as a Diffusion Policy replay buffer.

- **zarr** (``*.zarr`` folder or ``*.zarr.zip``): ``data/action [N, a]``, ``data/state`` or
  ``data/obs [N, o]``, ``meta/episode_ends [E]`` (cumulative end indices), as Chi et al. 2023 store them.
- **robomimic** (``*.hdf5`` / ``*.h5``): ``data/demo_<k>/actions [T, a]`` and ``data/demo_<k>/obs/<key>``;
  low-dimensional keys are concatenated in sorted order (or the ``obs_keys`` option); image keys are refused.
- **LeRobot** (a folder with ``meta/info.json`` and ``data/**/*.parquet``): state features (default
  ``observation.state``) and ``action``, rows grouped by ``episode_index``, ordered by ``frame_index``;
  video/image features are refused with a message (decoding video is out of scope here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from panflow import DataError

from .episodes import Episodes


def _flat(v: np.ndarray) -> np.ndarray:
    """``[T, ...] -> [T, prod(...)]`` (also for T = 0)."""
    return v.reshape(v.shape[0], int(np.prod(v.shape[1:], dtype=np.int64)) if v.ndim > 1 else 1)


def _need(module: str, extra: str = "robot"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DataError(f"reading this format needs {module}: pip install \"panflow[{extra}]\"") from exc


# -- Diffusion Policy zarr replay buffer ---------------------------------------------------------
def read_zarr(path: str | Path, obs_key: str | None = None) -> Episodes:
    zarr = _need("zarr")
    path = Path(path)
    try:
        if path.suffix == ".zip":
            root = zarr.open_group(zarr.storage.ZipStore(str(path), mode="r"), mode="r")
        else:
            root = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises several types for a missing/broken store
        raise DataError(f"{path}: not a readable zarr store ({type(exc).__name__}: {exc})") from exc
    data = _group(root, "data", path)
    meta = _group(root, "meta", path)
    if "action" not in data:
        raise DataError(f"{path}: zarr replay buffer lacks data/action (has {sorted(data.array_keys())})")
    keys = [obs_key] if obs_key else [k for k in ("state", "obs", "agent_pos") if k in data][:1]
    if not keys or keys[0] not in data:
        raise DataError(f"{path}: zarr replay buffer lacks data/{obs_key or 'state'} (or data/obs); "
                        f"it has {sorted(data.array_keys())}")
    if "episode_ends" not in meta:
        raise DataError(f"{path}: zarr replay buffer lacks meta/episode_ends")
    act = np.asarray(data["action"][:], dtype=np.float32)
    obs = np.asarray(data[keys[0]][:], dtype=np.float32)
    ends = np.asarray(meta["episode_ends"][:], dtype=np.int64)
    if len(act) != len(obs):
        raise DataError(f"{path}: data/action has {len(act)} steps but data/{keys[0]} has {len(obs)}")
    if len(ends) and (np.any(np.diff(ends) < 0) or ends[-1] != len(act)):
        raise DataError(f"{path}: meta/episode_ends must be non-decreasing and end at {len(act)} (got ... {ends[-3:].tolist()})")
    starts = np.concatenate([[0], ends[:-1]])
    return Episodes([_flat(obs[s:e]) for s, e in zip(starts, ends)], [_flat(act[s:e]) for s, e in zip(starts, ends)],
                    str(path), {"format": "zarr", "obs_key": f"data/{keys[0]}"})


def _group(root, name: str, path: Path):
    try:
        return root[name]
    except KeyError as exc:
        raise DataError(f"{path}: zarr replay buffer lacks the group '{name}'") from exc


def export_zarr(eps: Episodes, path: str | Path, obs_key: str = "state") -> Path:
    """Write ``eps`` as a Diffusion Policy replay buffer (zarr format 2, as their tools read it).

    ``data/action [N, a]``, ``data/<obs_key> [N, o]`` (float32) and ``meta/episode_ends [E]`` (int64).
    """
    zarr = _need("zarr")
    obs, act, ends = eps.concatenated()
    path = Path(path)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data, meta = root.create_group("data"), root.create_group("meta")
    for grp, name, arr in ((data, "action", act.astype(np.float32)), (data, obs_key, obs.astype(np.float32)),
                           (meta, "episode_ends", ends)):
        chunks = arr.shape if arr.ndim == 1 else (max(1, min(len(arr), 1024)), arr.shape[1])
        z = grp.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=chunks)
        z[:] = arr
    return path


# -- robomimic HDF5 ------------------------------------------------------------------------------
def read_robomimic(path: str | Path, obs_keys: list[str] | None = None) -> Episodes:
    h5py = _need("h5py")
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with f:
        if "data" not in f:
            raise DataError(f"{path}: robomimic file lacks the group 'data' (has {sorted(f.keys())})")
        demos = sorted((k for k in f["data"] if k.startswith("demo_")), key=lambda k: int(k.split("_")[1]))
        if not demos:
            raise DataError(f"{path}: no data/demo_<k> groups")
        obs_list, act_list, keys = [], [], obs_keys
        for d in demos:
            g = f["data"][d]
            if "actions" not in g or "obs" not in g:
                raise DataError(f"{path}: episode {d} lacks 'actions' or 'obs'")
            if keys is None:
                keys = sorted(k for k in g["obs"] if g["obs"][k].ndim <= 2)
                if not keys:
                    raise DataError(f"{path}: episode {d} has only image observations {sorted(g['obs'])}; "
                                    "image observations are not supported, give low-dimensional obs keys")
            missing = [k for k in keys if k not in g["obs"]]
            if missing:
                raise DataError(f"{path}: episode {d} lacks obs keys {missing} (has {sorted(g['obs'])})")
            parts = []
            for k in keys:
                v = np.asarray(g["obs"][k][:], dtype=np.float32)
                if v.ndim > 2:
                    raise DataError(f"{path}: episode {d}: obs/{k} is an image {v.shape}; image observations are "
                                    "not supported, choose low-dimensional obs keys")
                parts.append(_flat(v))
            lens = {len(p) for p in parts}
            if len(lens) > 1:
                raise DataError(f"{path}: episode {d}: obs keys {keys} have different lengths {sorted(lens)}")
            obs_list.append(np.concatenate(parts, 1))
            a = np.asarray(g["actions"][:], dtype=np.float32)
            act_list.append(_flat(a))
    return Episodes(obs_list, act_list, str(path), {"format": "robomimic", "obs_keys": list(keys),
                                                    "episodes": demos})


# -- LeRobot -----------------------------------------------------------------------------------
def read_lerobot(path: str | Path, obs_keys: list[str] | None = None, action_key: str = "action") -> Episodes:
    pq = _need("pyarrow.parquet")
    root = Path(path)
    info_path = root / "meta" / "info.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{info_path}: not a readable LeRobot info.json ({exc})") from exc
    feats = info.get("features", {})
    keys = list(obs_keys or ["observation.state"])
    for k in [*keys, action_key]:
        if k not in feats:
            raise DataError(f"{info_path}: feature '{k}' is not in the dataset (features: {sorted(feats)})")
        if feats[k].get("dtype") in ("video", "image"):
            raise DataError(f"{info_path}: feature '{k}' is a {feats[k]['dtype']} feature; video/image features are "
                            "not supported by panflow's robot loader, use state features (e.g. observation.state)")
    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise DataError(f"{root}: no parquet files under data/")
    per_ep: dict[int, list] = {}
    for fp in files:
        try:
            tab = pq.read_table(fp, columns=[*keys, action_key, "episode_index", "frame_index"]).to_pydict()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files/columns
            raise DataError(f"{fp}: cannot read LeRobot columns ({type(exc).__name__}: {exc})") from exc
        for row in range(len(tab["episode_index"])):
            per_ep.setdefault(int(tab["episode_index"][row]), []).append(
                (int(tab["frame_index"][row]), [tab[k][row] for k in keys], tab[action_key][row], fp))
    obs_list, act_list = [], []
    for e in sorted(per_ep):
        rows = sorted(per_ep[e], key=lambda r: r[0])
        try:
            obs_list.append(np.array([np.concatenate([np.ravel(np.asarray(v, dtype=np.float32)) for v in r[1]])
                                      for r in rows], dtype=np.float32))
            act_list.append(np.array([np.ravel(np.asarray(r[2], dtype=np.float32)) for r in rows], dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{rows[0][3]}: episode {e}: ragged or non-numeric values ({exc})") from exc
    return Episodes(obs_list, act_list, str(root), {"format": "lerobot", "obs_keys": keys, "episodes": sorted(per_ep),
                                                    "fps": info.get("fps")})


def detect_format(path: str | Path) -> str:
    """``zarr``, ``robomimic`` or ``lerobot`` from the path's layout (DataError when none fits)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p} does not exist")
    if p.is_dir() and (p / "meta" / "info.json").exists():
        return "lerobot"
    if p.name.endswith(".zarr.zip") or (p.is_dir() and any((p / n).exists() for n in (".zgroup", "zarr.json"))):
        return "zarr"
    if p.suffix in (".hdf5", ".h5"):
        return "robomimic"
    raise DataError(f"{p}: not a recognised demonstration set (a Diffusion Policy .zarr replay buffer, a robomimic "
                    ".hdf5 file or a LeRobot folder with meta/info.json)")


READERS = {"zarr": read_zarr, "robomimic": read_robomimic, "lerobot": read_lerobot}


def read_episodes(path: str | Path, options: dict | None = None) -> Episodes:
    """Read any supported demonstration set (``options``: ``format``, ``obs_keys``)."""
    options = options or {}
    fmt = options.get("format") or detect_format(path)
    if fmt not in READERS:
        from panflow import UnknownNameError

        raise UnknownNameError("demonstration format", fmt, READERS)
    keys = options.get("obs_keys")
    if fmt == "zarr":
        return read_zarr(path, keys[0] if keys else None)
    return READERS[fmt](path, keys)
