import math

import numpy as np
import pytest
import torch
import xarray as xr

from panflow import ConditionSpec, DataError, DatasetOptions, DataSpec, build_config, load_run, train
from panflow.testing import assert_plugin_conforms
from panflow_weather import metrics as M
from panflow_weather.backbone import build_unet, pad_sphere
from panflow_weather.data import load_weather
from panflow_weather.forcings import cell_area_weights, toa_radiation
from panflow_weather.rollout import flow_step, rollout, write_forecast
from panflow_weather.simulator import Channel, Recipe, simulate
from panflow_weather.store import read_store, to_store

TINY = Recipe(nlat=8, nlon=16, n_times=12, spinup=4, substeps=2, oracle_inits=2, oracle_members=3, oracle_leads=2)


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PANFLOW_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


# -- simulator ---------------------------------------------------------------------------------
def test_simulator_is_deterministic_and_seeded():
    a, b = simulate(TINY), simulate(TINY)
    c = simulate(Recipe(**{**TINY.__dict__, "seed": 1}))
    assert np.array_equal(a["geopotential"], b["geopotential"]) and np.array_equal(a["oracle_2m_temperature"],
                                                                                   b["oracle_2m_temperature"])
    assert not np.allclose(a["geopotential"], c["geopotential"])
    assert np.isfinite(a["geopotential"]).all() and a["oracle_geopotential"].shape == (2, 3, 2, 8, 16)


def test_unforced_inviscid_flow_conserves_energy_and_enstrophy():
    r = Recipe(nlat=16, nlon=32, substeps=4, noise=0.0, tracer_noise=0.0, drag=0.0, hyper=0.0, orography=0.0)
    ch = Channel(r)
    g = np.random.default_rng(0)
    zh = np.fft.rfft2(ch._odd(ch._smooth(g.standard_normal((16, 32)), 3)))
    th = np.fft.rfft2(ch.teq_lat)

    def invariants(zh):
        s = (32, 32)
        psi, zeta = np.fft.irfft2(ch.inv_k2 * zh, s=s), np.fft.irfft2(zh, s=s)
        return -(psi * zeta).mean(), (zeta ** 2).mean()

    e0, q0 = invariants(zh)
    for k in range(5):
        zh, th = ch.step(zh, th, np.datetime64("2000-01-01") + np.timedelta64(6 * k, "h"), g)
    e1, q1 = invariants(zh)
    assert abs(e1 - e0) / e0 < 2e-3 and abs(q1 - q0) / q0 < 2e-2
    assert abs(np.fft.irfft2(zh, s=(32, 32)).mean()) < 1e-12      # odd reflection: zero mean vorticity


def test_toa_radiation_is_the_solar_geometry():
    lat, lon = np.array([0.0, 89.9, -89.9]), np.array([0.0, 180.0])
    toa = toa_radiation(np.array(["2001-03-20T12:00"], dtype="datetime64[s]"), lat, lon)[0]
    assert toa[0, 0] == pytest.approx(1361 * 1.0, rel=0.03) and toa[0, 1] == 0.0   # equinox noon vs midnight
    jun = toa_radiation(np.array(["2001-06-21T00:00"], dtype="datetime64[s]"), lat, lon)[0]
    assert jun[1].min() > 400 and jun[2].max() == 0.0                             # polar day and night


def test_cell_area_weights():
    lat = 90 - (np.arange(32) + 0.5) * 180 / 32
    w = cell_area_weights(lat)
    assert w.mean() == pytest.approx(1.0) and np.allclose(w, w[::-1])
    assert np.allclose(w / w.max(), np.cos(np.deg2rad(lat)) / np.cos(np.deg2rad(lat)).max(), atol=1e-3)


