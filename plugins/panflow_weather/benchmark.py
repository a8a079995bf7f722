"""The weather benchmark on the embedded simulator: a flow model (GenCast recipe) and a
deterministic MSE model of the same network, data and steps, rolled out autoregressively from the
oracle's initial states, against persistence, climatology and the simulator's own ensemble.

Rows per lead time: floor (the oracle ensemble scored against one of its own members: a perfectly
reliable ensemble), baselines (persistence, climatology, MSE model), model, oracle.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from panflow import (
    DatasetOptions,
    Row,
    Samples,
    ScoreCard,
    Trainer,
    assemble,
    bar,
    build_config,
    count_parameters,
    get_registry,
    load_data,
)

from .data import embedded_store, load_fields, load_oracle, split_indices
from .metrics import scores, zonal_spectrum
from .regression import RegressionObjective
from .rollout import flow_step, forecast_dataset, rollout, write_forecast
from .store import open_dataset

PRESETS = {"smoke": {"leads": [1, 2], "members": 3, "inits": 2},
           "small": {"leads": [1, 2, 4, 8], "members": 12, "inits": 24},
           "full": {"leads": [1, 2, 4, 8, 12, 20], "members": 32, "inits": 24}}


def _train(model, objective, data: Samples, cfg) -> tuple[torch.nn.Module, float, float]:
    t0 = time.perf_counter()
    tr = Trainer(model, objective, data, cfg.train)
    tr.fit()
    return tr.sampling_model.eval(), time.perf_counter() - t0, float(tr.records[-1]["loss"])


def _climatology(fields, train_idx: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per grid point and hour of day mean of the training states, at ``valid`` times ``[I, L]``."""
    hours = (fields.times.astype("datetime64[h]").astype(np.int64) % 24)
    states = np.arange(train_idx[0] - 2, train_idx[-1] + 1)
    clim = {h: fields.data[states[hours[states] == h]].mean(0) for h in np.unique(hours[states])}
    vh = valid.astype("datetime64[h]").astype(np.int64) % 24
    return np.stack([np.stack([clim[int(h)] for h in row]) for row in vh])          # [I, L, C, H, W]


def _oracle(oracle, channels) -> np.ndarray:
    """The simulator ensemble ``[I, M, L, C, H, W]`` in the channel order of the fields."""
    return np.stack([oracle[f"oracle_{c['variable']}"].values for c in channels], axis=3)


