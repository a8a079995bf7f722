"""Each built-in domain's report previews from the arrays its benchmark keeps: the right media,
decodable (PNG signature, WAV header, well-formed SVG), one per source and empty without samples."""

import wave
import xml.etree.ElementTree as ET
from io import BytesIO

import numpy as np
import pytest

pytest.importorskip("matplotlib")
rng = np.random.default_rng(0)


def _check(previews, media):
    assert [p.medium for p in previews] == media
    for p in previews:
        if p.medium == "png":
            assert p.data[:8] == b"\x89PNG\r\n\x1a\n"
        elif p.medium == "svg":
            ET.fromstring(p.data)
        elif p.medium == "wav":
            with wave.open(BytesIO(p.data)) as w:
                assert w.getnframes() > 0


def test_toy2d_scatter_panels():
    from panflow_toy2d.previews import previews

    s = {f"8gaussians.{r}": rng.normal(size=(50, 2)) for r in ("real", "baseline", "model")}
    _check(previews({}, s), ["svg"] * 3)
    assert previews({}, {}) == []


def test_image_grids_one_column_per_class():
    from panflow_image.previews import class_grid, previews

    x, y = rng.random((30, 1, 8, 8)), np.arange(30) % 10
    g = class_grid(x, y, per_class=2)
    assert g.shape == (2 * 9 + 1, 10 * 9 + 1, 3)
    assert np.allclose(g[1:9, 1:9, 0], x[0, 0]) and np.allclose(g[10:18, 1:9, 0], x[10, 0])  # class 0 column
    _check(previews({"rows": []}, {"real.model": x, "real.labels": y, "unet.model": x, "unet.labels": y}), ["png", "png"])


def test_audio_spectrograms_and_players():
    from panflow_audio.previews import previews

    s = {"notes.mel": rng.normal(size=(4, 1, 16, 8)), "notes.wave": rng.normal(size=(4, 800)),
         "notes.label": np.arange(4), "notes.real_wave": rng.normal(size=(4, 800))}
    res = {"training": {"notes": {"frontend": {"sample_rate": 8000}}}}
    _check(previews(res, s), ["png", "wav", "wav", "wav", "wav"])


def test_robot_weather_protein_previews():
    from panflow_protein.previews import previews as protein
    from panflow_robot.previews import previews as robot
    from panflow_weather.previews import previews as weather

    paths = np.cumsum(rng.normal(size=(3, 20, 2)), 1)
    _check(robot({}, {"model": paths, "baseline": paths}), ["svg", "svg"])
    _check(weather({"channels": ["t2m", "z500"], "step_hours": 6},
                   {"model": rng.random((2, 3, 2, 8, 16)), "truth": rng.random((3, 2, 8, 16)), "lat": np.arange(8.0)}),
           ["png", "png"])
    chains = np.cumsum(rng.normal(size=(2, 12, 3)), 1)
    chains[1, 9:] = np.nan  # a shorter chain, padded
    _check(protein({}, {"model": chains, "real": chains, "lengths": np.array([12, 9])}), ["svg", "svg"])


def test_text_excerpts_decode_with_the_recorded_tokenizer():
    from panflow_text.previews import previews

    s = {"held_out.tokens": np.array([list(b"def f(x):"), list(b"return 1;")]), "model.tokens": np.array([list(b"abc")])}
    out = previews({"tokenizer": {"type": "byte"}}, s)
    assert [p.medium for p in out] == ["text", "text"] and previews({}, {}) == []
    assert b"[0] def f(x):" in out[0].data and b"[1] return 1;" in out[0].data and b"abc" in out[1].data
