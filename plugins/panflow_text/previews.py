"""report.html previews for text: excerpts of held-out text, samples of the n-gram baseline, of the
AR model and of the best non-AR setting, decoded with the run's tokenizer (recorded in the result)."""

from __future__ import annotations

import numpy as np

from panflow import Preview

from .tokenizer import tokenizer_from_json

SOURCES = (("held_out", "held-out text"), ("baseline", "Kneser-Ney bigram baseline"),
           ("ar", "autoregressive transformer (equal budget)"), ("model", "best non-AR setting"))


def previews(result: dict, samples: dict[str, np.ndarray]) -> list[Preview]:
    tok = tokenizer_from_json(result.get("tokenizer", {"type": "byte"}))
    model = next((r.get("setup", {}).get("what", "") for r in result.get("rows", []) if r.get("role") == "model"), "")
    out = []
    for key, what in SOURCES:
        x = samples.get(f"{key}.tokens")
        if x is None or len(x) == 0:
            continue
        text = "\n\n".join(f"[{i}] " + tok.decode([int(t) for t in row]) for i, row in enumerate(np.asarray(x)))
        caption = what + (f": {model.split(';')[0]}" if key == "model" and model else "")
        out.append(Preview(f"{key}: {len(x)} sequences", "text", text.encode("utf-8"), caption))
    return out
