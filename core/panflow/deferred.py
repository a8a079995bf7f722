"""Deferred imports for plugin registration: name a callable now, import its module on first call."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class Lazy:
    """A callable standing in for ``"package.module:attr"``, imported when first called.

    Plugins register components with ``lazy("my_plugin.data:load")`` so that listing plugins never
    imports their heavy domain libraries.
    """

    def __init__(self, target: str):
        if ":" not in target:
            raise ValueError(f"lazy target must look like 'package.module:attr', got {target!r}")
        self.target = target
        self._fn: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        if self._fn is None:
            module, attr = self.target.split(":")
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self._fn = obj
        return self._fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> Lazy:
    return Lazy(target)