# -- stores ------------------------------------------------------------------------------------
def _dataset(n=10, descending=True, seed=0):
    g = np.random.default_rng(seed)
    lat = np.linspace(80, -80, 6) if descending else np.linspace(-80, 80, 6)
    lon = np.arange(8) * 45.0
    time = np.datetime64("2020-01-01") + np.arange(n) * np.timedelta64(6, "h")
    ds = xr.Dataset({
        "geopotential": (("time", "level", "latitude", "longitude"), g.standard_normal((n, 2, 6, 8)).astype(np.float32),
                         {"units": "m**2 s**-2"}),
        "2m_temperature": (("time", "latitude", "longitude"), g.standard_normal((n, 6, 8)).astype(np.float32), {"units": "K"}),
        "land_sea_mask": (("latitude", "longitude"), (g.random((6, 8)) > 0.5).astype(np.float32))},
        coords={"time": time, "level": [500, 850], "latitude": lat, "longitude": lon}, attrs={"source": "test"})
    ds["latitude"].attrs["units"] = "degrees_north"
    return ds


@pytest.mark.parametrize("fmt", ["zarr2", "zarr3", "nc"])
def test_store_round_trip_with_variable_and_level_selection(tmp_path, fmt):
    ds = _dataset()
    path = to_store(ds, tmp_path / ("s.nc" if fmt == "nc" else "s.zarr"), zarr_format=3 if fmt == "zarr3" else 2)
    f = read_store(path, ["geopotential", "2m_temperature"], [850])
    assert [c["name"] for c in f.channels] == ["geopotential_850", "2m_temperature"]
    assert np.array_equal(f.data[:, 0], ds.geopotential.sel(level=850).values)
    assert np.array_equal(f.data[:, 1], ds["2m_temperature"].values)
    assert f.static_names == ["land_sea_mask"] and np.array_equal(f.lat, ds.latitude.values)
    fc = np.stack([f.data[2:4]] * 3, 1)[:, :, None].repeat(2, 2)                 # [I=2, M=3, L=2, C, H, W]
    meta = {"names": f.names, "attrs": f.attrs, "lat": f.lat.tolist(), "lon": f.lon.tolist(), "channels": f.channels,
            "step_hours": 6.0}
    out = write_forecast(fc, f.times[2:4], meta, tmp_path / ("fc.nc" if fmt == "nc" else "fc.zarr"),
                         zarr_format=3 if fmt == "zarr3" else 2)
    back = xr.open_dataset(out) if fmt == "nc" else xr.open_zarr(out, consolidated=fmt == "zarr2")
    assert back.geopotential.dims == ("init_time", "lead_time", "member", "level", "latitude", "longitude")
    assert back["2m_temperature"].dims == ("init_time", "lead_time", "member", "latitude", "longitude")
    assert np.array_equal(back.latitude.values, ds.latitude.values) and back.latitude.attrs["units"] == "degrees_north"
    assert back.geopotential.attrs["units"] == "m**2 s**-2" and back.attrs["source"] == "test"
    assert list(back.level.values) == [850] and back.lead_time.values[1] == np.timedelta64(12, "h")
    assert np.array_equal(back["2m_temperature"].values[1, 0, 2], f.data[3, 1])


@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_calendars_decoded_by_xarray(tmp_path, calendar):
    ds = _dataset(n=4)
    ds = ds.assign_coords(time=xr.date_range("2001-02-28", periods=4, freq="1D", calendar=calendar, use_cftime=True))
    p = to_store(ds, tmp_path / f"{calendar}.nc")
    if calendar == "noleap":
        assert str(read_store(p).times[1]) == "2001-03-01T00:00:00"
    else:
        with pytest.raises(DataError, match=r"calendar '360_day' has dates that are not real dates"):
            read_store(p)


def test_latitude_order_is_kept_and_scores_do_not_depend_on_it(tmp_path):
    down, up = _dataset(descending=True), _dataset(descending=True).isel(latitude=slice(None, None, -1))
    fd = read_store(to_store(down, tmp_path / "d.zarr"))
    fu = read_store(to_store(up, tmp_path / "u.zarr"))
    assert fd.lat[0] > fd.lat[-1] and fu.lat[0] < fu.lat[-1]
    assert np.array_equal(fd.data, fu.data[:, :, ::-1])
    assert [c["name"] for c in fd.channels] == ["2m_temperature", "geopotential_500", "geopotential_850"]  # sorted
    ens, truth = fd.data[None, :4, 0], fd.data[5, 0][None]
    assert M.scores(ens, truth, fd.lat)["crps"] == pytest.approx(
        M.scores(ens[..., ::-1, :], truth[..., ::-1, :], fu.lat)["crps"], rel=1e-6)


