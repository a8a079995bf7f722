"""Pixels in [0, 1] ↔ model space [-1, 1] (``z = 2x − 1``), for clips ``[N, T, C, H, W]``."""

from __future__ import annotations

from typing import Any

import torch

from panflow import ConfigError, Encoder


class ClipEncoder(Encoder):
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return ((z + 1) / 2).clamp(0, 1)

    def config(self) -> dict[str, Any]:
        return {"type": "video-affine", "scale": 2.0, "shift": -1.0}


def make_encoder(options: dict[str, Any]) -> ClipEncoder:
    if options:
        raise ConfigError(f"the video encoder takes no options, got {sorted(options)}")
    return ClipEncoder()


def load_encoder(config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> ClipEncoder:
    if config.get("type") != "video-affine":
        raise ConfigError(f"unknown video encoder type {config.get('type')!r} in the checkpoint")
    return ClipEncoder()
