"""panflow's 2-D reference domain: toy densities with known ground truth, for testing the engine."""

__version__ = "0.1.0"
