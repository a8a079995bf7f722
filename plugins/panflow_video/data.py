"""Video datasets: the embedded moving digits (default) and your clips (``--data``).

Raw space is float32 ``[N, T, C, H, W]`` in [0, 1]. ``--data PATH`` reads

- an NPY/NPZ array ``[N, T, H, W]`` or ``[N, T, H, W, C]`` (uint8, or float in [0, 1]; NPZ key
  ``x``/``clips``/``videos``, or its only array; an NPZ's integer ``labels [N]`` become the clips'
  ``label`` condition unless ``labels = false``);
- a folder of clip folders (each holding that clip's frame images, sorted by name);
- a video file or a folder of video files (MP4, WebM, MKV, AVI, GIF, ...) decoded through PyAV.

The moving digits carry the digit's class as the clip's ``label`` condition (``data.options.labels``;
by default on for clips of one digit, off for two), so a model can be asked for a digit and guided
towards it (classifier-free guidance: ``flow.label_dropout`` trains the null label); ``labels =
false`` trains unconditionally.

Frame policy (recorded in the dataset meta): ``frames`` (default 8) consecutive frames per clip,
taken every ``stride``-th frame (default 1) from the start, or as every non-overlapping window when
``windows = "all"``; a clip shorter than that is an error naming it. Resolution policy: frames keep
their size unless ``resolution`` (square side) resizes them all (antialiased bilinear); clips of
different sizes without ``resolution`` are an error naming the first mismatch. Frame-rate policy:
frames are taken as decoded (no resampling); the meta records each container's rate
(``source_fps``) and the clips' rate after the stride (``fps``, used when writing samples).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from panflow import DataBundle, DataError, DatasetOptions, Samples

from .moving import RECIPES, Recipe, moving_digits
from .video_io import FRAME_SUFFIXES, VIDEO_SUFFIXES, read_frames, read_video

PATH_OPTIONS = ("frames", "stride", "windows", "resolution", "mode", "lazy", "labels")
RECIPE_KEYS = tuple(Recipe.__dataclass_fields__)
DIGITS_HELD_OUT = 0.25  # fraction of the real digit images kept for validation clips only


# -- the embedded default ---------------------------------------------------------------------------
def recipe_from(options: dict) -> Recipe:
    """``{"recipe": "small", "clips": 500, ...}`` → a :class:`Recipe` (unknown keys are an error)."""
    opts = dict(options)
    name = opts.pop("recipe", "small")
    if name not in RECIPES:
        from panflow import UnknownNameError

        raise UnknownNameError("moving-digits recipe", name, RECIPES)
    bad = sorted(set(opts) - set(RECIPE_KEYS))
    if bad:
        raise DataError(f"unknown moving-digits option(s) {bad}; known: recipe, {', '.join(RECIPE_KEYS)}")
    r = replace(RECIPES[name], **opts)
    if r.digit_size > r.size or r.frames < 2 or r.digits not in (1, 2):
        raise DataError(f"moving-digits recipe {r.to_json()}: needs digit_size <= size, frames >= 2, digits 1 or 2")
    return r


def digit_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8×8 digits split by image: (train images, labels, held-out images, labels)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    perm = np.random.default_rng(seed).permutation(len(d.target))
    k = int(round(len(perm) * DIGITS_HELD_OUT))
    return d.images[perm[k:]], d.target[perm[k:]], d.images[perm[:k]], d.target[perm[:k]]


def load_moving(opts: DatasetOptions) -> DataBundle:
    """Moving digits; validation clips use digit images never seen in training clips."""
    if opts.path:
        return load_path(opts)
    options = dict(opts.options)
    labels = options.pop("labels", None)
    if labels not in (None, True, False):
        raise DataError(f"moving-digits option labels must be true or false, got {labels!r}")
    r = recipe_from(options)
    if labels is None:  # default: a clip of one digit is labelled by it; two digits have no single label
        labels = r.digits == 1
    elif labels and r.digits != 1:
        raise DataError("moving-digits with 2 digits per clip has no single clip label; set data.options.labels = false")
    if not 0 < opts.val_fraction < 1:
        raise DataError(f"data.val_fraction must be in (0, 1), got {opts.val_fraction}")
    n_val = max(2, int(round(r.clips * opts.val_fraction)))
    xi, yi, vi, vy = digit_split(opts.seed)
    tr = moving_digits(xi, yi, replace(r, clips=r.clips - n_val), seed_offset=1_000 * opts.seed)
    va = moving_digits(vi, vy, replace(r, clips=n_val), seed_offset=1_000 * opts.seed + 1)
    meta = {"source": "moving digits (sklearn.datasets.load_digits)", "recipe": r.to_json(),
            "n_train": r.clips - n_val, "n_val": n_val, "fps": 8.0, "shape": list(tr["x"].shape[1:]),
            "hash": _hash(tr["x"]), "physics": "elastic bounce, constant speed; positions recorded",
            "train_tracks": tr, "val_tracks": va,  # tensors: for the metrics, not the contract
            "num_classes": 10 if labels else 0}
    if not labels:  # unconditional clips (the digit labels stay in the tracks for the metrics)
        return DataBundle(Samples(tr["x"]), Samples(va["x"]), meta)
    return DataBundle(Samples(tr["x"], y=tr["labels"][:, 0]), Samples(va["x"], y=va["labels"][:, 0]), meta)


def _hash(x: torch.Tensor) -> str:
    return hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16]


# -- your clips -------------------------------------------------------------------------------------
def _policy(options: dict) -> dict:
    bad = sorted(set(options) - set(PATH_OPTIONS))
    if bad:
        raise DataError(f"unknown video data option(s) {bad}; known: {', '.join(PATH_OPTIONS)}")
    p = {"frames": int(options.get("frames", 8)), "stride": int(options.get("stride", 1)),
         "windows": options.get("windows", "first"), "resolution": options.get("resolution"),
         "mode": options.get("mode", "L"), "lazy": bool(options.get("lazy", False)), "labels": options.get("labels")}
    if p["frames"] < 2 or p["stride"] < 1:
        raise DataError(f"video data options need frames >= 2 and stride >= 1, got {p['frames']}, {p['stride']}")
    if p["windows"] not in ("first", "all"):
        raise DataError(f"video data option windows must be 'first' or 'all', got {p['windows']!r}")
    if p["lazy"] and p["windows"] != "first":
        raise DataError("data.options.lazy reads one window per clip; it needs windows = 'first'")
    if p["labels"] not in (None, True, False):
        raise DataError(f"video data option labels must be true or false, got {p['labels']!r}")
    if p["lazy"] and p["labels"]:
        raise DataError("data.options.lazy reads clips without labels; labels come from an NPZ read in memory")
    if p["mode"] not in ("L", "RGB"):
        raise DataError(f"video data option mode must be 'L' or 'RGB', got {p['mode']!r}")
    return p


def _windows(clip: np.ndarray, name: str, p: dict) -> list[np.ndarray]:
    """``[T, H, W, C]`` → the policy's windows of ``frames`` frames each."""
    x = clip[::p["stride"]]
    need = p["frames"]
    if len(x) < need:
        raise DataError(f"{name}: {len(clip)} frames (stride {p['stride']}: {len(x)}) is shorter than the "
                        f"{need} frames per clip (data.options.frames)")
    if p["windows"] == "first":
        return [x[:need]]
    return [x[i:i + need] for i in range(0, len(x) - need + 1, need)]


