"""The audio backbone: the core's UNet (:class:`panflow.UNet`) over log-mel ``[1, n_mels, frames]``.

``model(x [B, 1, M, F], t [B], cond) -> [B, 1, M, F]``; attention at levels whose smaller side is in
``attn_resolutions``.
"""

from __future__ import annotations

from panflow import DataSpec, UNet


def build_spec_unet(spec: DataSpec, channels: int = 32, mults: tuple[int, ...] | list[int] = (1, 2, 2),
                    num_res: int = 1, attn_resolutions: tuple[int, ...] | list[int] = (8,), heads: int = 4,
                    dropout: float = 0.0) -> UNet:
    c, h, w = spec.shape
    return UNet(c, (h, w), channels, tuple(mults), num_res, tuple(attn_resolutions), heads, dropout, spec.num_classes,
                conditions=spec.conditions)
