"""The registry: every component that plugins contributed, by kind and name."""

from __future__ import annotations

from typing import Any

from .components import Backbone, Benchmark, Dataset, Domain, Metric, Objective
from .errors import PanflowError, UnknownNameError

KINDS = ("domain", "dataset", "backbone", "metric", "benchmark", "objective")
_TYPES = {"domain": Domain, "dataset": Dataset, "backbone": Backbone, "metric": Metric,
          "benchmark": Benchmark, "objective": Objective}


class DuplicateComponentError(PanflowError):
    """Two plugins (or one plugin twice) registered the same component name."""


class Registry:
    """Named components by kind. Use :meth:`scoped` to register on behalf of a plugin."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {k: {} for k in KINDS}

    # -- registering -------------------------------------------------------------------
    def add(self, kind: str, component: Any, plugin: str = "") -> Any:
        if kind not in KINDS:
            raise UnknownNameError("component kind", kind, KINDS)
        if not isinstance(component, _TYPES[kind]):
            raise TypeError(f"a {kind} must be a panflow.{_TYPES[kind].__name__}, "
                            f"got {type(component).__name__}")
        if plugin:
            component.plugin = plugin
        table = self._items[kind]
        name = component.name
        if name in table:
            other = table[name].plugin or "<unknown>"
            raise DuplicateComponentError(
                f"{kind} '{name}' is registered twice: by plugin '{other}' and by plugin "
                f"'{component.plugin or '<unknown>'}'; rename one of them")
        table[name] = component
        return component

    def remove_plugin(self, plugin: str) -> None:
        """Drop everything ``plugin`` registered (used when its registration fails midway)."""
        for table in self._items.values():
            for name in [n for n, c in table.items() if c.plugin == plugin]:
                del table[name]

    def scoped(self, plugin: str) -> PluginRegistry:
        return PluginRegistry(self, plugin)

    # -- looking up --------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Any:
        table = self._items[kind]
        if name not in table:
            raise UnknownNameError(kind, name, table)
        return table[name]

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def all(self, kind: str) -> list[Any]:
        return [self._items[kind][n] for n in self.names(kind)]

    def domain(self, name: str) -> Domain:
        return self.get("domain", name)

    def dataset(self, name: str, domain: str | None = None) -> Dataset:
        ds = self.get("dataset", name)
        if domain is not None and ds.domain != domain:
            own = [d.name for d in self.all("dataset") if d.domain == domain]
            raise UnknownNameError(f"dataset of domain '{domain}'", name, own)
        return ds

    def backbone(self, name: str) -> Backbone:
        return self.get("backbone", name)

    def metric(self, name: str) -> Metric:
        return self.get("metric", name)

    def benchmark(self, name: str) -> Benchmark:
        return self.get("benchmark", name)

    def objective(self, name: str) -> Objective:
        return self.get("objective", name)

    def contributed_by(self, plugin: str) -> dict[str, list[str]]:
        return {k: sorted(n for n, c in t.items() if c.plugin == plugin)
                for k, t in self._items.items()}


class PluginRegistry:
    """The registry as one plugin sees it: everything it adds is stamped with its name."""

    def __init__(self, registry: Registry, plugin: str):
        self._registry = registry
        self.plugin = plugin

    def add_domain(self, domain: Domain) -> Domain:
        return self._registry.add("domain", domain, self.plugin)

    def add_dataset(self, dataset: Dataset) -> Dataset:
        return self._registry.add("dataset", dataset, self.plugin)

    def add_backbone(self, backbone: Backbone) -> Backbone:
        return self._registry.add("backbone", backbone, self.plugin)

    def add_metric(self, metric: Metric) -> Metric:
        return self._registry.add("metric", metric, self.plugin)

    def add_benchmark(self, benchmark: Benchmark) -> Benchmark:
        return self._registry.add("benchmark", benchmark, self.plugin)

    def add_objective(self, objective: Objective) -> Objective:
        return self._registry.add("objective", objective, self.plugin)

    def objective(self, name: str) -> Objective:
        """Look up an objective already registered (e.g. the core's ``flow``, to wrap it)."""
        return self._registry.objective(name)
