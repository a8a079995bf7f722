"""panflow's audio domain: log-mel spectrogram flow matching, Griffin-Lim inversion, offline metrics."""

__version__ = "0.1.0"
