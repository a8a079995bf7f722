"""The plugin hook specification (pluggy).

A plugin is any object, named by an entry point in the group ``panflow.plugins``, that carries
hook implementations marked with :data:`hookimpl`. ``HOOK_API_VERSION`` is bumped whenever a hook
signature changes; a plugin declares the version it was built for in ``PANFLOW_HOOK_API``.
"""

from __future__ import annotations

import pluggy

PROJECT = "panflow"
ENTRY_POINT_GROUP = "panflow.plugins"
HOOK_API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class PanflowHookSpec:
    """Hooks a plugin may implement."""

    @hookspec
    def panflow_register(self, registry) -> None:  # pragma: no cover - specification only
        """Add the plugin's components (domains, datasets, backbones, metrics, benchmarks).

        ``registry`` is a :class:`panflow.Registry` scoped to the calling plugin: every
        component added through it records the plugin's name.
        """
