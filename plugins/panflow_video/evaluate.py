"""The video score card on the embedded moving digits, at one N and seed.

Rows: **floor** (held-out real clips scored against an equally large draw of training clips: real
against real), **baseline · per-frame model** (when given: the same network without cross-frame
layers), **baseline · copy-last-frame** (the given frames, then the last one repeated), **model**,
and for a class-conditional model **model · null label** (the same model without its label).
Generation metrics (per-frame FD, clip FD, identity, motion) are computed on clips generated from
noise alone — for a class-conditional model, for the held-out clips' digit labels; ``pred_mse@h``
on forecasts from the first ``given`` real frames of each held-out clip; ``interp_mse`` on the
middle frames between the first and last ``ends`` frames.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from panflow import PanflowError, Row, SampleOptions, ScoreCard

from .classifiers import clip_classifier, frame_classifier
from .known import ends_mask, prefix_mask
from .metrics import clip_fd, copy_last, frame_fd, horizon_mse, identity, motion


def _need_tracks(bundle) -> dict:
    if "val_tracks" not in bundle.meta or bundle.meta["recipe"]["digits"] != 1:
        raise PanflowError("the video score card needs the embedded moving digits with one digit per clip (labels and "
                           "recorded trajectories); for your own clips use `panflow sample` and the metric video_scores")
    return bundle.meta["val_tracks"]


def unconditional(x: torch.Tensor, nets: dict, ref: torch.Tensor, exact: torch.Tensor) -> dict[str, float]:
    """Scores of clips ``x`` against real reference clips ``ref`` and exact centroid tracks ``exact``."""
    return {"frame_fd": frame_fd(nets["frame"], x, ref), "clip_fd": clip_fd(nets["clip"], x, ref),
            "identity": identity(nets["frame"], x), **motion(x, exact)}


def _tasks(gen, truth: torch.Tensor, given: int, ends: int) -> dict[str, float]:
    """Prediction and interpolation errors of ``gen(known, x_known) -> clips`` on ``truth``."""
    n, t = truth.shape[:2]
    pred = gen(prefix_mask(n, t, given), truth)
    out = {f"pred_mse@{h + 1}": v for h, v in enumerate(horizon_mse(pred, truth, given))}
    out["pred_mse_mean"] = sum(out.values()) / len(out)
    mid = gen(ends_mask(n, t, ends, ends), truth)
    out["interp_mse"] = float(((mid[:, ends:t - ends] - truth[:, ends:t - ends]) ** 2).mean())
    return out


PREVIEW_CLIPS = 6  # clips per source kept for report.html (ScoreCard.artifacts)


def video_card(run, bundle, n: int, seed: int = 0, given: int = 3, ends: int = 2, baseline=None,
               opts: SampleOptions | None = None, classifier_steps: tuple[int, int] = (800, 400)) -> ScoreCard:
    """The card of ``run`` (and ``baseline``, a run of the per-frame model) on ``bundle``'s held-out clips."""
    tracks = _need_tracks(bundle)
    val = bundle.val.x[:n]
    n = len(val)
    exact = tracks["centroids"][:n, 0]
    g = torch.Generator().manual_seed(seed)
    ref = bundle.train.x[torch.randperm(len(bundle.train), generator=g)[:n]]
    key = bundle.meta["hash"]
    t0 = time.perf_counter()
    ty, vy = bundle.meta["train_tracks"]["labels"][:, 0], tracks["labels"][:, 0]
    fnet, finfo = frame_classifier(bundle.train.x, ty, bundle.val.x, vy, key, classifier_steps[0], seed)
    cnet, cinfo = clip_classifier(bundle.train.x, bundle.val.x, key, classifier_steps[1], seed)
    nets = {"frame": fnet, "clip": cnet}
    cls_s = time.perf_counter() - t0
    card = ScoreCard("video")
    base = {"n": n, "seed": seed}
    floor = unconditional(val, nets, ref, exact)
    card.rows.append(Row("floor", floor, {**base, "what": "held-out real clips vs training clips"}))
    card.artifacts["real.clips"] = val[:PREVIEW_CLIPS]
    models = [("baseline · per-frame model", baseline)] if baseline is not None else []
    for role, r in [*models, ("model", run)]:
        o = opts or r.options()
        lab = bundle.val.y[:n] if r.spec.num_classes else None  # class-matched: the held-out clips' digits
        t1 = time.perf_counter()
        gen, setup = r.generate(n, o, labels=lab, seed=seed + 1)
        card.artifacts[f"{'model' if role == 'model' else 'per_frame'}.clips"] = gen.x[:PREVIEW_CLIPS]
        met = unconditional(gen.x, nets, ref, exact)
        # prediction and interpolation see the given frames only (no label, no guidance) — unless
        # the model never learnt to go without its label (label dropout 0): then it gets the truth
        task_lab = lab if lab is not None and not _nullable(r, "label") else None
        plain = o.unguided()
        met.update(_tasks(lambda k, xk, r=r, o=plain, y=task_lab:
                          r.generate(n, o, labels=y, seed=seed + 2, known=k, x_known=xk)[0].x, val, given, ends))
        card.rows.append(Row(role, met, {**base, "nfe": setup["nfe"], "solver": o.solver, "guidance": o.guidance,
                                         "labels": "held-out clips' digits" if lab is not None else "none",
                                         "task_labels": "held-out clips' digits" if task_lab is not None else "none",
                                         "wall_s": time.perf_counter() - t1}))
    if _nullable(run, "label"):  # the same model with its null label: unconditional generation
        o = (opts or run.options()).unguided()
        gen, setup = run.generate(n, o, seed=seed + 1)
        card.artifacts["null_label.clips"] = gen.x[:PREVIEW_CLIPS]
        card.rows.append(Row("model · null label", unconditional(gen.x, nets, ref, exact),
                             {**base, "nfe": setup["nfe"], "solver": o.solver, "guidance": 1.0, "labels": "null"}))
    last = copy_last(val, given)
    cl = {**unconditional(last, nets, ref, exact), **_tasks(lambda k, xk: copy_last(xk, int(k[0].sum())), val, given,
                                                             ends)}
    cl["interp_mse"] = _crossfade_mse(val, ends)
    card.rows.insert(1 + len(models), Row("baseline · copy-last-frame", cl,
                                          {**base, "what": f"{given} real frames, then the last repeated"}))
    card.extra.update({"classifiers": {"frame": finfo, "clip": cinfo, "fit_or_load_s": cls_s},
                       "given_frames": given, "interp_ends": ends})
    card.notes += [
        f"frame_fd: Fréchet distance of the in-project digit classifier's features over all frames "
        f"(held-out frame accuracy {finfo['val_frame_accuracy']:.3f}); clip_fd: clip FD (in-project 3-D features), "
        f"a 3-D CNN trained to tell real / frame-shuffled / frozen clips (held-out accuracy "
        f"{cinfo['val_accuracy_real_shuffled_frozen']:.3f}); not FVD.",
        "identity: mean fraction of a clip's frames classified as the clip's most frequent digit; speed_w1: "
        "Wasserstein-1 distance of per-step centroid speeds (pixels/frame) to the exact recorded trajectories.",
        f"pred_mse@h: pixel MSE ([0, 1] scale) of frame given+h from the first {given} real frames (one sample per "
        f"clip); interp_mse: middle frames between the first and last {ends}; copy-last row: its interp_mse is "
        "the linear cross-fade between the two given end frames.",
        "copy-last-frame row: unconditional metrics are those of its clips (given frames, then frozen).",
        *(["Class-conditional models generate for the held-out clips' digit labels (a class-matched draw, as the "
           "image card does) at the row's guidance; 'model · null label' is the same model without a label "
           "(unconditional, guidance 1). Prediction and interpolation use no label: only the given frames."]
          if run.spec.num_classes else [])]
    return card


def _nullable(run, name: str) -> bool:
    """Whether ``run`` has the condition ``name`` and learnt its null (training dropout > 0)."""
    return any(c.name == name and c.dropout > 0 for c in run.spec.conditions)


def _crossfade_mse(val: torch.Tensor, ends: int) -> float:
    t = val.shape[1]
    a, b = val[:, ends - 1:ends], val[:, t - ends:t - ends + 1]
    w = torch.linspace(0, 1, t - 2 * ends + 2)[1:-1].reshape(1, -1, 1, 1, 1)
    mid = (1 - w) * a + w * b
    return float(((mid - val[:, ends:t - ends]) ** 2).mean())


def evaluate(run, n: int = 200, seed: int = 0, **_: Any) -> ScoreCard:
    """``panflow eval``: the card of a run trained on the embedded moving digits (no per-frame baseline)."""
    return video_card(run, run.load_data(), n, seed)
