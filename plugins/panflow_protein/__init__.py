"""panflow protein domain: Cα backbones, conformational ensembles and motif scaffolds (biotite)."""

__version__ = "0.1.0"
