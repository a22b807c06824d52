"""Which task template runs a task, chosen by the type of its ``plugin_config``."""

from __future__ import annotations

from typing import Any

from .errors import PluginNotFoundError


class TaskPluginRegistry:
    """Maps plugin config types to task template classes. Plugins register at import of their ``task`` module."""

    _plugins: dict[type, type] = {}

    @classmethod
    def register(cls, config_type: type, plugin: type) -> None:
        """Run tasks whose ``plugin_config`` is a ``config_type`` (or a subclass) with the template ``plugin``."""
        from ._task import TaskTemplate

        if not isinstance(config_type, type):
            raise TypeError(f"TaskPluginRegistry.register: config_type must be a class, got {config_type!r}")
        if not (isinstance(plugin, type) and issubclass(plugin, TaskTemplate)):
            raise TypeError(f"TaskPluginRegistry.register: plugin must subclass flyte.extend.TaskTemplate, got {plugin!r}")
        cls._plugins[config_type] = plugin

    @classmethod
    def find(cls, config_type: type) -> type | None:
        """The template registered for ``config_type`` or its nearest base class (walking the MRO), or None."""
        for klass in config_type.__mro__:
            plugin = cls._plugins.get(klass)
            if plugin is not None:
                return plugin
        return None

    @classmethod
    def registered(cls) -> list[str]:
        return sorted(f"{t.__module__}.{t.__qualname__}" for t in cls._plugins)

    @classmethod
    def template_for(cls, plugin_config: Any) -> type:
        """The template class for a task with this ``plugin_config`` (the plain function template for None)."""
        from ._task import AsyncFunctionTaskTemplate

        if plugin_config is None:
            return AsyncFunctionTaskTemplate
        plugin = cls.find(type(plugin_config))
        if plugin is None:
            kind = type(plugin_config)
            registered = ", ".join(cls.registered()) or "none"
            raise PluginNotFoundError(
                f"plugin_config: no task plugin is registered for {kind.__module__}.{kind.__qualname__}; "
                f"registered config types: {registered}. Import the plugin's task module "
                "(e.g. flyteplugins.spark.task) or register one with flyte.extend.TaskPluginRegistry.register()"
            )
        return plugin