def _bad(tmp_path, ds, name="bad.zarr"):
    return to_store(ds, tmp_path / name)


def test_bad_stores_give_one_line_errors_naming_the_file(tmp_path):
    ds = _dataset()
    p = _bad(tmp_path, ds.rename({"latitude": "y"}), "nolat.zarr")
    with pytest.raises(DataError, match=r"nolat\.zarr: no latitude coordinate"):
        read_store(p)
    p = _bad(tmp_path, ds.assign_coords(latitude=[80, 40, 0, 20, -40, -80]), "nonmono.zarr")
    with pytest.raises(DataError, match=r"nonmono\.zarr: coordinate 'latitude' is not strictly"):
        read_store(p)
    with pytest.raises(DataError, match=r"variable '2m_temperatur' is absent \(did you mean '2m_temperature'\?\); "
                                         r"available: 2m_temperature, geopotential, land_sea_mask"):
        read_store(_bad(tmp_path, ds), ["2m_temperatur"])
    with pytest.raises(DataError, match="no level 300; levels: 500, 850"):
        read_store(_bad(tmp_path, ds, "lv.zarr"), ["geopotential"], [300])
    other = ds.assign(sst=(("time", "lat2", "longitude"), np.zeros((10, 3, 8), np.float32)))
    with pytest.raises(DataError, match=r"grid\.zarr: variable 'sst' has dimensions .* grid differs"):
        read_store(_bad(tmp_path, other, "grid.zarr"), ["2m_temperature", "sst"])
    with pytest.raises(DataError, match="global, evenly spaced"):
        read_store(_bad(tmp_path, ds.isel(longitude=slice(0, 5)), "regional.zarr"))
    with pytest.raises(DataError, match="does not exist"):
        read_store(tmp_path / "missing.zarr")


def test_nan_cells_are_masked_with_a_warning_or_refused(tmp_path):
    ds = _dataset()
    ds["2m_temperature"][3, 2, 1] = np.nan
    p = _bad(tmp_path, ds, "nan.zarr")
    with pytest.warns(UserWarning, match="masking 1 NaN"):
        b = load_weather(DatasetOptions(str(p), val_fraction=0.3, options={"variables": ["2m_temperature"]}))
    assert b.train.mask is not None and torch.isfinite(b.train.x).all()
    assert float(b.train.mask.sum()) == b.train.mask.numel() - 3      # the cell is masked in the 3 samples that use it
    with pytest.raises(DataError, match=r"nan\.zarr: 1 NaN/inf cells in 2m_temperature"):
        read_store(p, nan="error")


# -- metrics against closed forms ----------------------------------------------------------------
def _gaussian_crps(mu, sigma, y):
    from math import erf, exp, pi, sqrt

    z = (y - mu) / sigma
    return sigma * (z * erf(z / sqrt(2)) + 2 * exp(-z * z / 2) / sqrt(2 * pi) - 1 / sqrt(pi))


def test_fair_crps_of_a_gaussian_ensemble_matches_the_closed_form():
    g = np.random.default_rng(0)
    ens = g.normal(0.0, 2.0, (8, 5, 32, 64))                 # 5 members only: the fair CRPS is unbiased anyway
    truth = np.full((8, 32, 64), 1.0)
    w = np.ones(32)
    assert M.crps_fair(ens, truth, w) == pytest.approx(_gaussian_crps(0.0, 2.0, 1.0), rel=0.02)
    assert M.crps_fair(ens[:, :1], truth, w) == pytest.approx(M.mae(ens[:, :1], truth, w))
    bad, mask = truth.copy(), np.ones_like(truth)
    bad[:, 3, 5], mask[:, 3, 5] = 1e6, 0.0                    # a masked (NaN-filled) cell does not count
    assert M.crps_fair(ens, bad, w, mask) == pytest.approx(M.crps_fair(ens, truth, w, mask))
    assert M.rmse(ens, bad, w, mask) < 10 < M.rmse(ens, bad, w)


