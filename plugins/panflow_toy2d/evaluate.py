"""The toy2d score card for a trained run: floor (true vs true), Gaussian baseline, model."""

from __future__ import annotations

import time

import torch

from panflow import Row, Run, ScoreCard, log_likelihood

from .conditional import CONDITIONAL
from .data import DATASETS, Toy2D
from .metrics import kl_to_truth, mode_coverage, wasserstein2


def gaussian_baseline(train: torch.Tensor):
    """The mode-averaging baseline: a single Gaussian fitted to the training points."""
    mu = train.double().mean(0)
    cov = torch.cov(train.double().T)
    return torch.distributions.MultivariateNormal(mu, covariance_matrix=cov)


def sample_metrics(toy: Toy2D, x_val: torch.Tensor, x: torch.Tensor, n_w2: int) -> dict[str, float]:
    return {"w2": wasserstein2(x_val[:n_w2], x[:n_w2]), **mode_coverage(toy, x)}


def density_metrics(toy: Toy2D, x_val: torch.Tensor, logq: torch.Tensor) -> dict[str, float]:
    out = {"nll": float(-logq.double().mean())}
    if toy.has_density:
        out["kl"] = kl_to_truth(toy, x_val, logq)
    return out


def model_log_prob(run: Run, x: torch.Tensor, method: str = "rk4", steps: int = 32) -> torch.Tensor:
    field = run.objective.field(run.model)
    return log_likelihood(field, x.to(run.device), method=method, steps=steps).cpu()


def evaluate(run: Run, n: int = 10_000, n_nll: int = 2_000, seed: int = 0) -> ScoreCard:
    name = run.contract["dataset"]["name"]
    if name in CONDITIONAL:
        return evaluate_conditional(run, name, min(n, 4000), min(n_nll, 1000), seed)
    toy = DATASETS[name]()
    g = torch.Generator().manual_seed(10_000 + seed)
    x_val, _ = toy.sample(n, g)
    x_ref, _ = toy.sample(n, g)
    card = ScoreCard("toy2d")
    t0 = time.perf_counter()
    floor = sample_metrics(toy, x_val, x_ref, n)
    if toy.has_density:
        floor.update(density_metrics(toy, x_val[:n_nll], toy.log_prob(x_val[:n_nll])))
    card.rows.append(Row("floor", floor, {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                                          "what": "true samples vs true samples; NLL = true entropy"}))
    train = toy.sample(50_000, torch.Generator().manual_seed(seed))[0]
    base = gaussian_baseline(train)
    t0 = time.perf_counter()
    xb = base.sample((n,)).float()
    bm = sample_metrics(toy, x_val, xb, n)
    bm.update(density_metrics(toy, x_val[:n_nll], base.log_prob(x_val[:n_nll].double())))
    card.rows.append(Row("baseline", bm, {"n": n, "seed": seed, "wall_s": time.perf_counter() - t0,
                                          "what": "one Gaussian fitted to the data"}))
    opts = run.options()
    t0 = time.perf_counter()
    gen, setup = run.generate(n, opts, seed=seed)
    mm = sample_metrics(toy, x_val, gen.x, n)
    mm.update(density_metrics(toy, x_val[:n_nll], model_log_prob(run, x_val[:n_nll])))
    setup["wall_s"] = time.perf_counter() - t0
    card.rows.append(Row("model", mm, setup))
    card.notes.append("NLL in nats per point through the flow (rk4, 32 steps, exact divergence); "
                      "KL(p‖q) = E_p[log p − log q] on held-out true samples; W2 exact EMD.")
    return card


def evaluate_conditional(run: Run, name: str, n: int, n_nll: int, seed: int) -> ScoreCard:
    """Score card of a conditional toy (ring: context; gauss2: inpainting)."""
    from .conditional_eval import inpaint_zscores, ring_baseline, ring_floor, ring_model

    card = ScoreCard("toy2d")
    bundle = run.load_data()
    if name == "cond_ring":
        toy = CONDITIONAL[name]()
        c, x_val = bundle.val.cond["c"][:n], bundle.val.x[:n]
        card.rows.append(Row("floor", ring_floor(toy, c, x_val, seed), {"n": n, "seed": seed}))
        card.rows.append(Row("baseline", ring_baseline(toy, bundle.train.x, c, x_val, seed),
                             {"n": n, "seed": seed, "what": "one Gaussian ignoring the context"}))
        opts = run.options()
        mm = ring_model(run.model, run.objective, toy, c.to(run.device), x_val.to(run.device), opts, seed, n_nll)
        card.rows.append(Row("model", mm, {"n": n, "seed": seed, "solver": opts.solver, "nfe": mm["nfe"],
                                           "guidance": opts.guidance, "conditions": ["c"]}))
        return card
    for inpaint in ("trained", "replacement"):
        opts = run.options(inpaint=inpaint)
        z = inpaint_zscores(run.model, run.objective, 1.0, n, opts, seed)
        card.rows.append(Row(f"model · inpaint {inpaint}", z, {"n": n, "seed": seed, "solver": opts.solver,
                                                                "nfe": opts.nfe, "known": "a"}))
    return card
