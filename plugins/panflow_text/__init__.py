"""panflow's text domain: masked (absorbing-state) diffusion on tokens, with an autoregressive baseline."""

__version__ = "0.1.0"
