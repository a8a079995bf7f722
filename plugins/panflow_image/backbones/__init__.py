"""Image backbones: an ADM-style UNet and a DiT (patch transformer with adaLN conditioning)."""
