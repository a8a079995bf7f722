"""The weather benchmark on the embedded simulator: a flow model (GenCast recipe) and a
deterministic MSE model of the same network, data and steps, rolled out autoregressively from the
oracle's initial states (all after the training period), against persistence, climatology and
the simulator's own ensemble (see :mod:`panflow_weather.evaluate` for the rows)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from panflow import (
    DatasetOptions,
    RegressionObjective,
    SampleOptions,
    Samples,
    ScoreCard,
    Trainer,
    assemble,
    bar,
    build_config,
    count_parameters,
    get_registry,
    load_data,
    loss_curve,
)

from .data import embedded_store, load_fields, split_indices
from .evaluate import embedded_oracle, forecast_card
from .rollout import flow_step, forecast_dataset, write_forecast
from .store import open_dataset

PRESETS = {"smoke": {"leads": [1, 2], "members": 3, "inits": 2},
           # quick: the README's first run — fewer leads, members and initial states (the train preset is shorter)
           "quick": {"leads": [1, 2, 4], "members": 6, "inits": 8,
                     "defer": ("ens-mean RMSE / MSE-model RMSE", "CRPS / oracle CRPS", "small-scale power ratio")},
           "small": {"leads": [1, 2, 4, 8], "members": 12, "inits": 24},
           "full": {"leads": [1, 2, 4, 8, 12, 20], "members": 32, "inits": 24}}


def _train(model, objective, data: Samples, cfg) -> tuple[torch.nn.Module, float, float, list[dict]]:
    t0 = time.perf_counter()
    tr = Trainer(model, objective, data, cfg.train)
    tr.fit()
    return tr.sampling_model.eval(), time.perf_counter() - t0, float(tr.records[-1]["loss"]), loss_curve(tr.records)


def run_benchmark(preset: str, out_dir=None, seed: int = 0, overrides: dict | None = None) -> ScoreCard:
    """``overrides`` (config keys) shorten or change the preset's run, e.g. ``{"train.steps": 300}``."""
    p = PRESETS[preset]
    reg = get_registry()
    cfg = build_config("weather", preset, overrides={"train.seed": seed, "train.progress": False, **(overrides or {})},
                       registry=reg)
    t0 = time.perf_counter()
    embedded_store(cfg.data.options.get("recipe", preset))
    gen_s = time.perf_counter() - t0
    bundle = load_data(reg, cfg)
    a = assemble(reg, cfg, bundle)
    data = Samples(a.encoder.encode(bundle.train.x), None, bundle.train.mask, dict(bundle.train.cond))
    flow, flow_s, flow_loss, flow_curve = _train(a.model, a.objective, data, cfg)
    torch.manual_seed(cfg.train.seed)
    mse_model = reg.backbone(cfg.model.backbone).build(a.spec, **cfg.model.options)
    mse_obj = RegressionObjective(a.spec.conditions)
    mse, mse_s, mse_loss, mse_curve = _train(mse_model, mse_obj, data, cfg)
    f = load_fields(DatasetOptions(None, options=dict(cfg.data.options)))
    tr_idx, _ = split_indices(len(f.times), cfg.data.val_fraction)
    init_idx, oracle = embedded_oracle(cfg.data.options, f, p["inits"])
    if init_idx.min() - 1 <= tr_idx[-1]:
        raise RuntimeError("oracle initial states overlap the training period; raise data.val_fraction")
    m = min(p["members"], oracle.shape[1])
    opts = SampleOptions(cfg.sample.solver, nfe=cfg.sample.nfe)
    dev = next(flow.parameters()).device
    wrap = lambda model, obj: flow_step(SimpleNamespace(objective=obj, model=model, encoder=a.encoder, device=dev), opts)
    step_h = bundle.meta["step_hours"]
    card, out = forecast_card((wrap(flow, a.objective), m), f, tr_idx, init_idx, p["leads"], step_h, seed,
                              baselines={"mse model": (wrap(mse, mse_obj), 1)}, oracle=oracle[:, :m],
                              setup={"nfe": opts.nfe, "solver": opts.solver, "guidance": 1.0})
    _bars(card, out["table"], p["leads"], f.channels)
    card.defer(p.get("defer", ()))  # sized for small: matching the MSE model's RMSE, the oracle and the spectra
    fc = out["forecast"]
    card.artifacts.update({"model": fc[0, :2], "truth": np.stack([f.data[init_idx[0] + k] for k in range(1, fc.shape[2] + 1)]),
                           "lat": f.lat, "lon": f.lon})
    with tempfile.TemporaryDirectory() as tmp:
        path = write_forecast(fc[:2, :2], out["init_times"][:2], bundle.meta, Path(tmp) / "forecast.zarr")
        back, ref = open_dataset(path), forecast_dataset(fc[:2, :2], out["init_times"][:2], bundle.meta)
        v = f.channels[0]["variable"]
        roundtrip = bool(np.allclose(back[v].values, ref[v].values) and back[v].dims == ref[v].dims)
    card.extra.update({
        "training": {"steps": cfg.train.steps, "batch_size": cfg.train.batch_size, "params": count_parameters(flow),
                     "mse_params": count_parameters(mse), "flow_train_s": flow_s, "mse_train_s": mse_s,
                     "train_s": flow_s + mse_s, "loss_curves": {"flow": flow_curve, "mse": mse_curve},
                     "flow_final_loss": flow_loss, "mse_final_loss": mse_loss, "options": cfg.model.options,
                     "train_samples": len(bundle.train), "torch_threads": torch.get_num_threads()},
        "simulator_s_if_not_cached": gen_s, "forecast_zarr_roundtrip": roundtrip,
        "channels": [c["name"] for c in f.channels], "leads_steps": p["leads"], "step_hours": step_h,
        "recipe": cfg.data.options.get("recipe", preset)})
    card.notes += [
        f"{len(init_idx)} initial states after the training period; {m} members (model, oracle). The MSE model has "
        f"{count_parameters(mse):,} parameters like the flow model ({count_parameters(flow):,}) and trains "
        f"{cfg.train.steps} steps × {cfg.train.batch_size} on the same {len(bundle.train)} samples.",
        "The embedded data is a stochastically forced barotropic channel (panflow_weather.simulator); the bars are "
        "ratios to the rows above, measured on this simulator, not on ERA5."]
    return card


