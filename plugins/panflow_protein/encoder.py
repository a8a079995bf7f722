"""Two ways the model sees a Cα trace (``encoder.options.coords``):

- ``cartesian`` (default): coordinates divided by 10 (Å → nm; centring happens when the data is
  read). Centred proteins of 80–170 residues then have per-coordinate spread of about 1 nm, close to
  the unit-variance noise the flow starts from; a learned standardisation would add nothing
  rotation-invariant (every axis has the same spread after random rotations). Needed for motif
  scaffolding: given residues are held at their 3-D positions.
- ``internal``: per residue (cos θ, sin θ, cos τ, sin τ, (d − 3.8 Å) / 0.1 Å), the virtual bond
  angle, torsion and bond length (:mod:`panflow_protein.internal`, FoldingDiff's representation for
  Cα traces). Rotation- and translation-invariant by construction (no augmentation needed);
  ``[B, L, 3] → [B, L, 5]``. Given residues would fix angles, not positions, so it does not do
  motif scaffolding.
"""

from __future__ import annotations

import dataclasses

import torch

from panflow import ConfigError, DataSpec, Encoder, UnknownNameError

from .internal import CHANNELS, decode_internal, encode_internal


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

    @classmethod
    def from_options(cls, options: dict) -> AngstromToNm:
        return cls(float(options.get("scale", 10.0)))


class InternalCoords(Encoder):
    """``encode(x [B, L, 3] Å) -> z [B, L, 5]`` internal coordinates; ``decode`` rebuilds the trace
    (first residue at the origin)."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return encode_internal(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return decode_internal(z)

    def model_spec(self, raw: DataSpec) -> DataSpec:
        return dataclasses.replace(raw, shape=(raw.shape[0], CHANNELS))

    def config(self) -> dict:
        return {"type": "internal"}

    @classmethod
    def from_options(cls, options: dict) -> InternalCoords:
        if "scale" in options:
            raise ConfigError("encoder.options.scale applies to coords = 'cartesian' only")
        return cls()


ENCODERS = {"cartesian": AngstromToNm, "internal": InternalCoords}   # encoder.options.coords
BY_TYPE = {"angstrom_to_nm": AngstromToNm, "internal": InternalCoords}  # config()["type"] in checkpoints


def make_encoder(options: dict) -> Encoder:
    coords = options.get("coords", "cartesian")
    if coords not in ENCODERS:
        raise UnknownNameError("protein coordinates (encoder.options.coords)", coords, ENCODERS)
    unknown = set(options) - {"coords", "scale"}
    if unknown:
        raise ConfigError(f"unknown protein encoder option(s) {sorted(unknown)}: use coords (cartesian | internal) "
                          "and, for cartesian, scale")
    return ENCODERS[coords].from_options(options)


def load_encoder(config: dict, tensors: dict) -> Encoder:
    kind = config.get("type", "angstrom_to_nm")
    if kind not in BY_TYPE:
        raise ConfigError(f"checkpoint has an unknown protein encoder type {kind!r} (known: {sorted(BY_TYPE)})")
    return BY_TYPE[kind].from_options({k: v for k, v in config.items() if k != "type"})
