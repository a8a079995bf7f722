"""Plugin discovery through entry points, with a status per plugin that never crashes the host.

Each plugin ends ``loaded``, ``unavailable`` (an optional dependency is missing; the message
names the ``pip install`` that fixes it) or ``error`` (traceback kept). Set
``PANFLOW_STRICT_PLUGINS=1`` to re-raise instead.

A plugin object may declare:
- ``PANFLOW_HOOK_API`` (int): the hook API version it was built for;
- ``REQUIRES`` (dict): importable module name -> pip requirement hint, checked with
  ``importlib.util.find_spec`` so heavy libraries are never imported just to list plugins.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import os
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from .hooks import ENTRY_POINT_GROUP, HOOK_API_VERSION, PROJECT, PanflowHookSpec
from .registry import Registry


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str
    version: str
    status: str  # loaded | unavailable | error
    message: str = ""
    traceback: str = ""
    enable: str = ""  # how to enable it when unavailable
    contributes: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in
                ("name", "module", "distribution", "version", "status", "message", "enable",
                 "contributes", "traceback")}


class PluginUnavailable(Exception):
    """Raised by a plugin object (or found by discovery) when an optional dependency is missing."""

    def __init__(self, message: str, enable: str = ""):
        super().__init__(message)
        self.enable = enable


def _strict() -> bool:
    return os.environ.get("PANFLOW_STRICT_PLUGINS", "") not in ("", "0", "false", "False")


def _install_hint(dist: str, extra: str | None) -> str:
    if dist == "panflow" and extra:
        return f'pip install "panflow[{extra}]"'
    return f"pip install {dist}" if dist else ""


def _check_requires(obj: Any, dist: str) -> None:
    requires: dict[str, str] = getattr(obj, "REQUIRES", {}) or {}
    missing = [m for m in requires if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        extras = sorted({requires[m] for m in missing})
        hint = _install_hint(dist, extras[0]) if len(extras) == 1 else f"pip install {' '.join(extras)}"
        raise PluginUnavailable(f"missing module(s): {', '.join(missing)}", enable=hint)


def _entry_points() -> list[md.EntryPoint]:
    return sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


class PluginManager:
    """Discovers plugins and fills a :class:`Registry`; see :func:`load_plugins`."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(PanflowHookSpec)
        self.registry = Registry()
        from .assembly import register_core

        register_core(self.registry)
        self.plugins: dict[str, PluginInfo] = {}

    def load_entry_points(self) -> None:
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist is not None else ""
            version = ep.dist.version if ep.dist is not None else ""
            self.load_one(ep.name, ep.value, dist, version, loader=ep.load)

    def load_object(self, name: str, obj: Any, dist: str = "", version: str = "") -> PluginInfo:
        """Register a plugin object directly (used by tests and the conformance kit)."""
        return self.load_one(name, f"{type(obj).__module__}", dist, version, loader=lambda: obj)

    def load_one(self, name: str, value: str, dist: str, version: str, loader) -> PluginInfo:
        info = PluginInfo(name=name, module=value, distribution=dist, version=version,
                          status="error")
        self.plugins[name] = info
        try:
            obj = loader()
            api = int(getattr(obj, "PANFLOW_HOOK_API", HOOK_API_VERSION))
            if api > HOOK_API_VERSION:
                raise RuntimeError(
                    f"plugin '{name}' was built for panflow hook API {api}, but this panflow "
                    f"supports API {HOOK_API_VERSION}: upgrade panflow (pip install -U panflow)")
            _check_requires(obj, dist)
            version = str(getattr(obj, "__version__", "") or version)
            info.version = version
            self.pm.register(obj, name=name)
            try:
                for impl in self.pm.hook.panflow_register.get_hookimpls():
                    if impl.plugin_name == name:
                        impl.function(registry=self.registry.scoped(name))
            except BaseException:
                self.pm.unregister(name=name)
                self.registry.remove_plugin(name)
                raise
        except PluginUnavailable as exc:
            info.status, info.message, info.enable = "unavailable", str(exc), exc.enable
            if _strict():
                raise
        except ModuleNotFoundError as exc:
            missing = exc.name or str(exc)
            own = value.split(":")[0].split(".")[0]
            if missing.split(".")[0] == own:
                info.status, info.message = "error", f"{type(exc).__name__}: {exc}"
                info.traceback = traceback.format_exc()
            else:
                info.status = "unavailable"
                info.message = f"missing module: {missing}"
                info.enable = _install_hint(dist, name if dist == "panflow" else None)
            if _strict():
                raise
        except Exception as exc:  # noqa: BLE001 - discovery must never crash the host
            info.status, info.message = "error", f"{type(exc).__name__}: {exc}"
            info.traceback = traceback.format_exc()
            if _strict():
                raise
        else:
            info.status = "loaded"
        info.contributes = self.registry.contributed_by(name)
        return info


_MANAGER: PluginManager | None = None


def load_plugins(refresh: bool = False) -> PluginManager:
    """The process-wide plugin manager, discovering entry points on first use."""
    global _MANAGER
    if _MANAGER is None or refresh:
        mgr = PluginManager()
        mgr.load_entry_points()
        _MANAGER = mgr
    return _MANAGER


def get_registry(refresh: bool = False) -> Registry:
    """The registry filled by every installed plugin."""
    return load_plugins(refresh).registry
