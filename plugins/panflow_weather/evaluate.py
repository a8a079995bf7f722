"""The weather score card: ensemble forecasts from real initial states, scored per lead time
against persistence, climatology, optional extra baselines (the MSE model) and, on the embedded
simulator, the oracle ensemble and its floor.

Rows per lead: floor (oracle ensemble without member 0, scored against member 0: a perfectly
reliable ensemble), baselines, model, oracle. Used by ``panflow eval`` and by the benchmark.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from panflow import DatasetOptions, Row, ScoreCard

from .data import embedded_store, load_fields, load_oracle, split_indices
from .metrics import power_ratio_by_wavenumber, scores, small_scale_band, zonal_spectrum
from .rollout import Step, flow_step, rollout


def climatology(fields, train_idx: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per grid point and hour-of-day mean of the training states at ``valid [I, L]``: ``[I, L, C, H, W]``."""
    hours = fields.times.astype("datetime64[h]").astype(np.int64) % 24
    states = np.arange(train_idx[0] - 2, train_idx[-1] + 1)
    clim = {int(h): fields.data[states[hours[states] == h]].mean(0) for h in np.unique(hours[states])}
    vh = valid.astype("datetime64[h]").astype(np.int64) % 24
    mean = fields.data[states].mean(0)
    return np.stack([np.stack([clim.get(int(h), mean) for h in row]) for row in vh])


def _score(ens: np.ndarray, truth: np.ndarray, fields, seed: int, mask: np.ndarray | None = None) -> dict[str, float]:
    """``ens [I, M, C, H, W]``, ``truth [I, C, H, W]`` (``mask`` like truth: 1 = real) -> ``{short.metric: value}``."""
    out = {}
    for j, c in enumerate(fields.channels):
        for k, v in scores(ens[:, :, j], truth[:, j], fields.lat, seed, None if mask is None else mask[:, j]).items():
            out[f"{c['short']}.{k}"] = v
    return out


def forecast_card(model: tuple[Step, int], fields, train_idx: np.ndarray, init_idx: np.ndarray, leads: list[int],
                  step_hours: float, seed: int = 0, baselines: dict[str, tuple[Step, int]] | None = None,
                  oracle: np.ndarray | None = None, setup: dict | None = None) -> tuple[ScoreCard, dict]:
    """Roll out ``model = (step, members)`` (and each extra baseline) from the states at ``init_idx``.

    ``oracle [I, M, L, C, H, W]`` adds the floor and oracle rows. Returns the card and the
    per-role, per-lead table of scores.
    """
    n_lead = max(leads)
    if init_idx.min() < 1 or init_idx.max() + n_lead >= len(fields.times):
        raise ValueError("initial states need one earlier state and max(leads) later ones in the record")
    init_times = fields.times[init_idx]
    prev = torch.from_numpy(np.stack([fields.data[init_idx - 1], fields.data[init_idx]], 1))
    truth = np.stack([fields.data[init_idx + k] for k in range(1, n_lead + 1)], 1)          # [I, L, C, H, W]
    tmask = None if fields.mask is None else np.stack([fields.mask[init_idx + k] for k in range(1, n_lead + 1)], 1)
    valid = init_times[:, None] + np.arange(1, n_lead + 1)[None] * np.timedelta64(int(round(step_hours * 3600)), "s")
    roll = lambda step, m: rollout(step, prev, init_times, fields.static, fields.lat, fields.lon, n_lead, m,
                                   step_hours, seed)
    t0 = time.perf_counter()
    fc = roll(*model)
    wall = time.perf_counter() - t0
    forecasts = {"baseline · persistence": np.repeat(fields.data[init_idx][:, None, None], n_lead, 2),
                 "baseline · climatology": climatology(fields, train_idx, valid)[:, None]}
    forecasts.update({f"baseline · {k}": roll(*v) for k, v in (baselines or {}).items()})
    forecasts["model"] = fc
    card, table = ScoreCard("weather"), {}
    m = model[1]
    base = {"n": int(len(init_idx)), "seed": seed, **(setup or {})}
    for lead in leads:
        li = lead - 1
        rows = {}
        if oracle is not None:
            rows["floor"] = (_score(oracle[:, 1:, li], oracle[:, 0, li], fields, seed), oracle.shape[1] - 1)
        mk = None if tmask is None else tmask[:, li]
        rows.update({k: (_score(v[:, :, li], truth[:, li], fields, seed, mk), v.shape[1]) for k, v in forecasts.items()})
        if oracle is not None:
            rows["oracle"] = (_score(oracle[:, :, li], truth[:, li], fields, seed, mk), oracle.shape[1])
        for role, (met, members) in rows.items():
            table.setdefault(role, {})[lead] = met
            extra = {"wall_s": wall} if role == "model" else {"nfe": "", "solver": "", "guidance": ""}
            card.rows.append(Row(f"{role} · {lead * step_hours:g}h", met, {**base, **extra, "members": members}))
    last = {k: v[:, :, n_lead - 1] for k, v in forecasts.items()}
    if oracle is not None and oracle.shape[2] >= n_lead:
        last["oracle"] = oracle[:, :, n_lead - 1]
    spectra = {k: {c["short"]: power_ratio_by_wavenumber(v[:, :, j], truth[:, -1, j], fields.lat).tolist()
                   for j, c in enumerate(fields.channels)} for k, v in last.items()}
    bands = {c["short"]: small_scale_band(zonal_spectrum(truth[:, -1, j], fields.lat)).tolist()
             for j, c in enumerate(fields.channels)}
    card.extra.update({"members": m, "rollout_s": wall, "power_ratio_by_wavenumber_at_last_lead": spectra,
                       "small_scale_band": bands,
                       "markdown_sections": [_markdown(table, fields.channels, step_hours),
                                             _spectra_markdown(spectra, bands, n_lead * step_hours)]})
    card.notes += [
        "Scores (WeatherBench 2, cell-area latitude weights): RMSE of the ensemble mean; fair CRPS (MAE for single "
        "forecasts); spread/skill = sqrt((M+1)/M)·spread/RMSE; rank flatness δ (Candille & Talagrand; 1 for "
        "independent flat ranks, spatially correlated ranks raise it: compare with the floor row); power ratio = "
        "forecast/truth zonal power summed over the top half of the truth's resolved zonal wavenumbers (those holding "
        "≥ 1e-5 of its peak), |lat| ≤ 60; per-wavenumber ratios at the last lead in their own table."]
    if oracle is not None:
        card.notes.append("floor: the oracle ensemble without its member 0, scored against member 0 (a perfectly "
                          "reliable ensemble); oracle: the simulator run from the true state with fresh noise.")
    return card, {"table": table, "forecast": fc, "init_times": init_times}


