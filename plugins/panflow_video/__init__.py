"""panflow's video domain: clips ``[T, C, H, W]`` denoised as one spatio-temporal block (PyAV for containers)."""

__version__ = "0.1.0"
