import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from panflow import ConfigError, DataError, DatasetOptions, DataSpec, Samples
from panflow.bench import run_benchmarks
from panflow.cli import main
from panflow.testing import assert_plugin_conforms
from panflow_audio.audio_io import Policy, conform, trim_leading_silence
from panflow_audio.backbone import build_spec_unet
from panflow_audio.classifier import reference_classifier
from panflow_audio.data import load_digits, load_notes, load_path
from panflow_audio.embedded import spoken_digits
from panflow_audio.evaluate import frontend_for
from panflow_audio.frontend import Frontend, LogMelNormaliser, load_encoder, nonnegative_refine
from panflow_audio.metrics import energy_metrics, pitch_accuracy, yin_pitch
from panflow_audio.plugin import plugin

FE = {"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 16, "frames": 16}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PANFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "panflow-cache"))


def _tone(f0=440.0, sr=8000, seconds=0.3, channels=1, lead=0.0):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * f0 * t)
    x = np.concatenate([np.zeros(int(lead * sr)), x])
    return np.stack([x] * channels, 1).astype(np.float32)


def test_folder_and_manifests_round_trip(tmp_path):
    for i, (c, f0) in enumerate([("low", 220.0), ("low", 230.0), ("high", 660.0), ("high", 700.0)]):
        (tmp_path / "set" / c).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "set" / c / f"{i}.wav", _tone(f0), 8000)
    b = load_path(DatasetOptions(str(tmp_path / "set"), val_fraction=0.25, options=FE))
    assert b.meta["classes"] == ["high", "low"] and b.train.x.shape[1:] == (1, 16, 16)
    assert sorted(torch.cat([b.train.y, b.val.y]).tolist()) == [0, 0, 1, 1]
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"set/{c}/{i}.wav,{c}\n" for i, c in
                                                              [(0, "low"), (1, "low"), (2, "high"), (3, "high")]))
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"path": str(tmp_path / "set" / c / f"{i}.wav"), "label": c}) + "\n"
                                              for i, c in [(0, "low"), (1, "low"), (2, "high"), (3, "high")]))
    for name in ("m.csv", "m.jsonl"):
        m = load_path(DatasetOptions(str(tmp_path / name), val_fraction=0.25, options=FE))
        assert torch.equal(torch.cat([m.train.x, m.val.x]).sort(0).values, torch.cat([b.train.x, b.val.x]).sort(0).values)
    (tmp_path / "bad.csv").write_text("path,label\nset/low/missing.wav,low\n")
    with pytest.raises(DataError, match="missing.wav, which does not exist"):
        load_path(DatasetOptions(str(tmp_path / "bad.csv"), options=FE))