def run_benchmark(preset: str, out_dir=None, seed: int = 0, overrides: dict | None = None) -> ScoreCard:
    """``overrides`` (config keys) shorten or change the preset's run, e.g. ``{"train.steps": 300}``."""
    p = PRESETS[preset]
    reg = get_registry()
    cfg = build_config("weather", preset, overrides={"train.seed": seed, "train.progress": False, **(overrides or {})},
                       registry=reg)
    t0 = time.perf_counter()
    store = embedded_store(cfg.data.options.get("recipe", preset))
    gen_s = time.perf_counter() - t0
    bundle = load_data(reg, cfg)
    a = assemble(reg, cfg, bundle)
    data = Samples(a.encoder.encode(bundle.train.x), None, bundle.train.mask, dict(bundle.train.cond))
    flow, flow_s, flow_loss = _train(a.model, a.objective, data, cfg)
    torch.manual_seed(cfg.train.seed)
    mse_model = reg.backbone(cfg.model.backbone).build(a.spec, **cfg.model.options)
    mse_obj = RegressionObjective(a.spec.conditions)
    mse, mse_s, mse_loss = _train(mse_model, mse_obj, data, cfg)
    # -- forecasts from the oracle's initial states (all after the training period)
    f = load_fields(DatasetOptions(None, options=dict(cfg.data.options)))
    tr_idx, _ = split_indices(len(f.times), cfg.data.val_fraction)
    oracle = load_oracle(store)
    pos = {t: k for k, t in enumerate(f.times.astype("datetime64[s]"))}
    init_idx = np.array([pos[t] for t in oracle.init_time.values.astype("datetime64[s]")])[: p["inits"]]
    if init_idx.min() - 1 <= tr_idx[-1]:
        raise RuntimeError("oracle initial states overlap the training period; raise data.val_fraction")
    leads_n, m = max(p["leads"]), min(p["members"], oracle.sizes["member"])
    init_times = f.times[init_idx]
    prev = torch.from_numpy(np.stack([f.data[init_idx - 1], f.data[init_idx]], 1))
    truth = np.stack([f.data[init_idx + k] for k in range(1, leads_n + 1)], 1)           # [I, L, C, H, W]
    opts = SampleOptions_from(cfg)
    dev = next(flow.parameters()).device
    t0 = time.perf_counter()
    fc = rollout(flow_step(SimpleNamespace(objective=a.objective, model=flow, encoder=a.encoder, device=dev), opts),
                 prev, init_times, f.static, f.lat, f.lon, leads_n, m, bundle.meta["step_hours"], seed)
    model_s = time.perf_counter() - t0
    fc_mse = rollout(flow_step(SimpleNamespace(objective=mse_obj, model=mse, encoder=a.encoder, device=dev), opts),
                     prev, init_times, f.static, f.lat, f.lon, leads_n, 1, bundle.meta["step_hours"], seed)
    valid = init_times[:, None] + np.arange(1, leads_n + 1)[None] * np.timedelta64(int(bundle.meta["step_hours"]), "h")
    forecasts = {
        "baseline · persistence": np.repeat(f.data[init_idx][:, None, None], leads_n, 2),
        "baseline · climatology": _climatology(f, tr_idx, valid)[:, None],
        "baseline · mse model": fc_mse, "model": fc}
    orc = _oracle(oracle, f.channels)[: p["inits"]]
    card = ScoreCard("weather")
    table: dict[str, dict[int, dict[str, float]]] = {}
    setup = {"n": int(len(init_idx)), "seed": seed, "members": m}
    for lead in p["leads"]:
        li = lead - 1
        rows = {"floor": _score(orc[:, 1:m, li], orc[:, 0, li], f, seed),
                **{k: _score(v[:, :, li], truth[:, li], f, seed) for k, v in forecasts.items()},
                "oracle": _score(orc[:, :m, li], truth[:, li], f, seed)}
        for role, met in rows.items():
            table.setdefault(role, {})[lead] = met
            extra = {"nfe": opts.nfe, "solver": opts.solver, "guidance": 1.0} if role == "model" else {}
            card.rows.append(Row(f"{role} · {lead * bundle.meta['step_hours']:g}h", met,
                                 {**setup, "members": m if role in ("model", "oracle") else
                                  (m - 1 if role == "floor" else 1), **extra}))
    _bars(card, table, p["leads"], f.channels)
    spectra = {k: {c["short"]: (zonal_spectrum(v[:, :, -1, j], f.lat) / zonal_spectrum(truth[:, -1, j], f.lat)).tolist()
                   for j, c in enumerate(f.channels)} for k, v in [("model", fc), ("mse", fc_mse)]}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_forecast(fc[:2, :2], init_times[:2], bundle.meta, Path(tmp) / "forecast.zarr")
        back = open_dataset(path)
        ref = forecast_dataset(fc[:2, :2], init_times[:2], bundle.meta)
        roundtrip = bool(np.allclose(back[f.channels[0]["variable"]].values, ref[f.channels[0]["variable"]].values))
    card.extra.update({
        "training": {"steps": cfg.train.steps, "batch_size": cfg.train.batch_size, "params": count_parameters(flow),
                     "flow_train_s": flow_s, "mse_train_s": mse_s, "flow_final_loss": flow_loss,
                     "mse_final_loss": mse_loss, "options": cfg.model.options},
        "simulator_s_if_not_cached": gen_s, "rollout_s": model_s, "forecast_zarr_roundtrip": roundtrip,
        "channels": [c["name"] for c in f.channels], "leads_steps": p["leads"], "step_hours": bundle.meta["step_hours"],
        "power_ratio_by_wavenumber_at_last_lead": spectra, "markdown_sections": [_markdown(table, f.channels, bundle.meta)]})
    card.notes += [
        f"{len(init_idx)} initial states after the training period; {m} members (model, oracle); the MSE model has "
        f"{count_parameters(mse):,} parameters like the flow model and trains {cfg.train.steps} steps on the same data.",
        "Scores (WeatherBench 2, cell-area latitude weights): RMSE of the ensemble mean; fair CRPS (MAE for single "
        "forecasts); spread/skill = sqrt((M+1)/M)·spread/RMSE; rank flatness δ (Candille & Talagrand; 1 for "
        "independent flat ranks, spatially correlated ranks raise it: compare with the floor row); power ratio = "
        "forecast/truth zonal power over the top half of the wavenumbers, |lat| ≤ 60.",
        "floor: the oracle ensemble without its member 0, scored against member 0 (a perfectly reliable ensemble).",
        "The embedded data is a stochastically forced barotropic channel (see panflow_weather.simulator); bars are "
        "ratios to the rows above, measured on this simulator, not ERA5."]
    return card