def _bars(card: ScoreCard, t: dict, leads: list[int], channels) -> None:
    """The issue's bars at the two longest leads, and beat persistence/climatology at every lead."""
    for c in channels:
        s = c["short"]
        for lead in leads[-2:]:
            mod, mse, orc = t["model"][lead], t["baseline · mse model"][lead], t["oracle"][lead]
            card.bars.append(bar(f"{s} lead {lead}: CRPS / MSE-model MAE", mod[f"{s}.crps"] / mse[f"{s}.crps"], "<=", 0.9))
            ss = mod[f"{s}.spread_skill"]
            card.bars.append(bar(f"{s} lead {lead}: spread/skill >= 0.8", ss, ">=", 0.8))
            card.bars.append(bar(f"{s} lead {lead}: spread/skill <= 1.2", ss, "<=", 1.2))
            card.bars.append(bar(f"{s} lead {lead}: ens-mean RMSE / MSE-model RMSE", mod[f"{s}.rmse"] / mse[f"{s}.rmse"],
                                 "<=", 1.0))
            card.bars.append(bar(f"{s} lead {lead}: CRPS / oracle CRPS", mod[f"{s}.crps"] / orc[f"{s}.crps"], "<=", 1.3))
            pr, pm = mod[f"{s}.power_ratio"], mse[f"{s}.power_ratio"]
            note = f"MSE model {pm:.3f}" + ("" if pm < 0.7 else " (not < 0.7: the bar's premise does not hold here)")
            card.bars.append(bar(f"{s} lead {lead}: small-scale power ratio >= 0.8", pr, ">=", 0.8, note))
            card.bars.append(bar(f"{s} lead {lead}: small-scale power ratio <= 1.2", pr, "<=", 1.2, note))
        for base in ("persistence", "climatology"):
            worst = max(t["model"][lead][f"{s}.rmse"] / t[f"baseline · {base}"][lead][f"{s}.rmse"] for lead in leads)
            card.bars.append(bar(f"{s}: worst ens-mean RMSE / {base} RMSE over leads", worst, "<", 1.0))
