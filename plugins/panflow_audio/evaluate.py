"""The audio score card. Every row goes through the same metric code, at the same N and seed,
against the same real held-out clips:

- floor: real training clips (a random N) — what real audio scores;
- baseline: per-class mean log-mel + Gaussian noise of the per-bin (within-class) variance, inverted;
- model: generated log-mels for the held-out labels, inverted with Griffin-Lim;
- ceiling: the floor's real clips through the same spectrogram → Griffin-Lim → waveform path, i.e.
  the best a perfect spectrogram model can score with this inversion.
"""

from __future__ import annotations

import time

import torch

from panflow import ConfigError, Row, Run, Samples, ScoreCard

from .classifier import accuracy, reference_classifier
from .data import frontend_of, waves_of
from .frontend import Frontend
from .metrics import classifier_metrics, energy_metrics, pitch_accuracy

CLASSIFIER_EPOCHS = {"smoke": 1, "quick": 4, "small": 10, "full": 30}  # the benchmark's presets use the same


class MeanSpectrogramBaseline:
    """Per-class mean log-mel with Gaussian noise of the within-class per-bin standard deviation."""

    def __init__(self, train: Samples, num_classes: int):
        x = train.x.double()
        groups = [train.y == k for k in range(num_classes)] if train.y is not None and num_classes else [None]
        self.means = torch.stack([x[g].mean(0) if g is not None else x.mean(0) for g in groups])
        resid = torch.cat([x[g] - self.means[i] if g is not None else x - self.means[0] for i, g in enumerate(groups)])
        self.std = resid.std(0)

    def sample(self, labels: torch.Tensor | None, n: int, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        mu = self.means[labels] if labels is not None and len(self.means) > 1 else self.means[:1].expand(n, *self.means.shape[1:])
        return (mu + self.std * torch.randn(mu.shape, generator=g, dtype=torch.float64)).float()


def row_metrics(net, real: torch.Tensor, real_y, fake: torch.Tensor, fake_y, k: int, sr: int,
                classes_hz: list[float] | None) -> dict[str, float]:
    m = classifier_metrics(net, real, real_y, fake, fake_y, k)
    m.update(energy_metrics(real, fake))
    if classes_hz is not None and fake_y is not None:
        m.update(pitch_accuracy(fake, torch.tensor(classes_hz, dtype=torch.float32)[fake_y], sr))
    return m


FEATURE_SETTINGS = ("sample_rate", "n_fft", "hop_length", "n_mels", "frames", "f_min", "f_max", "log_floor")


def frontend_for(run: Run, bundle) -> Frontend:
    """The checkpoint's frontend (its inversion settings included), checked against the data loaded
    now: a default changed since training (e.g. the notes' n_fft) must not be scored silently."""
    data = frontend_of(bundle.meta)
    saved = (run.contract.get("dataset") or {}).get("frontend")
    if saved is None:
        return data
    fe = Frontend.from_json(saved)
    diff = {k: (getattr(fe, k), getattr(data, k)) for k in FEATURE_SETTINGS if getattr(fe, k) != getattr(data, k)}
    if diff:
        raise ConfigError("this checkpoint's spectrograms were made with " +
                          ", ".join(f"{k}={a}" for k, (a, _) in diff.items()) + "; the data loaded now uses " +
                          ", ".join(f"{k}={b}" for k, (_, b) in diff.items()) +
                          " (a default changed since training): pass the checkpoint's values in data.options or train again")
    return fe


def context(bundle, k: int, classifier_epochs: int = 10, seed: int = 0, n: int | None = None,
            frontend: Frontend | None = None):
    """What every row shares: classifier, frontend (``frontend``, else the data's), the N held-out
    clips and the floor's N real clips."""
    fe = frontend or frontend_of(bundle.meta)
    tw, vw = waves_of(bundle)
    clf = reference_classifier(tw, bundle.train.y, vw, bundle.val.y, fe, k, bundle.meta["hash"],
                               epochs=classifier_epochs, seed=seed)
    n = min(n or len(bundle.val), len(bundle.val), len(bundle.train))
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(bundle.train), generator=g)[:n]
    return {"fe": fe, "clf": clf, "n": n, "val_w": vw[:n], "val_y": bundle.val.y[:n], "train_w": tw[pick],
            "train_spec": bundle.train.x[pick], "train_y": bundle.train.y[pick], "k": k,
            "hz": bundle.meta.get("classes_hz"), "bundle": bundle, "seed": seed}


