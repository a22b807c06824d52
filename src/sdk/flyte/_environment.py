"""``TaskEnvironment``: shared settings (image, resources, plugin) for the tasks defined with ``@env.task``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, overload

from ._config import (
    Cache,
    PodTemplate,
    Resources,
    RetryStrategy,
    ReusePolicy,
    Timeout,
    normalize_env_vars,
    normalize_secrets,
)
from ._registry import TaskPluginRegistry
from ._task import TaskSettings, TaskTemplate, make_template, normalize_settings, reuse_supported

_UNSET: Any = object()


class TaskEnvironment:
    """A named group of tasks sharing an image, resources, environment variables, secrets and a plugin config.

    ``plugin_config`` selects the task template through :class:`flyte.extend.TaskPluginRegistry`; an unregistered
    config type is an error here, at definition.
    """

    def __init__(
        self,
        name: str,
        depends_on: tuple[TaskEnvironment, ...] | list[TaskEnvironment] = (),
        pod_template: PodTemplate | str | None = None,
        description: str | None = None,
        secrets: Any = None,
        env_vars: dict[str, str] | None = None,
        resources: Resources | None = None,
        interruptible: bool = False,
        image: Any = "auto",
        include: tuple[str, ...] = (),
        service_account: str | None = None,
        cache: str | Cache = "disable",
        reusable: ReusePolicy | None = None,
        plugin_config: Any = None,
        queue: str | None = None,
    ) -> None:
        """Parameters in flyte-sdk 2.x's order. ``image`` is a name, a :class:`flyte.Image` or ``"auto"``; locally
        tasks run in this interpreter, and the Kubernetes tier runs them in that image. ``interruptible``,
        ``include``, ``service_account`` and ``queue`` apply to remote runs and are recorded here."""
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"TaskEnvironment.name: expected letters, digits, '_' or '-', got {name!r}")
        if image is not None and not isinstance(image, str) and type(image).__name__ != "Image":
            raise TypeError(f"TaskEnvironment.image: expected an image name, a flyte.Image or 'auto', got "
                            f"{type(image).__name__}")
        if resources is not None and not isinstance(resources, Resources):
            raise TypeError(f"TaskEnvironment.resources: expected flyte.Resources, got {type(resources).__name__}")
        if reusable is not None and not isinstance(reusable, ReusePolicy):
            raise TypeError(f"TaskEnvironment.reusable: expected flyte.ReusePolicy or None, got {type(reusable).__name__}")
        for dep in depends_on:
            if not isinstance(dep, TaskEnvironment):
                raise TypeError(f"TaskEnvironment.depends_on: expected TaskEnvironments, got {type(dep).__name__}")
        self.name = name
        self.image = image
        self.resources = resources
        self.env_vars = normalize_env_vars("TaskEnvironment.env_vars", env_vars) or {}
        self.secrets = normalize_secrets(secrets)
        self.cache = Cache.of(cache)
        self.reusable = reusable
        self.plugin_config = plugin_config
        self.depends_on = tuple(depends_on)
        self.description = description
        self.pod_template = pod_template
        self.interruptible = interruptible
        self.include = tuple(include)
        self.service_account = service_account
        self.queue = queue
        self.template_class: type[TaskTemplate[Any, Any]] = TaskPluginRegistry.template_for(plugin_config)
        if reusable is not None and plugin_config is not None and not reuse_supported(self.template_class):
            raise ValueError(
                f"TaskEnvironment {name!r}: plugin_config {type(plugin_config).__name__} cannot be used with "
                f"reusable=ReusePolicy(...): the {self.template_class.__name__} plugin does not support reuse; "
                "set reusable=None or use a plugin that declares supports_reuse"
            )
        self.tasks: dict[str, TaskTemplate[Any, Any]] = {}

    @overload
    def task(self, func: Callable[..., Any], /) -> TaskTemplate[Any, Any]: ...

    @overload
    def task(
        self,
        *,
        short_name: str | None = ...,
        cache: str | Cache | None = ...,
        retries: int | RetryStrategy = ...,
        timeout: int | float | timedelta | Timeout | None = ...,
        report: bool = ...,
        docs: str | None = ...,
        pod_template: PodTemplate | str | None = ...,
    ) -> Callable[[Callable[..., Any]], TaskTemplate[Any, Any]]: ...

    def task(self, func: Callable[..., Any] | None = None, /, *, short_name: str | None = None,  # type: ignore[misc]
             cache: str | Cache | None = None, retries: int | RetryStrategy = 0,
             timeout: int | float | timedelta | Timeout | None = 0, docs: Any = None,
             pod_template: PodTemplate | str | None = None, report: bool = False, interruptible: bool | None = None,
             max_inline_io_bytes: int = 10 * 1024 * 1024, queue: str | None = None,
             service_account: str | None = None, triggers: Any = (), links: Any = (), task_resolver: Any = None,
             entrypoint: bool = False, produces_artifacts: bool = False) -> Any:
        """Make a task of a sync or async function, bare (``@env.task``) or with settings (``@env.task(retries=3)``).
        The task's name is ``"<environment>.<function>"``. ``report=True`` gives the task an HTML report
        (:mod:`flyte.report`). The keywords after ``report`` are flyte-sdk's remote-only settings: accepted and
        ignored locally."""

        def decorate(fn: Callable[..., Any]) -> TaskTemplate[Any, Any]:
            if not callable(fn):
                raise TypeError(f"@{self.name}.task: expected a function, got {type(fn).__name__}")
            values = normalize_settings({
                "short_name": short_name or fn.__name__,
                "retries": retries,
                "timeout": timeout,
                "cache": cache if cache is not None else self.cache,
                "env_vars": dict(self.env_vars),
                "secrets": self.secrets,
            })
            settings = TaskSettings(
                **values,
                plugin_config=self.plugin_config,
                resources=self.resources,
                pod_template=pod_template if pod_template is not None else self.pod_template,
                reusable=self.reusable,
                report=report,
                docs=(docs if isinstance(docs, str) else getattr(docs, "description", None)) or fn.__doc__,
            )
            template = make_template(self.template_class, fn, environment=self, settings=settings)
            self.tasks[template.name] = template
            return template

        return decorate(func) if func is not None else decorate

    def __repr__(self) -> str:
        plugin = type(self.plugin_config).__name__ if self.plugin_config is not None else None
        return f"TaskEnvironment(name={self.name!r}, plugin_config={plugin}, tasks={len(self.tasks)})"