def SampleOptions_from(cfg):
    from panflow import SampleOptions

    return SampleOptions(cfg.sample.solver, nfe=cfg.sample.nfe)


def _score(ens: np.ndarray, truth: np.ndarray, f, seed: int) -> dict[str, float]:
    """``ens [I, M, C, H, W]``, ``truth [I, C, H, W]`` -> ``{short.metric: value}``."""
    out = {}
    for j, c in enumerate(f.channels):
        for k, v in scores(ens[:, :, j], truth[:, j], f.lat, seed).items():
            out[f"{c['short']}.{k}"] = v
    return out


def _bars(card: ScoreCard, t: dict, leads: list[int], channels) -> None:
    long = leads[-2:]
    for c in channels:
        s = c["short"]
        for lead in long:
            mod, mse, orc = t["model"][lead], t["baseline · mse model"][lead], t["oracle"][lead]
            card.bars.append(bar(f"{s} lead {lead}: CRPS / MSE-model MAE", mod[f"{s}.crps"] / mse[f"{s}.crps"], "<=", 0.9))
            ss = mod[f"{s}.spread_skill"]
            card.bars.append(bar(f"{s} lead {lead}: spread/skill >= 0.8", ss, ">=", 0.8))
            card.bars.append(bar(f"{s} lead {lead}: spread/skill <= 1.2", ss, "<=", 1.2))
            card.bars.append(bar(f"{s} lead {lead}: ens-mean RMSE / MSE-model RMSE", mod[f"{s}.rmse"] / mse[f"{s}.rmse"],
                                 "<=", 1.0))
            card.bars.append(bar(f"{s} lead {lead}: CRPS / oracle CRPS", mod[f"{s}.crps"] / orc[f"{s}.crps"], "<=", 1.3))
            pr, pm = mod[f"{s}.power_ratio"], mse[f"{s}.power_ratio"]
            card.bars.append(bar(f"{s} lead {lead}: small-scale power ratio >= 0.8", pr, ">=", 0.8,
                                 f"MSE model {pm:.3f} (bar applies where it is < 0.7)"))
            card.bars.append(bar(f"{s} lead {lead}: small-scale power ratio <= 1.2", pr, "<=", 1.2))
        for base in ("persistence", "climatology"):
            worst = max(t["model"][lead][f"{s}.rmse"] / t[f"baseline · {base}"][lead][f"{s}.rmse"] for lead in leads)
            card.bars.append(bar(f"{s}: worst ens-mean RMSE / {base} RMSE over leads", worst, "<", 1.0))


def _markdown(t: dict, channels, meta) -> str:
    lines = []
    for c in channels:
        s = c["short"]
        lines += [f"### {c['name']}: CRPS by lead (hours)", "",
                  "| row | " + " | ".join(f"{lead * meta['step_hours']:g}h" for lead in t["model"]) + " |",
                  "|---|" + "---|" * len(t["model"])]
        for role, by in t.items():
            lines.append(f"| {role} | " + " | ".join(f"{by[lead][f'{s}.crps']:.4g}" for lead in by) + " |")
        lines.append("")
    return "\n".join(lines)
