"""The on-disk cache plugins share: generated datasets and in-project evaluators (classifiers).

``cache_dir(domain)`` is ``$PANFLOW_CACHE/<domain>`` (default ``~/.cache/panflow/<domain>``).
``cached_weights`` loads a network's weights by key or fits it once and stores them atomically
beside a JSON report; a corrupted entry is rebuilt, never trusted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def cache_dir(domain: str) -> Path:
    """Where ``domain`` keeps what it generates or fits once (``$PANFLOW_CACHE/<domain>``)."""
    return Path(os.environ.get("PANFLOW_CACHE", Path.home() / ".cache" / "panflow")) / domain


def cached_weights(domain: str, key: str, net: torch.nn.Module,
                   fit: Callable[[], tuple[torch.nn.Module, dict[str, Any]]]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``net`` with the weights cached under ``key``, or ``fit()``'s network and report, then cached.

    The report gains ``cached_at``. Returns ``(module in eval mode, report)``.
    """
    path = cache_dir(domain) / f"{key}.safetensors"
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists():
        try:
            net.load_state_dict(load_file(str(path)))
            return net.eval(), json.loads(info_path.read_text())
        except Exception:  # noqa: BLE001 - a corrupted cache entry is rebuilt, never trusted
            pass
    net, info = fit()
    info = {**info, "cached_at": str(path)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    info_path.write_text(json.dumps(info, indent=2))
    return net.eval(), info