def test_a_perfect_ensemble_has_spread_skill_one_and_flat_ranks():
    g = np.random.default_rng(1)
    centre = g.normal(0, 1, (16, 1, 32, 64))
    ens = centre + g.normal(0, 0.5, (16, 9, 32, 64))
    truth = centre[:, 0] + g.normal(0, 0.5, (16, 32, 64))
    w = cell_area_weights(90 - (np.arange(32) + 0.5) * 180 / 32)
    assert M.spread_skill(ens, truth, w) == pytest.approx(1.0, abs=0.03)
    assert M.rank_flatness(M.rank_histogram(ens, truth)) < 2.5      # chi2_9 / 9 under a flat histogram
    narrow = centre + 0.3 * (ens - centre)
    assert M.spread_skill(narrow, truth, w) < 0.4 and M.rank_flatness(M.rank_histogram(narrow, truth)) > 100


def test_power_ratio_detects_blurred_small_scales():
    g = np.random.default_rng(2)
    truth = g.normal(0, 1, (4, 16, 32))
    lat = 90 - (np.arange(16) + 0.5) * 180 / 16
    assert M.power_ratio(truth[:, None], truth, lat) == pytest.approx(1.0)
    f = np.fft.rfft(truth, axis=-1)
    f[..., 8:] *= 0.5
    blurred = np.fft.irfft(f, n=32, axis=-1)
    assert M.power_ratio(blurred[:, None], truth, lat) == pytest.approx(0.25, rel=1e-6)


def test_power_ratio_weights_wavenumbers_by_the_truths_power():
    """The grid-scale bin holds ~2.5 % of the band's power: amplified 5x it moves the ratio by ~0.1,
    where a mean of per-wavenumber ratios would move by 4/9."""
    g = np.random.default_rng(3)
    lat = 90 - (np.arange(16) + 0.5) * 180 / 16
    f = np.fft.rfft(g.normal(0, 1, (4, 16, 32)), axis=-1)
    f *= (np.arange(17) + 1.0) ** -2.0                          # power ~ k^-4: the top band is a tail
    truth = np.fft.irfft(f, n=32, axis=-1)
    f2 = f.copy()
    f2[..., 16] *= np.sqrt(5.0)
    noisy = np.fft.irfft(f2, n=32, axis=-1)
    band = M.small_scale_band(M.zonal_spectrum(truth, lat))
    assert band[8:17].all() and not band[:8].any()
    assert 1.05 < M.power_ratio(noisy[:, None], truth, lat) < 1.15
    per_k = M.power_ratio_by_wavenumber(noisy[:, None], truth, lat)
    assert per_k[16] == pytest.approx(5.0, rel=1e-6) and per_k[band].mean() == pytest.approx(1 + 4 / 9, rel=1e-6)


# -- the network ---------------------------------------------------------------------------------
def test_pole_padding_continues_a_smooth_field_over_the_pole():
    h, w = 8, 16
    lat = 90 - (np.arange(h) + 0.5) * 180 / h
    lon = np.arange(w) * 360 / w
    la, lo = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None]
    field = lambda la, lo: np.cos(la) * np.cos(lo) + 0.5 * np.cos(la) * np.sin(lo) + np.sin(la)  # x + y/2 + z
    x = torch.tensor(field(la, lo))[None, None]
    p = pad_sphere(x, 1)[0, 0].numpy()
    beyond = np.deg2rad(90 + 180 / h / 2)             # the row just past the north pole, same longitudes
    assert np.allclose(p[0, 1:-1], field(np.pi - beyond, lo[0] + np.pi) * 0 + field(beyond, lo[0]), atol=1e-12)
    assert np.allclose(p[1:-1, 0], x[0, 0, :, -1].numpy()) and np.allclose(p[1:-1, -1], x[0, 0, :, 0].numpy())