def _markdown(t: dict, channels, step_hours: float) -> str:
    lines = []
    for metric in ("crps", "rmse", "spread_skill", "power_ratio"):
        for c in channels:
            s = c["short"]
            leads = list(t["model"])
            lines += [f"### {c['name']}: {metric} by lead", "",
                      "| row | " + " | ".join(f"{lead * step_hours:g}h" for lead in leads) + " |", "|---|" + "---|" * len(leads)]
            for role, by in t.items():
                lines.append(f"| {role} | " + " | ".join(f"{by[lead].get(f'{s}.{metric}', float('nan')):.4g}"
                                                        for lead in leads) + " |")
            lines.append("")
    return "\n".join(lines)


def _spectra_markdown(spectra: dict, bands: dict, hours: float) -> str:
    """Per-wavenumber forecast/truth power at the last lead; the band the power ratio sums is starred."""
    lines = []
    for s, band in bands.items():
        top = max(k for k in range(len(band)) if band[k])
        ks = list(range(1, min(len(band), top + 3)))                    # the band and two wavenumbers past it
        lines += [f"### {s}: forecast / truth zonal power by wavenumber at {hours:g}h (* = the small-scale band)", "",
                  "| row | " + " | ".join(f"{k}{'*' if band[k] else ''}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
        lines += [f"| {role} | " + " | ".join(f"{by[s][k]:.3g}" for k in ks) + " |" for role, by in spectra.items()]
        lines.append("")
    return "\n".join(lines)


def embedded_oracle(cfg_options: dict, fields, n: int | None = None):
    """``(init_idx, oracle [I, M, L, C, H, W])`` of the embedded store the options name."""
    store = embedded_store(cfg_options.get("recipe", "small"))
    o = load_oracle(Path(store))
    pos = {t: k for k, t in enumerate(fields.times.astype("datetime64[s]"))}
    idx = np.array([pos[t] for t in o.init_time.values.astype("datetime64[s]")])
    arr = np.stack([o[f"oracle_{c['variable']}"].values for c in fields.channels], axis=3)
    return idx[:n], arr[:n]


def evaluate(run, n: int = 16, seed: int = 0, members: int = 8, leads: tuple[int, ...] = (1, 2, 4), **_) -> ScoreCard:
    """``panflow eval``: ``members``-member forecasts from ``n`` validation states (the oracle's on the
    embedded simulator) against persistence and climatology (and the oracle when there is one)."""
    cfg = run.cfg
    opts = DatasetOptions(cfg.data.path or None, cfg.data.val_fraction, cfg.data.seed, dict(cfg.data.options))
    fields = load_fields(opts)
    tr, va = split_indices(len(fields.times), cfg.data.val_fraction)
    oracle = None
    if not cfg.data.path:
        init_idx, oracle = embedded_oracle(cfg.data.options, fields, n)
        leads = tuple(x for x in leads if x <= oracle.shape[2]) or (1,)
        oracle = oracle[:, :members]
    else:
        usable = va[(va - 1 > tr[-1]) & (va + max(leads) < len(fields.times))]
        init_idx = usable[np.linspace(0, len(usable) - 1, min(n, len(usable))).astype(int)]
    step_h = float((fields.times[1] - fields.times[0]) / np.timedelta64(1, "h"))
    sopts = run.options()
    card, _ = forecast_card((flow_step(run, sopts), members), fields, tr, init_idx, list(leads), step_h, seed,
                            oracle=oracle, setup={"nfe": sopts.nfe, "solver": sopts.solver, "guidance": 1.0})
    return card
