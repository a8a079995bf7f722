"""What was loaded, said once at the start of training: source, files/documents, items per split.

A loader that silently dropped data would show here (fewer items than files, skipped files).
"""

from __future__ import annotations

import os
import sys
from typing import Any

# dataset-meta keys a loader may set, in the order they are reported
COUNT_KEYS = ("files", "documents", "train_documents", "val_documents", "split", "train_sequences",
              "val_sequences", "bit_depth", "mode", "seq_len")


def _count(samples: Any) -> str:
    try:
        return f"{len(samples):,}"
    except TypeError:  # a streamed dataset without a length
        return "?"


def describe_data(name: str, bundle: Any) -> str:
    """One line: ``data 'NAME' from SOURCE: train N, val M items of shape S; files 3, ...``."""
    meta = getattr(bundle, "meta", {}) or {}
    x = getattr(bundle.train, "x", None)
    shape = f" of shape {list(x.shape[1:])}" if x is not None and hasattr(x, "shape") else ""
    facts = [f"{k.replace('_', ' ')} {meta[k]:,}" if isinstance(meta[k], int) and not isinstance(meta[k], bool)
             else f"{k.replace('_', ' ')} {meta[k]}" for k in COUNT_KEYS if k in meta]
    classes = meta.get("classes")
    if classes:
        facts.append(f"{len(classes)} classes")
    line = (f"data '{name}' from {meta.get('source', '?')}: train {_count(bundle.train)}, "
            f"val {_count(bundle.val)} items{shape}")
    line += ("; " + ", ".join(facts)) if facts else ""
    if meta.get("skipped_files"):
        ex = ", ".join(meta.get("skipped_examples", []))
        line += f"; skipped {meta['skipped_files']} file(s) of unknown type ({ex})"
    return line


def announce_data(name: str, bundle: Any) -> None:
    """Print :func:`describe_data` to stderr (rank 0 only under torchrun)."""
    if os.environ.get("RANK", "0") == "0":
        print(f"panflow: {describe_data(name, bundle)}", file=sys.stderr, flush=True)
