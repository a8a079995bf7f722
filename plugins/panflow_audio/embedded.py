"""The embedded datasets, generated locally once and cached (no download):

- **spoken digits**: "zero" .. "nine" spoken by libespeak-ng (``espeakng-loader`` wheel) with many
  synthetic speakers — 8 English accents x voice variants, each speaker with its own rate, pitch and
  pitch range, every utterance jittered around them; a fixed seed and a recorded recipe.
- **notes**: harmonic tones with exact pitch labels (12 semitones, MIDI 60..71, equal temperament
  from A4 = 440 Hz), random timbre (number of partials, spectral tilt) and envelope.

Both are cached as ``.npz`` under ``$PANFLOW_CACHE/audio`` (default ``~/.cache/panflow/audio``),
keyed by a hash of their recipe; a corrupt cache file is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

import panflow

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ACCENTS = ["en", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us", "en-us-nyc"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt2", "klatt3",
            "Andy", "Annie", "benjamin", "david", "edward", "linda", "max", "michel", "norbert", "aunty"]
DIGITS_RECIPE = {"version": 1, "seed": 1234, "speakers": 64, "repeats": 3, "rate": [130, 230], "pitch": [25, 85],
                 "range": [20, 80], "rate_jitter": 15, "pitch_jitter": 6, "gain_db": [-6, 0]}
NOTES_RECIPE = {"version": 1, "seed": 4321, "midi": [60, 71], "per_class": 100, "sample_rate": 8000,
                "seconds": 0.6, "partials": [3, 8], "tilt": [0.5, 1.5], "attack_s": [0.005, 0.04],
                "decay": [1.0, 4.0], "noise_db": -40, "a4_hz": 440.0}


def cache_dir() -> Path:
    return panflow.cache_dir("audio")


def _key(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _cached(name: str, recipe: dict, build) -> tuple[list[np.ndarray], np.ndarray, int, dict]:
    path = cache_dir() / f"{name}-{_key(recipe)}.npz"
    if path.exists():
        try:
            z = np.load(path, allow_pickle=False)
            lengths = z["lengths"]
            waves = np.split(z["audio"], np.cumsum(lengths)[:-1])
            return waves, z["labels"], int(z["sample_rate"]), json.loads(str(z["info"]))
        except Exception:  # a corrupt cache entry is rebuilt
            pass
    waves, labels, sr, info = build(recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, audio=np.concatenate(waves), lengths=np.array([len(w) for w in waves]), labels=labels,
             sample_rate=sr, info=json.dumps(info))
    os.replace(tmp, path)
    return waves, labels, sr, info


def _build_digits(r: dict):
    from .speech import Speaker

    spk = Speaker()
    missing = [v for v in VARIANTS if not spk.has_variant(v)]
    if missing:
        raise RuntimeError(f"espeak-ng data lacks voice variants {missing}")
    rng = np.random.default_rng(r["seed"])
    waves, labels, speakers = [], [], []
    for s in range(r["speakers"]):
        voice = f"{ACCENTS[s % len(ACCENTS)]}+{VARIANTS[rng.integers(len(VARIANTS))]}"
        rate, pitch, rng_ = (int(rng.integers(*r["rate"])), int(rng.integers(*r["pitch"])), int(rng.integers(*r["range"])))
        speakers.append({"voice": voice, "rate": rate, "pitch": pitch, "range": rng_})
        for d, word in enumerate(DIGITS):
            for _ in range(r["repeats"]):
                w = spk.say(word, voice, rate + rng.integers(-r["rate_jitter"], r["rate_jitter"] + 1),
                            int(np.clip(pitch + rng.integers(-r["pitch_jitter"], r["pitch_jitter"] + 1), 0, 100)), rng_)
                gain = 10 ** (rng.uniform(*r["gain_db"]) / 20)
                waves.append((w.astype(np.float32) / 32768.0 * gain).astype(np.float32))
                labels.append(d)
    info = {"synthesiser": f"espeak-ng {spk.version} (espeakng-loader wheel)", "recipe": r, "speakers": speakers}
    return waves, np.array(labels, dtype=np.int64), spk.sample_rate, info


def _build_notes(r: dict):
    rng = np.random.default_rng(r["seed"])
    sr, n = r["sample_rate"], int(r["seconds"] * r["sample_rate"])
    t = np.arange(n) / sr
    waves, labels = [], []
    for i, midi in enumerate(range(r["midi"][0], r["midi"][1] + 1)):
        f0 = r["a4_hz"] * 2 ** ((midi - 69) / 12)
        for _ in range(r["per_class"]):
            k = int(rng.integers(r["partials"][0], r["partials"][1] + 1))
            tilt = rng.uniform(*r["tilt"])
            x = np.zeros(n)
            for h in range(1, k + 1):
                if h * f0 < sr / 2 * 0.95:
                    x += h ** -tilt * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
            att = rng.uniform(*r["attack_s"])
            env = np.minimum(t / att, 1.0) * np.exp(-rng.uniform(*r["decay"]) * t)
            x = x * env
            x = 0.5 * x / np.abs(x).max() + 10 ** (r["noise_db"] / 20) * rng.standard_normal(n)
            waves.append(x.astype(np.float32))
            labels.append(i)
    info = {"synthesiser": "procedural harmonic tones", "recipe": r,
            "classes_hz": [r["a4_hz"] * 2 ** ((m - 69) / 12) for m in range(r["midi"][0], r["midi"][1] + 1)]}
    return waves, np.array(labels, dtype=np.int64), sr, info


def spoken_digits():
    """``(waves: list of float32 [T_i], labels [N], sample_rate, info)`` — 64 speakers x 10 digits x 3."""
    return _cached("spoken-digits", DIGITS_RECIPE, _build_digits)


def notes():
    """``(waves, labels [N], sample_rate, info)`` — 12 semitones x 100 harmonic tones, exact pitch."""
    return _cached("notes", NOTES_RECIPE, _build_notes)


NOTE_NAMES = ["C4", "C#4", "D4", "D#4", "E4", "F4", "F#4", "G4", "G#4", "A4", "A#4", "B4"]
