"""panflow's image domain: pixel and latent flow matching, UNet and DiT backbones, offline metrics."""

__version__ = "0.1.0"