def reference_rows(ctx, tag: str = "") -> list[Row]:
    """floor, baseline and ceiling rows for a shared context."""
    net, info = ctx["clf"]
    fe, n, seed = ctx["fe"], ctx["n"], ctx["seed"]
    args = (ctx["k"], fe.sample_rate, ctx["hz"])
    rows = []
    t0 = time.perf_counter()
    floor = row_metrics(net, ctx["val_w"], ctx["val_y"], ctx["train_w"], ctx["train_y"], *args)
    floor["cond_acc"] = accuracy(net, ctx["val_w"], ctx["val_y"])
    rows.append(Row(f"floor{tag}", floor, {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                                           "what": "real training clips vs real held-out; cond_acc = classifier "
                                                   "accuracy on held-out"}))
    t0 = time.perf_counter()
    base = MeanSpectrogramBaseline(ctx["bundle"].train, ctx["k"]).sample(ctx["val_y"], n, seed)
    rows.append(Row(f"baseline{tag}", row_metrics(net, ctx["val_w"], ctx["val_y"], fe.invert(base), ctx["val_y"], *args),
                    {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                     "what": "per-class mean log-mel + Gaussian noise of the within-class per-bin variance, Griffin-Lim"}))
    t0 = time.perf_counter()
    ceil = fe.invert(ctx["train_spec"])
    rows.append(Row(f"ceiling{tag}", row_metrics(net, ctx["val_w"], ctx["val_y"], ceil, ctx["train_y"], *args),
                    {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                     "what": f"the floor's real clips through log-mel → InverseMelScale → GriffinLim "
                             f"({fe.griffin_lim_iters} iterations)"}))
    return rows


def model_row(run: Run, ctx, opts=None, role: str = "model", keep: dict | None = None) -> Row:
    """The model's row; ``keep`` (a dict), when given, receives the log-mels (``mel``) and waveforms (``wave``)."""
    gen, setup = run.generate(ctx["n"], opts or run.options(), labels=ctx["val_y"], seed=ctx["seed"])
    t0 = time.perf_counter()
    waves = ctx["fe"].invert(gen.x)
    setup["invert_s"] = time.perf_counter() - t0
    if keep is not None:
        keep.update({"mel": gen.x, "wave": waves, "label": ctx["val_y"]})
    m = row_metrics(ctx["clf"][0], ctx["val_w"], ctx["val_y"], waves, ctx["val_y"], ctx["k"], ctx["fe"].sample_rate,
                    ctx["hz"])
    return Row(role, m, setup)


def evaluate(run: Run, n: int | None = None, seed: int = 0, **_) -> ScoreCard:
    bundle = run.load_data()
    if bundle.train.y is None:
        raise ValueError("audio evaluation needs labelled clips (the reference classifier is trained on labels)")
    epochs = CLASSIFIER_EPOCHS.get(run.cfg.preset, CLASSIFIER_EPOCHS["small"])
    ctx = context(bundle, run.raw_spec.num_classes, epochs, seed=seed, n=n, frontend=frontend_for(run, bundle))
    card = ScoreCard("audio")
    card.rows = reference_rows(ctx)
    card.rows.insert(2, model_row(run, ctx))
    card.extra["classifier"] = ctx["clf"][1]
    card.notes.append(notes_text(ctx))
    return card


def notes_text(ctx) -> str:
    info = ctx["clf"][1]
    return (f"fd = classifier Fréchet distance (penultimate 64-d features of the plugin's own audio CNN, held-out "
            f"accuracy {info['val_accuracy']:.3f}; not FAD, which needs VGGish). Every waveform-level metric uses "
            f"N = {ctx['n']} held-out clips, seed {ctx['seed']}. energy_ks(_p): two-sample KS test of frame log energies "
            "vs the held-out clips; rms_ratio / silent_frac guard against silent or constant output.")
