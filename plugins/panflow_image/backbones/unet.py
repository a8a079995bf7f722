"""The image plugin's ``unet`` backbone: the core's ADM-style UNet (:class:`panflow.UNet`) built
for an image spec ``[C, H, W]``.

``model(x [B, C, H, W], t [B], cond) -> [B, C, H, W]``.
"""

from __future__ import annotations

from panflow import DataSpec, UNet


def build_unet(spec: DataSpec, channels: int = 64, mults: tuple[int, ...] | list[int] = (1, 2), num_res: int = 2,
               attn_resolutions: tuple[int, ...] | list[int] = (4,), heads: int = 4, dropout: float = 0.1) -> UNet:
    c, h, w = spec.shape
    return UNet(c, (h, w), channels, tuple(mults), num_res, tuple(attn_resolutions), heads, dropout, spec.num_classes,
                conditions=spec.conditions)
