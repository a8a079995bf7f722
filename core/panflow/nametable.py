"""One name → component table for the kinds of thing the core lets a plugin add by name (solvers,
known samplers, inpainting methods, couplings): a clash is an error, an unknown name suggests the
closest. A ``dict`` underneath, so lookups, membership and listing read as usual."""

from __future__ import annotations

from typing import Any, TypeVar

from .errors import ConfigError, PanflowError, UnknownNameError

T = TypeVar("T")


class NameTable(dict):
    """``what`` names the kind in messages; ``clash`` is the error type of a second registration."""

    def __init__(self, what: str, items: dict[str, Any], clash: type[PanflowError] = ConfigError):
        super().__init__(items)
        self.what, self.clash = what, clash

    def add(self, name: str, item: T) -> T:
        """Register ``item`` under ``name``; the same item twice is a no-op, another one an error."""
        if name in self and self[name] is not item:
            raise self.clash(f"{self.what} '{name}' is already registered")
        self[name] = item
        return item

    def lookup(self, name: str, kind: str | None = None) -> Any:
        """The item named ``name``, or :class:`UnknownNameError` listing the known names."""
        if name not in self:
            raise UnknownNameError(kind or self.what, name, self)
        return self[name]


__all__ = ["NameTable"]
