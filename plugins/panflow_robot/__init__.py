"""panflow's robot domain: observation-conditioned flow policies over action chunks (Diffusion Policy recipe)."""

__version__ = "0.1.0"

from . import known as _known  # noqa: E402,F401 - registers the "committed" known sampler on import
