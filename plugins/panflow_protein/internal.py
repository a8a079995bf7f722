"""Cα traces in internal coordinates: virtual bond lengths, bond angles and torsions.

A Cα trace ``x [B, L, 3]`` is fixed up to a rigid motion by, at each residue ``i`` (looking back
along the chain, so a residue's numbers use only residues ``<= i`` and padding never leaks into a
real position):

- ``d_i = |x_i − x_{i−1}|`` (i ≥ 1; 3.8 Å for trans peptides),
- ``θ_i``, the angle at ``x_{i−1}`` between ``x_{i−2}`` and ``x_i`` (i ≥ 2; ≈ 91° in helices,
  ≈ 120° in strands),
- ``τ_i``, the torsion of ``x_{i−3} … x_i`` (i ≥ 3; ≈ +50° in α-helices, ≈ −170° in strands),

and is rebuilt from them by NeRF (Parsons et al. 2005, J. Comput. Chem. 26:1063). FoldingDiff
(Wu et al. 2024, Nat. Commun. 15:1059) generates backbones as such angles: secondary structure is
then a pattern in a few per-residue numbers instead of in 3-D offsets, and the chain's bond lengths
are one channel the model must get right. Undefined entries (the first residues) are 0.
"""

from __future__ import annotations

import torch

BOND = 3.8       # Å: the Cα–Cα distance of a trans peptide
BOND_SCALE = 0.1  # Å per model unit of the bond channel (the bond-validity tolerance)
CHANNELS = 5      # cos θ, sin θ, cos τ, sin τ, (d − BOND) / BOND_SCALE


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def internal_from_xyz(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x [B, L, 3]`` → ``(d, θ, τ)``, each ``[B, L]`` (radians; undefined entries 0)."""
    b, length = x.shape[:2]
    d, theta, tau = (x.new_zeros(b, length) for _ in range(3))
    bond = x[:, 1:] - x[:, :-1]                      # bond[:, j] = x_{j+1} − x_j
    d[:, 1:] = bond.norm(dim=-1)
    if length >= 3:
        cos = (_unit(-bond[:, :-1]) * _unit(bond[:, 1:])).sum(-1).clamp(-1.0, 1.0)
        theta[:, 2:] = torch.acos(cos)
    if length >= 4:
        b1, b2, b3 = bond[:, :-2], bond[:, 1:-1], bond[:, 2:]
        n1, n2 = torch.cross(b1, b2, dim=-1), torch.cross(b2, b3, dim=-1)
        y = b2.norm(dim=-1) * (b1 * n2).sum(-1)  # IUPAC sign: clockwise seen along b2 is positive
        tau[:, 3:] = torch.atan2(y, (n1 * n2).sum(-1))
    return d, theta, tau


def xyz_from_internal(d: torch.Tensor, theta: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``(d, θ, τ)`` each ``[B, L]`` → ``x [B, L, 3]`` (first residue at the origin, second on +x,
    third in the xy-plane). The inverse of :func:`internal_from_xyz` up to a rigid motion."""
    b, length = d.shape
    xs = [d.new_zeros(b, 3)]
    if length > 1:
        xs.append(torch.stack([d[:, 1], d.new_zeros(b), d.new_zeros(b)], -1))
    if length > 2:
        step = torch.stack([-torch.cos(theta[:, 2]), torch.sin(theta[:, 2]), d.new_zeros(b)], -1)
        xs.append(xs[1] + d[:, 2:3] * step)
    for i in range(3, length):
        a, p, c = xs[i - 3], xs[i - 2], xs[i - 1]
        bc = _unit(c - p)
        n = _unit(torch.cross(p - a, bc, dim=-1))
        m = torch.cross(n, bc, dim=-1)
        th, to = theta[:, i:i + 1], tau[:, i:i + 1]
        local = torch.cat([-torch.cos(th), torch.sin(th) * torch.cos(to), torch.sin(th) * torch.sin(to)], -1)
        xs.append(c + d[:, i:i + 1] * (local[:, :1] * bc + local[:, 1:2] * m + local[:, 2:] * n))
    return torch.stack(xs, 1)


def encode_internal(x: torch.Tensor) -> torch.Tensor:
    """``x [B, L, 3]`` Å → ``z [B, L, 5]``: (cos θ, sin θ, cos τ, sin τ, (d − 3.8 Å) / 0.1 Å),
    with undefined entries 0 (the first residues)."""
    d, theta, tau = internal_from_xyz(x.double())
    length = x.shape[1]
    has_t = (torch.arange(length, device=x.device) >= 2).to(torch.float64)
    has_tau = (torch.arange(length, device=x.device) >= 3).to(torch.float64)
    has_d = (torch.arange(length, device=x.device) >= 1).to(torch.float64)
    z = torch.stack([torch.cos(theta) * has_t, torch.sin(theta) * has_t, torch.cos(tau) * has_tau,
                     torch.sin(tau) * has_tau, (d - BOND) / BOND_SCALE * has_d], -1)
    return z.to(x.dtype)


def decode_internal(z: torch.Tensor) -> torch.Tensor:
    """``z [B, L, 5]`` → ``x [B, L, 3]`` Å with the first residue at the origin (the decoder does
    not know where padding starts, so it does not centre; every metric here is translation-free)."""
    zd = z.double()
    theta = torch.atan2(zd[..., 1], zd[..., 0])
    tau = torch.atan2(zd[..., 3], zd[..., 2])
    d = BOND + BOND_SCALE * zd[..., 4]
    return xyz_from_internal(d, theta, tau).to(z.dtype)


__all__ = ["BOND", "BOND_SCALE", "CHANNELS", "decode_internal", "encode_internal", "internal_from_xyz",
           "xyz_from_internal"]