def _to_float(clip: np.ndarray, name: str) -> np.ndarray:
    if clip.dtype == np.uint8:
        return clip.astype(np.float32) / 255.0
    if np.issubdtype(clip.dtype, np.floating):
        if not np.isfinite(clip).all() or clip.min() < 0 or clip.max() > 1:
            raise DataError(f"{name}: float clips must hold finite values in [0, 1] "
                            f"(got min {np.nanmin(clip):.3g}, max {np.nanmax(clip):.3g})")
        return clip.astype(np.float32)
    raise DataError(f"{name}: clips must be uint8 or float in [0, 1], got {clip.dtype}")


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    """``[T, C, H, W]`` → ``[T, C, size, size]``."""
    if not size or tuple(x.shape[-2:]) == (int(size), int(size)):
        return x
    return torch.nn.functional.interpolate(x, size=(int(size), int(size)), mode="bilinear", antialias=True,
                                           align_corners=False).clamp(0, 1)


def read_array(path: Path) -> list[tuple[str, np.ndarray, int | None]]:
    """NPY/NPZ ``[N, T, H, W(, C)]`` → ``[(name, uint8/float [T, H, W, C], label or None)]``; an NPZ
    may carry integer class ``labels [N]`` beside its clips."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable NPY/NPZ file ({exc})") from exc
    labels = None
    if isinstance(z, np.lib.npyio.NpzFile):
        keys = [k for k in z.files if k != "labels"]
        key = next((k for k in ("x", "clips", "videos") if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise DataError(f"{path} has arrays {z.files}; expected one named 'x', 'clips' or 'videos' (and optional 'labels')")
        a = z[key]
        labels = z["labels"] if "labels" in z.files else None
    else:
        a = z
    if a.ndim == 4:
        a = a[..., None]
    if a.ndim != 5 or a.shape[-1] not in (1, 3):
        raise DataError(f"{path}: expected clips [N, T, H, W] or [N, T, H, W, C] with C = 1 or 3, got {list(a.shape)}")
    if labels is not None and (labels.shape != (len(a),) or not np.issubdtype(labels.dtype, np.integer)
                               or (len(labels) and labels.min() < 0)):
        raise DataError(f"{path}: 'labels' must be non-negative integers, one per clip ({len(a)}); got "
                        f"{labels.dtype} {list(labels.shape)}")
    return [(f"{path}[{i}]", a[i], None if labels is None else int(labels[i])) for i in range(len(a))]


def _video(path: Path, mode: str, rates: list[float]) -> tuple[str, np.ndarray, None]:
    clip, fps = read_video(path, mode)
    rates.append(fps)
    return str(path), clip, None


def _sources(path: Path, mode: str, rates: list[float]) -> list[tuple[str, np.ndarray, int | None]]:
    """``(name, uint8/float [T, H, W, C], label)`` per clip (labels only from an NPZ's ``labels``);
    the frame rates of video files go to ``rates``."""
    if path.is_file():
        if path.suffix.lower() in (".npy", ".npz"):
            return read_array(path)
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return [_video(path, mode, rates)]
        raise DataError(f"{path}: not an NPY/NPZ array, a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder")
    kids = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    videos = [p for p in kids if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    clips = [p for p in kids if p.is_dir()]
    if videos and clips:
        raise DataError(f"{path} mixes video files ({videos[0].name}) and clip folders ({clips[0].name}); use one kind")
    if videos:
        return [_video(v, mode, rates) for v in videos]
    if clips:
        return [(str(c), read_frames(c, mode), None) for c in clips]
    frames = [p for p in kids if p.suffix.lower() in FRAME_SUFFIXES]
    hint = " (frame images belong in one sub-folder per clip)" if frames else ""
    raise DataError(f"{path} holds no clip folders and no video files{hint}")


def _clip_windows(name: str, clip: np.ndarray, p: dict) -> list[torch.Tensor]:
    """One decoded clip → its windows as float ``[T, C, H, W]`` under the policy ``p``."""
    if p["mode"] == "RGB" and clip.shape[-1] == 1:
        clip = np.repeat(clip, 3, -1)
    elif p["mode"] == "L" and clip.shape[-1] == 3:
        raise DataError(f"{name}: RGB clip with data.options.mode = 'L'; set mode = 'RGB'")
    return [_resize(torch.from_numpy(_to_float(w, name)).permute(0, 3, 1, 2), p["resolution"])
            for w in _windows(clip, name, p)]


def load_path(opts: DatasetOptions) -> DataBundle:
    """Your clips at ``opts.path`` with the frame and resolution policy of ``opts.options``."""
    path = Path(opts.path)
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    p = _policy(opts.options)
    if p["lazy"]:
        from .lazy import load_lazy

        return load_lazy(path, p, opts)
    items, labels, first, rates = [], [], None, []
    for name, clip, label in _sources(path, p["mode"], rates):
        for x in _clip_windows(name, clip, p):
            if first is None:
                first = (name, tuple(x.shape))
            elif tuple(x.shape) != first[1]:
                raise DataError(f"{name}: clip is {list(x.shape)} [T, C, H, W] but {first[0]} is {list(first[1])}; "
                                "set data.options.resolution to resize every clip")
            items.append(x)
            labels.append(label)  # every window of a clip keeps its label
    if len(items) < 2:
        raise DataError(f"{path}: need at least 2 clips, found {len(items)}")
    x = torch.stack(items)
    n = len(x)
    if not 0 < opts.val_fraction < 1:
        raise DataError(f"data.val_fraction must be in (0, 1), got {opts.val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(opts.seed))
    n_val = max(1, int(round(n * opts.val_fraction)))
    meta = {"source": str(path), "policy": p, "n_train": n - n_val, "n_val": n_val, "shape": list(x.shape[1:]),
            "hash": _hash(x), "fps": (rates[0] if rates else 8.0) / p["stride"],
            "source_fps": sorted(set(rates))}  # frames are not resampled: mixed rates are kept as decoded
    if p["labels"] and labels[0] is None:
        raise DataError(f"{path}: data.options.labels = true, but the clips carry no labels (an NPZ's 'labels' array)")
    if labels[0] is None or p["labels"] is False:  # no labels, or labels turned off: unconditional clips
        return DataBundle(Samples(x[perm[n_val:]]), Samples(x[perm[:n_val]]), meta)
    y = torch.tensor(labels, dtype=torch.long)  # an NPZ's labels: the clips' class condition
    meta["num_classes"] = int(y.max()) + 1
    return DataBundle(Samples(x[perm[n_val:]], y=y[perm[n_val:]]), Samples(x[perm[:n_val]], y=y[perm[:n_val]]), meta)