def test_bad_audio_files_are_named(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    sf.write(d / "ok.wav", _tone(), 8000)
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(DataError, match="corrupt.wav"):
        load_path(DatasetOptions(str(d), options=FE))
    (d / "corrupt.wav").unlink()
    sf.write(d / "silent.wav", np.zeros((800, 1), np.float32), 8000)
    with pytest.raises(DataError, match="silent.wav is silent"):
        load_path(DatasetOptions(str(d), options=FE))
    (d / "silent.wav").unlink()
    sf.write(d / "long.flac", _tone(seconds=3.0), 8000)
    with pytest.raises(DataError, match=r"long.flac is 3.0 s long"):
        load_path(DatasetOptions(str(d), options={**FE, "max_seconds": 2}))
    with pytest.raises(DataError, match="unsupported audio format"):
        from panflow_audio.audio_io import read_audio

        read_audio(d / "x.mp4")
    with pytest.raises(ConfigError, match="unknown audio data option"):
        load_path(DatasetOptions(str(d), options={"n_mel": 3}))


def test_conversions_mono_resample_trim_crop():
    pol = Policy(8000, 1000, crop="start")
    stereo = _tone(f0=500.0, sr=16000, seconds=0.5, channels=2, lead=0.1).T  # 0.1 s of leading silence
    x, done = conform(stereo, 16000, pol, "s.wav")
    assert done == {"mixed_down": True, "resampled": True} and x.shape == (1000,)
    assert float(x[:64].abs().max()) > 0.3  # leading silence trimmed (to the 64-sample frame): the tone starts at once
    assert yin_pitch(x[None], 8000, frame=512, hop=128).item() == pytest.approx(500.0, rel=0.003)
    short, _ = conform(_tone(seconds=0.05).T, 8000, pol, "short.wav")
    assert short.shape == (1000,) and float(short[500:].abs().max()) == 0.0  # zero-padded at the end
    ramp = torch.linspace(0, 1, 3000)
    c, _ = conform(ramp[None].numpy(), 8000, Policy(8000, 1000, crop="centre", trim_db=200), "r.wav")
    assert torch.allclose(c, ramp[1000:2000])
    assert trim_leading_silence(torch.zeros(640), 40).numel() == 640  # nothing loud: left as is


def test_encoder_round_trip_and_inversion_quality():
    fe = Frontend(sample_rate=8000, n_fft=512, hop_length=128, n_mels=64, frames=32, f_min=60.0, f_max=2000.0)
    t = torch.arange(fe.num_samples) / 8000
    wave = torch.stack([0.3 * torch.sin(2 * math.pi * f * t) * torch.hann_window(fe.num_samples)
                        for f in (261.6, 329.6, 440.0, 523.3)])
    spec = fe.features(wave)
    enc = LogMelNormaliser("per_bin")
    enc.fit(Samples(spec))
    z = enc.encode(spec)
    assert torch.allclose(enc.decode(z), spec, atol=1e-5)
    again = load_encoder(enc.config(), enc.tensors())
    assert torch.equal(again.encode(spec), z)
    back = fe.invert(spec)
    assert back.shape == wave.shape
    # Griffin-Lim keeps the pitch (exactly known here) and most of the spectrogram
    est = yin_pitch(back, 8000)
    assert torch.allclose(est, torch.tensor([261.6, 329.6, 440.0, 523.3]), rtol=0.01)
    err = (fe.features(back) - spec)[spec > spec.max() - 6].abs().mean()
    assert err < 1.0, err  # within ~4 dB on the loud bins
    noise = fe.features(torch.randn_like(wave) * 0.1)
    assert (noise - spec)[spec > spec.max() - 6].abs().mean() > 2 * err


def test_mel_inversion_refinement_fits_the_mel_bins_and_keeps_the_energy():
    import torchaudio.transforms as T

    fe = Frontend(sample_rate=8000, n_fft=512, hop_length=256, n_mels=32, frames=16)  # every bin but DC and Nyquist
    n = load_notes(DatasetOptions(val_fraction=0.2))
    wave = n.meta["waves"][0][:16]
    stft = torch.stft(wave, 512, 256, window=torch.hann_window(512), return_complex=True).abs() ** 2  # [B, F, T]
    inv = T.InverseMelScale(257, fe.n_mels, 8000, fe.f_min, fe.f_max)
    mel = inv.fb.T @ stft
    start = inv(mel).clamp_min(0)  # torchaudio's estimate: least squares, negatives clipped
    refined = nonnegative_refine(inv.fb.T, mel, start, 300)
    resid = lambda s: float((inv.fb.T @ s - mel).norm() / mel.norm())  # noqa: E731
    energy = lambda s: (s.sum((1, 2)) / stft.sum((1, 2)))  # noqa: E731
    assert (refined >= 0).all() and resid(refined) < 0.3 * resid(start)
    assert (energy(start) - 1).abs().max() > 0.04  # clipping the negatives added energy
    assert (energy(refined) - 1).abs().max() < 0.02
    assert torch.equal(nonnegative_refine(inv.fb.T, mel, start, 0), start)
    # a contract written before the refinement existed keeps inverting without it
    old = {k: v for k, v in fe.to_json().items() if k != "mel_nnls_iters"}
    assert Frontend.from_json(old).mel_nnls_iters == 0 and Frontend.from_json(fe.to_json()) == fe
    assert Frontend.from_json(old).key() != fe.key()  # and caches keyed on the frontend tell them apart


def test_scoring_uses_the_checkpoints_frontend_and_refuses_changed_features():
    from types import SimpleNamespace

    trained = Frontend(n_fft=1024, hop_length=256, n_mels=64, frames=16).to_json()
    trained.pop("mel_nnls_iters")  # a contract from before the refinement
    run = SimpleNamespace(contract={"dataset": {"frontend": trained}})
    same = SimpleNamespace(meta={"frontend": Frontend(n_fft=1024, hop_length=256, n_mels=64, frames=16).to_json()})
    assert frontend_for(run, same).mel_nnls_iters == 0  # inverted as it was trained
    changed = SimpleNamespace(meta={"frontend": Frontend(n_fft=512, hop_length=256, n_mels=64, frames=16).to_json()})
    with pytest.raises(ConfigError, match="n_fft=1024.*n_fft=512"):
        frontend_for(run, changed)


def test_embedded_sets_and_metrics():
    waves, labels, sr, info = spoken_digits()
    assert len(waves) == 1920 and sr == 22050 and sorted(set(labels.tolist())) == list(range(10))
    assert "espeak-ng" in info["synthesiser"] and len({s["voice"] for s in info["speakers"]}) > 30
    b = load_digits(DatasetOptions(val_fraction=0.2))
    assert b.train.x.shape[1:] == (1, 32, 32) and b.meta["frontend"]["num_samples"] == 192 * 31
    n = load_notes(DatasetOptions(val_fraction=0.2))
    tw, vw = n.meta["waves"]
    vw, vy = vw[:96], n.val.y[:96]
    hz = torch.tensor(n.meta["classes_hz"])
    real = pitch_accuracy(vw, hz[vy], 8000)
    assert real["pitch_acc"] == 1.0  # the estimator is validated on the real notes
    assert pitch_accuracy(vw, hz[(vy + 1) % 12], 8000)["pitch_acc"] == 0.0  # a semitone off always fails
    e = energy_metrics(vw, tw[: len(vw)])
    assert e["energy_ks_p"] > 0.01 and 0.8 < e["rms_ratio"] < 1.25
    silent = energy_metrics(vw, torch.zeros_like(vw))
    assert silent["energy_ks_p"] < 1e-6 and silent["silent_frac"] == 1.0


def test_classifier_is_trained_to_hear_through_griffin_lim():
    fe = Frontend(**FE, griffin_lim_iters=8)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(fe.num_samples) / 8000
    f0 = torch.tensor([300.0, 1200.0])[torch.arange(64) % 2]
    waves = 0.3 * torch.sin(2 * math.pi * f0[:, None] * t + 6.3 * torch.rand(64, 1, generator=g))
    waves = waves + 0.01 * torch.randn(waves.shape, generator=g)
    y = torch.arange(64) % 2
    net, info = reference_classifier(waves[:48], y[:48], waves[48:], y[48:], fe, 2, "tones", epochs=40)
    assert info["griffin_lim_augmented"] and info["val_accuracy"] == 1.0 and info["val_accuracy_griffin_lim"] == 1.0
    again, info2 = reference_classifier(waves[:48], y[:48], waves[48:], y[48:], fe, 2, "tones", epochs=40)
    assert info2["cached_at"] == info["cached_at"]  # the second call loads the cache


def test_backbone_rectangular_and_conditioning():
    m = build_spec_unet(DataSpec("continuous", (1, 64, 32), num_classes=12), channels=8, heads=2).eval()
    x, t = torch.randn(3, 1, 64, 32), torch.rand(3)
    assert m(x, t, {"label": torch.tensor([0, 5, 11])}).shape == x.shape


def test_conformance_kit():
    assert_plugin_conforms(plugin, "audio")


@pytest.mark.slow
def test_cli_smoke_train_sample_eval(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "audio", "--preset", "smoke", "--out", str(run)]) == 0
    contract = json.loads((next((run / "checkpoints").glob("step_*")) / "contract.json").read_text())
    assert contract["dataset"]["frontend"]["n_mels"] == 32 and contract["encoder"]["type"] == "logmel_normaliser"
    assert main(["sample", str(run), "--n", "3", "--nfe", "2", "--guidance", "2", "--out", str(tmp_path / "wav")]) == 0
    files = sorted(p.name for p in (tmp_path / "wav").iterdir())
    assert "spectrograms.png" in files and "sample_00001_one.wav" in files
    data, sr = sf.read(tmp_path / "wav" / "sample_00001_one.wav")
    assert sr == 8000 and data.shape == (192 * 31,)
    assert main(["eval", str(run), "--n", "8", "--out", str(tmp_path / "card")]) == 0
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert [r["role"] for r in card["rows"]] == ["floor", "baseline", "model", "ceiling"]
    assert all(r["setup"]["n"] == 8 for r in card["rows"])


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    paths = run_benchmarks(["audio"], "smoke", tmp_path, log=lambda m: None)
    result = json.loads(paths["audio"].read_text())
    roles = [r["role"] for r in result["rows"]]
    assert roles[:4] == ["floor · spoken_digits", "baseline · spoken_digits", "model · spoken_digits",
                         "ceiling · spoken_digits"] and "model · notes" in roles
    names = [b["name"] for b in result["bars"]]
    assert "notes: pitch within 50 cents" in names and "spoken_digits: FD / Griffin-Lim ceiling FD" in names
    curve = result["curves"]["notes"]  # an intermediate checkpoint, then the final model
    assert [p["step"] for p in curve] == [2, 3] and [p["n"] for p in curve] == [8, 16] and "pitch_acc" in curve[0]
    assert "training curve" in paths["audio"].with_suffix(".md").read_text()
