"""The image score card: floor (two disjoint class-matched halves of the real held-out split), baseline
(class-conditional Gaussian fitted to the training pixels), model — all at the same N and seed,
all compared with the same held-out half."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from panflow import DataError, Row, Run, Samples, ScoreCard

from .classifier import ReferenceCNN, features, reference_classifier
from .metrics import conditional_accuracy, feature_metrics, floor_interval, paired_halves, pixel_memorisation

WARN_ACCURACY = 0.95


class GaussianBaseline:
    """Per-class (or global) Gaussian over flattened pixels: the mode-averaging baseline."""

    def __init__(self, train: Samples, num_classes: int, shrink: float = 1e-3):
        x = train.x.flatten(1).double()
        self.shape = train.x.shape[1:]
        groups = [x[train.y == k] for k in range(num_classes)] if train.y is not None and num_classes else [x]
        self.dists = []
        for gx in groups:
            cov = torch.cov(gx.T) + shrink * torch.eye(gx.shape[1], dtype=torch.float64)
            self.dists.append(torch.distributions.MultivariateNormal(gx.mean(0), covariance_matrix=cov))

    def sample(self, labels: torch.Tensor | None, n: int, seed: int = 0) -> torch.Tensor:
        torch.manual_seed(seed)
        if labels is None or len(self.dists) == 1:
            out = self.dists[0].sample((n,))
        else:
            out = torch.stack([self.dists[int(k)].sample() for k in labels])
        return out.float().reshape(n, *self.shape).clamp(0, 1)


@dataclass
class Reference:
    """What every row shares: the classifier, its report, the held-out half every row is compared
    with (``ref``, N images; samples are drawn for its labels) and the disjoint other half with the
    same labels (``other``, N real images: the floor)."""
    net: ReferenceCNN
    info: dict
    ref: Samples
    other: Samples
    train_x: torch.Tensor
    val: Samples


def reference(bundle, num_classes: int, n: int | None = None, seed: int = 0, classifier=None,
              epochs: int = 100) -> Reference:
    """Cut the held-out split into two disjoint, class-matched halves of N images each."""
    if bundle.train.y is None:
        raise ValueError("image evaluation needs labelled data (the reference classifier is trained on labels)")
    a, b = paired_halves(bundle.val.y, n, seed)
    if len(a) < 2:
        raise DataError(f"image evaluation needs at least 2 pairs of held-out images of one class, found "
                        f"{len(a)} among {len(bundle.val)}; raise data.val_fraction")
    net, info = classifier or reference_classifier(bundle.train, bundle.val, num_classes, bundle.meta["hash"],
                                                   epochs=epochs, seed=seed)
    return Reference(net, info, bundle.val.index(a), bundle.val.index(b), bundle.train.x, bundle.val)


def row_metrics(r: Reference, x: torch.Tensor, labels, seed: int) -> dict:
    """The row's metrics for images ``x`` ``[N, C, H, W]`` drawn for ``labels`` (or None)."""
    m = feature_metrics(r.net, r.ref.x, x, seed)
    if labels is not None:
        m["cond_acc"] = conditional_accuracy(r.net, Samples(x, labels))
    m["memorisation"] = pixel_memorisation(x, r.train_x)
    return m


def real_rows(r: Reference, train: Samples, num_classes: int, seed: int) -> list[Row]:
    """The floor (the other real half) and the Gaussian baseline, both against ``r.ref``."""
    n = len(r.ref)
    t0 = time.perf_counter()
    floor = row_metrics(r, r.other.x, r.other.y, seed)
    floor["fd_lo"], floor["fd_hi"] = floor_interval(features(r.net, r.val.x), r.val.y, n, seed=seed)
    rows = [Row("floor", floor, {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                                 "what": "two disjoint class-matched halves of the real held-out split; "
                                         "cond_acc = classifier accuracy on the second half"})]
    t0 = time.perf_counter()
    xb = GaussianBaseline(train, num_classes).sample(r.ref.y, n, seed)
    rows.append(Row("baseline", row_metrics(r, xb, r.ref.y, seed),
                    {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                     "what": "class-conditional Gaussian fitted to training pixels"}))
    return rows


def notes(info: dict) -> list[str]:
    """The score card's notes on the evaluator, with a warning when the classifier is weak."""
    out = [f"Features: penultimate layer of the plugin's reference CNN (held-out accuracy {info['val_accuracy']:.4f} "
           f"on {info.get('n_val', '?')} images), z-scored with training-split statistics; FD/KID/PR on those "
           "features, not Inception. Floor fd_lo/fd_hi: the central 95 % of the floor FD over 200 random re-splits of "
           "the held-out split into two class-matched halves of N (the evaluator's own noise at this N). "
           "Memorisation: fraction of samples whose nearest training image (pixels) is 3x closer than the second "
           "nearest."]
    if info["val_accuracy"] < WARN_ACCURACY:
        out.append(f"WARNING: the reference classifier's held-out accuracy {info['val_accuracy']:.3f} is below "
                   f"{WARN_ACCURACY}; its features separate these images poorly, so every feature metric here "
                   "(FD, KID, precision, recall, conditional accuracy) means less.")
    return out


def evaluate(run: Run, n: int | None = None, seed: int = 0, bundle=None, classifier=None) -> ScoreCard:
    bundle = bundle or run.load_data()
    k = run.raw_spec.num_classes
    r = reference(bundle, k, n, seed, classifier)
    card = ScoreCard("image", rows=real_rows(r, bundle.train, k, seed))
    labels = r.ref.y if k else None
    gen, setup = run.generate(len(r.ref), run.options(), labels=labels, seed=seed)
    card.rows.append(Row("model", row_metrics(r, gen.x, labels, seed), setup))
    card.extra["classifier"] = r.info
    card.notes += notes(r.info)
    return card