def test_unet_is_equivariant_to_longitude_rotation():
    c, h, w = 2, 6, 16                                  # 6 latitudes: padded over the poles to 8 inside
    spec = DataSpec("continuous", (c, h, w), conditions=(ConditionSpec("prev", "tensor", (2, c, h, w)),
                                                         ConditionSpec("context", "tensor", (3, h, w))))
    net = build_unet(spec, channels=8, mults=(1, 2, 2))
    for prm in net.parameters():
        torch.nn.init.normal_(prm, std=0.2)
    x, t = torch.randn(2, c, h, w), torch.rand(2)
    cond = {"prev": torch.randn(2, 2, c, h, w), "context": torch.randn(2, 3, h, w)}
    out = net(x, t, cond)
    rolled = net(x.roll(4, -1), t, {k: v.roll(4, -1) for k, v in cond.items()})
    assert out.shape == x.shape and torch.allclose(rolled, out.roll(4, -1), atol=1e-5)


# -- end to end ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_train_rollout_and_forecast_store(tmp_path):
    cfg = build_config("weather", "smoke", overrides={"train.progress": False, "train.device": "cpu"})
    run = load_run(train(cfg, tmp_path / "run"), device="cpu")
    b = run.load_data()
    prev, n = b.val.cond["prev"][:2], 2
    fc = rollout(flow_step(run, run.options()), prev, np.array(["2000-03-01T00", "2000-03-02T00"], "datetime64[s]"),
                 np.stack([np.zeros((16, 32)), np.zeros((16, 32))]).astype(np.float32), b.meta["lat"], b.meta["lon"],
                 leads=2, members=3, step_hours=6.0)
    assert fc.shape == (n, 3, 2, 2, 16, 32) and np.isfinite(fc).all()
    assert not np.allclose(fc[:, 0], fc[:, 1])                         # members differ
    inits = np.array(["2000-03-01", "2000-03-02"], "datetime64[s]")
    ds = xr.open_zarr(write_forecast(fc, inits, b.meta, tmp_path / "fc.zarr"), consolidated=False)
    assert ds.geopotential.dims == ("init_time", "lead_time", "member", "level", "latitude", "longitude")
    assert ds.geopotential.attrs["units"] == "m**2 s**-2" and "recipe" in ds.attrs
    assert run.contract["encoder"]["residual_std"] and run.spec.condition("prev").normalisation.startswith('{"type"')
    assert not math.isnan(sum(run.contract["encoder"]["state_std"]))
    gen, _ = run.generate(2, cond={k: b.val.cond[k][:2] for k in ("prev", "context")}, seed=1)
    (path,) = run.domain.write_samples(gen, tmp_path / "samples", meta=b.meta)
    one = xr.open_zarr(path, consolidated=False)
    j = [c["name"] for c in b.meta["channels"]].index("2m_temperature")
    assert np.allclose(one["2m_temperature"].values[:, 0, 0], (b.val.cond["prev"][:2, -1, j] + gen.x[:, j]).numpy())
    card = run.domain.evaluate(run, n=2, members=3, leads=(1, 2))
    roles = [r.role for r in card.rows]
    assert {"floor · 6h", "baseline · persistence · 12h", "baseline · climatology · 6h", "model · 12h",
            "oracle · 12h"} <= set(roles)
    assert all(math.isfinite(v) for r in card.rows for v in r.metrics.values())


@pytest.mark.slow
def test_weather_plugin_conforms():
    assert assert_plugin_conforms("weather").passed


@pytest.mark.slow
def test_benchmark_smoke_scores_every_row_and_bar():
    from panflow_weather.benchmark import run_benchmark

    card = run_benchmark("smoke")
    assert card.extra["forecast_zarr_roundtrip"] and card.extra["training"]["params"] == card.extra["training"]["mse_params"]
    assert any(r.role == "baseline · mse model · 12h" for r in card.rows) and len(card.bars) == 2 * (2 * 7 + 2)
    per = card.row("baseline · persistence · 6h").metrics
    assert per["z500.crps"] == pytest.approx(per["z500.rmse"], rel=0.5)       # point forecast: CRPS = MAE
