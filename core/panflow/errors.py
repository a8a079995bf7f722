"""Errors raised by panflow, each meant to be read by a person."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PanflowError(Exception):
    """Base class: a clear, one-line problem with the user's input or state."""


class UnknownNameError(PanflowError, KeyError):
    """A name (domain, dataset, solver, config key, ...) that does not exist."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name = kind, name
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        listing = ", ".join(known) if known else "(none registered)"
        self.message = f"unknown {kind} '{name}'.{hint} Known: {listing}."
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ContractError(PanflowError):
    """A checkpoint or component whose contract cannot be honoured."""


class CheckpointError(PanflowError):
    """A missing, truncated or corrupted checkpoint."""


class ConfigError(PanflowError):
    """An invalid configuration key or value."""


class DataError(PanflowError):
    """Unreadable, empty or inconsistent input data."""


class NonFiniteError(PanflowError):
    """A NaN or infinity where a finite value is required."""


def check_finite(x, what: str) -> None:
    """Raise NonFiniteError if tensor ``x`` holds a NaN or an infinity."""
    import torch

    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(f"{what} has {bad} non-finite value(s) (NaN or inf)")



class DistributedError(PanflowError):
    """A collective that failed or timed out: a peer rank died, stopped or never arrived."""
