"""Sampling potentials for Cα chains (:mod:`panflow.potentials`): ``rg`` (size) and ``bond`` (Cα–Cα bonds).

``rg`` steers sampled chains to a protein-like size (radius of gyration).

Residual ``r = log Rg(x̂₁) − log Rg*`` (:mod:`panflow.potentials`) on the chain rebuilt from the
clean estimate (internal coordinates through NeRF, Cartesian ones by the encoder's scale), over the
real residues of the ``residues`` condition. The target is a power law in the chain length, ``Rg* = a · N^b · exp(sd · ε)`` (Å),
``ε ~ N(0, 1)`` drawn once per chain, so ``sd`` reproduces the data's spread of sizes around the
law instead of pinning every chain to its median. The defaults are the empirical law for folded
single-domain proteins, ``2.2 · N^0.38`` Å (Skolnick et al. 1997, J. Mol. Biol. 265:217); fit
``a``, ``b``, ``sd`` to your training chains with :func:`size_law` when they are not whole
globular chains (the benchmark's 64-residue windows sit ~1.2× above it).

Why: a model in internal coordinates gets each residue's angles right and the chain's global size
wrong (its loss cannot see how angle errors add up along the chain); see docs/benchmarks.md.

``bond`` steers the Cα–Cα distances of consecutive real residues to 3.8 Å: the residual is their
RMS deviation (Å). A Cartesian model learns the global arrangement well and the 0.1 Å precision of
its bonds slowly; the bond length is chemistry, not a fitted statistic, so steering it to the end
(``t_max = 1``) only asks the sample to be a valid chain.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from panflow import ConfigError, Potential

from .angle_objective import radius_of_gyration
from .backbone import residue_mask
from .internal import BOND, BOND_SCALE, CHANNELS, decode_internal


def _real(cond: dict, z: torch.Tensor, potential: str) -> torch.Tensor:
    """``[B, L]`` float64: the real residues of the chains ``z [B, L, 3 or 5]`` (checked), read exactly
    as the backbone reads them (a null or all-zero ``residues`` row means "all real")."""
    if z.dim() != 3 or z.shape[-1] not in (3, CHANNELS):
        raise ConfigError(f"potential '{potential}' works on protein chains [B, L, 3 or {CHANNELS}], got {list(z.shape)}")
    return residue_mask(cond, z.shape[0], z.shape[1], z.device).double()


def size_law(structs: list[np.ndarray]) -> dict[str, float]:
    """``{a, b, sd}``: least squares of ``log Rg = log a + b log N`` over chains ``[L_i, 3]`` (Å) and
    the standard deviation of the residuals (log units); with one length only, ``b = 0.38``."""
    from .metrics import fit_rg_power_law
    from .metrics import radius_of_gyration as rg_np

    a, b = fit_rg_power_law(structs)
    res = [math.log(rg_np(s) / (a * len(s) ** b)) for s in structs]
    return {"a": float(a), "b": float(b), "sd": float(np.std(res))}


class RgPotential(Potential):
    name = "rg"

    def __init__(self, a: float = 2.2, b: float = 0.38, sd: float = 0.0, scale: float = 10.0):
        if not (a > 0 and sd >= 0 and scale > 0):
            raise ConfigError(f"potential 'rg' needs a > 0, sd >= 0 and scale > 0, got a={a}, sd={sd}, scale={scale}")
        self.a, self.b, self.sd, self.scale = float(a), float(b), float(sd), float(scale)

    def _angstrom(self, z: torch.Tensor) -> torch.Tensor:
        return decode_internal(z.double()) if z.shape[-1] == CHANNELS else z.double() * self.scale

    def bind(self, cond: dict, batch: int, generator: torch.Generator | None):
        eps = torch.randn(batch, generator=generator, device=generator.device if generator is not None else "cpu")

        def residual(z: torch.Tensor) -> torch.Tensor:
            m = _real(cond, z, self.name)
            n = m.sum(1).clamp_min(1.0)
            log_target = math.log(self.a) + self.b * torch.log(n) + self.sd * eps.to(z.device, torch.float64)
            rg = radius_of_gyration(self._angstrom(z), m)
            return torch.log(rg) - log_target

        return residual


class BondPotential(Potential):
    name = "bond"

    def __init__(self, length: float = BOND, scale: float = 10.0):
        if not (length > 0 and scale > 0):
            raise ConfigError(f"potential 'bond' needs length > 0 and scale > 0, got {length}, {scale}")
        self.length, self.scale = float(length), float(scale)

    def bind(self, cond: dict, batch: int, generator: torch.Generator | None):
        def residual(z: torch.Tensor) -> torch.Tensor:
            m = _real(cond, z, self.name)
            pair = m[:, 1:] * m[:, :-1]
            if z.shape[-1] == CHANNELS:   # the bond channel of residue i is |x_i − x_{i−1}|
                d = BOND + BOND_SCALE * z[:, 1:, 4].double()
            else:
                x = z.double() * self.scale
                d = (x[:, 1:] - x[:, :-1]).norm(dim=-1)
            msd = ((d - self.length) ** 2 * pair).sum(1) / pair.sum(1).clamp_min(1.0)
            return (msd + 1e-12).sqrt()

        return residual
