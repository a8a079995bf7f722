"""The image score card: floor (real train vs real held-out), baseline (class-conditional Gaussian
fitted to the training pixels), model — all at the same N and seed."""

from __future__ import annotations

import time

import torch

from panflow import Row, Run, Samples, ScoreCard

from .classifier import accuracy, reference_classifier
from .metrics import conditional_accuracy, feature_metrics, pixel_memorisation


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


def row_metrics(net, real_val: Samples, x: torch.Tensor, labels, train_x: torch.Tensor, seed: int) -> dict:
    m = feature_metrics(net, real_val.x, x, seed)
    if labels is not None:
        m["cond_acc"] = conditional_accuracy(net, Samples(x, labels))
    m["memorisation"] = pixel_memorisation(x, train_x)
    return m


def evaluate(run: Run, n: int | None = None, seed: int = 0, bundle=None, classifier=None) -> ScoreCard:
    bundle = bundle or run.load_data()
    if bundle.train.y is None:
        raise ValueError("image evaluation needs labelled data (the reference classifier is trained on labels)")
    k = run.raw_spec.num_classes
    net, info = classifier or reference_classifier(bundle.train, bundle.val, k, bundle.meta["hash"])
    n = min(n or len(bundle.val), len(bundle.val))
    val = bundle.val.index(slice(0, n))
    labels = val.y
    g = torch.Generator().manual_seed(seed)
    train_sub = bundle.train.index(torch.randperm(len(bundle.train), generator=g)[:n])
    card = ScoreCard("image")
    t0 = time.perf_counter()
    floor = row_metrics(net, val, train_sub.x, train_sub.y, bundle.train.x, seed)
    floor["cond_acc"] = accuracy(net, val)
    floor["memorisation"] = pixel_memorisation(val.x, bundle.train.x)
    card.rows.append(Row("floor", floor, {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                                          "what": "real train subset vs real held-out; "
                                                  "cond_acc = classifier accuracy on held-out"}))
    t0 = time.perf_counter()
    base = GaussianBaseline(bundle.train, k)
    xb = base.sample(labels, n, seed)
    card.rows.append(Row("baseline", row_metrics(net, val, xb, labels, bundle.train.x, seed),
                         {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                          "what": "class-conditional Gaussian fitted to training pixels"}))
    gen, setup = run.generate(n, run.options(), labels=labels if k else None, seed=seed)
    card.rows.append(Row("model", row_metrics(net, val, gen.x, labels if k else None, bundle.train.x, seed), setup))
    card.extra["classifier"] = info
    card.notes.append(f"Features: penultimate layer of the plugin's reference CNN (held-out accuracy "
                      f"{info['val_accuracy']:.3f}); FD/KID/PR on those features, not Inception. "
                      "Memorisation: fraction of samples whose nearest training image (pixels) is 3x closer than "
                      "the second nearest.")
    return card
