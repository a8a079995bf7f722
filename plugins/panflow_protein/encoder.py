"""Å → nm: the model sees Cα coordinates divided by 10 (centring happens when the data is read).

Centred proteins of 80–170 residues then have per-coordinate spread of about 1 nm, close to the
unit-variance noise the flow starts from; a learned standardisation would add nothing rotation-
invariant (every axis has the same spread after random rotations).
"""

from __future__ import annotations

import torch

from panflow import Encoder


class AngstromToNm(Encoder):
    """``encode(x [B, L, 3] Å) = x / scale`` (scale 10: nm); ``decode`` multiplies back."""

    def __init__(self, scale: float = 10.0):
        self.scale = float(scale)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale

    def config(self) -> dict:
        return {"type": "angstrom_to_nm", "scale": self.scale}


def make_encoder(options: dict) -> AngstromToNm:
    return AngstromToNm(float(options.get("scale", 10.0)))


def load_encoder(config: dict, tensors: dict) -> AngstromToNm:
    return AngstromToNm(float(config.get("scale", 10.0)))
