"""``flyte run --dry-run``: the objects a remote run of a task would create for its root call, without a cluster.

Nothing is uploaded or created. The URIs are those the run would use (the code bundle's and the pickled task's are
content-derived, so they are the real ones); with no ``kubernetes`` settings configured, placeholders stand in for
the storage and namespace, and the output says so.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import cloudpickle

from .._staging import bundle_location, task_location
from .names import label_value
from .resources import resource_for
from .session import build_call
from .settings import KubernetesSettings, current

PLACEHOLDER_STORAGE = "s3://my-bucket/flyte"


def manifests(task: Any, *args: Any, run_name: str = "dry-run", **kwargs: Any) -> tuple[list[dict[str, Any]], bool]:
    """(the root call's manifests, whether the settings were configured)."""
    from .._bundle import build_bundle
    from .._run import Action

    settings = current()
    configured = settings is not None and bool(settings.storage)
    if settings is None:
        settings = KubernetesSettings(storage=PLACEHOLDER_STORAGE)
    elif not settings.storage:
        settings = KubernetesSettings(**{**_fields(settings), "storage": PLACEHOLDER_STORAGE})
    task.interface.bind(args, kwargs)  # the arguments are checked as a run would check them
    run_prefix = f"{settings.storage_uri}/runs/{run_name}"
    bundle = build_bundle()
    bundle_uri = bundle_location(settings.storage_uri, bundle.digest) if bundle else None
    task_uri = task_location(run_prefix, cloudpickle.dumps(task))
    run = SimpleNamespace(name=label_value(run_name), raw_data_path=f"{run_prefix}/data",
                          options=SimpleNamespace(env_vars={}))
    action = Action("a1", task.name, None)
    resource = resource_for(task, settings)
    call, _ = build_call(settings, run, task, action, 1, resource, task_uri=task_uri, bundle_uri=bundle_uri,
                         owner_references=[], root=True, run_prefix=run_prefix)
    return [resource.build(call)], configured


def to_yaml(documents: list[dict[str, Any]], configured: bool = True) -> str:
    import yaml

    head = "" if configured else (f"# No kubernetes settings configured: storage {PLACEHOLDER_STORAGE} and namespace "
                                  "'default' are placeholders.\n")
    return head + yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)


def _fields(settings: KubernetesSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__struct_fields__}
