"""Pixel and latent encoders for images (raw space: ``[N, C, H, W]`` in [0, 1]).

``PixelEncoder`` maps to [−1, 1]. ``LatentEncoder`` trains a small convolutional autoencoder on
the training images (``fit``) and flows in its latent space ``[N, z, H/2, W/2]``, scaled to unit
variance (latent diffusion, Rombach et al. 2022).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from panflow import ConfigError, DataSpec, Encoder, Samples


class PixelEncoder(Encoder):
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return ((z + 1) / 2).clamp(0, 1)

    def config(self) -> dict[str, Any]:
        return {"type": "pixel"}


class ConvAutoencoder(nn.Module):
    """``[B, C, H, W]`` in [−1, 1] ↔ latents ``[B, z, H/2, W/2]``."""

    def __init__(self, channels: int, latent_channels: int = 4, width: int = 64):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(width, width, 4, stride=2, padding=1), nn.SiLU(),
                                 nn.Conv2d(width, latent_channels, 3, padding=1))
        self.dec = nn.Sequential(nn.Conv2d(latent_channels, width, 3, padding=1), nn.SiLU(),
                                 nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.SiLU(),
                                 nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())


class LatentEncoder(Encoder):
    def __init__(self, channels: int = 1, latent_channels: int = 4, width: int = 64, steps: int = 2000,
                 lr: float = 2e-3, batch_size: int = 128, seed: int = 0, scale: float = 1.0):
        self.channels, self.latent_channels, self.width = channels, latent_channels, width
        self.steps, self.lr, self.batch_size, self.seed, self.scale = steps, lr, batch_size, seed, scale
        self.net = ConvAutoencoder(channels, latent_channels, width)
        self.fitted = False

    def fit(self, train: Samples) -> None:
        x = train.x * 2 - 1
        if x.shape[1] != self.channels:
            self.channels = x.shape[1]
            self.net = ConvAutoencoder(self.channels, self.latent_channels, self.width)
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ConfigError(f"latent encoding halves the resolution; {tuple(x.shape[-2:])} is not even")
        torch.manual_seed(self.seed)
        self.net = ConvAutoencoder(self.channels, self.latent_channels, self.width)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        g = torch.Generator().manual_seed(self.seed)
        for _ in range(self.steps):
            b = x[torch.randint(0, x.shape[0], (self.batch_size,), generator=g)]
            z = self.net.enc(b)
            loss = (self.net.dec(z) - b).pow(2).mean() + 1e-4 * z.pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            self.scale = float(self.net.enc(x[:2048]).std())
        self.fitted = True

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.to(x.device).enc(x * 2 - 1) / self.scale

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return ((self.net.to(z.device).dec(z * self.scale) + 1) / 2).clamp(0, 1)

    def model_spec(self, raw: DataSpec) -> DataSpec:
        c, h, w = raw.shape
        return DataSpec("continuous", (self.latent_channels, h // 2, w // 2), num_classes=raw.num_classes)

    def config(self) -> dict[str, Any]:
        return {"type": "latent", "channels": self.channels, "latent_channels": self.latent_channels,
                "width": self.width, "steps": self.steps, "lr": self.lr, "batch_size": self.batch_size,
                "seed": self.seed, "scale": self.scale}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}


def make_encoder(options: dict[str, Any]) -> Encoder:
    """``{"latent": true, "latent_channels": 4, "steps": 2000, ...}`` or ``{}`` for pixels."""
    opts = dict(options)
    if not opts.pop("latent", False):
        if opts:
            raise ConfigError(f"unknown image encoder option(s) {sorted(opts)} (pixel encoder takes none; "
                              "set encoder.options.latent=true for the latent autoencoder)")
        return PixelEncoder()
    allowed = {"latent_channels", "width", "steps", "lr", "batch_size", "seed"}
    bad = set(opts) - allowed
    if bad:
        raise ConfigError(f"unknown latent encoder option(s) {sorted(bad)}; known: {sorted(allowed)}")
    return LatentEncoder(**opts)


def load_encoder(config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Encoder:
    if config.get("type") == "pixel":
        return PixelEncoder()
    if config.get("type") != "latent":
        raise ConfigError(f"unknown image encoder type {config.get('type')!r} in the checkpoint")
    enc = LatentEncoder(**{k: v for k, v in config.items() if k != "type"})
    enc.net.load_state_dict(tensors)
    enc.fitted = True
    return enc
