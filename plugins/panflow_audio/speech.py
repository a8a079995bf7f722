"""A minimal ctypes binding to libespeak-ng, shipped with its voice data by the ``espeakng-loader``
wheel (no system install, no network). Used to synthesise the embedded spoken-digit set.

``Speaker().say("seven", voice="en-us+f2", rate=170, pitch=50, range_=50) -> int16 [T]`` at
``Speaker().sample_rate`` (22,050 Hz for espeak-ng).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from panflow import DataError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_STATE: dict = {}


def _library():
    if "lib" not in _STATE:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path()
        lib.espeak_Initialize.restype = ctypes.c_int
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), 0)
        if sr <= 0:
            raise DataError(f"libespeak-ng failed to initialise with data {data} (code {sr})")
        lib.espeak_Info.restype = ctypes.c_char_p
        version = lib.espeak_Info(None).decode()
        chunks: list[np.ndarray] = []

        def on_audio(wav, n, events):
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        cb = _CALLBACK(on_audio)
        lib.espeak_SetSynthCallback(cb)
        _STATE.update(lib=lib, sr=sr, version=version, chunks=chunks, cb=cb, data=Path(data))
    return _STATE


class Speaker:
    """The process-wide espeak-ng synthesiser (the C library keeps global state)."""

    def __init__(self):
        self._s = _library()

    @property
    def sample_rate(self) -> int:
        return int(self._s["sr"])

    @property
    def version(self) -> str:
        return str(self._s["version"])

    def has_variant(self, variant: str) -> bool:
        return (self._s["data"] / "voices" / "!v" / variant).exists()

    def say(self, text: str, voice: str, rate: int, pitch: int, range_: int) -> np.ndarray:
        """Synthesise ``text`` with ``voice`` (``lang[+variant]``), words/minute, pitch and range 0..100."""
        lib, chunks = self._s["lib"], self._s["chunks"]
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise DataError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, range_)):
            lib.espeak_SetParameter(param, int(value), 0)
        chunks.clear()
        buf = text.encode()
        err = lib.espeak_Synth(buf, len(buf) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
        lib.espeak_Synchronize()
        if err != 0 or not chunks:
            raise DataError(f"espeak-ng could not synthesise {text!r} with voice {voice!r} (code {err})")
        return np.concatenate(chunks)
