"""The Kubernetes tier's public functions.

Remote runs themselves need no call here: configure the cluster with ``flyte.init(kubernetes={...})`` or the
config file's ``kubernetes`` section, then ``flyte.with_runcontext(mode="remote").run(task, ...)`` (or
``flyte run --remote``). This module adds what has no flyte-sdk counterpart:

- :func:`dry_run`: the manifests a remote run of ``task`` would create for its root call, as dicts or YAML;
- :func:`gc`: delete the objects left on the cluster by runs that no longer exist.
"""

from __future__ import annotations

from typing import Any

from ._k8s.settings import KubernetesSettings

__all__ = ["KubernetesSettings", "dry_run", "dry_run_yaml", "gc"]


def dry_run(task: Any, /, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The manifests (main object first) a remote run of ``task(*args, **kwargs)`` would create for its root call.
    Needs neither a cluster nor a config file (placeholders stand in for unset storage)."""
    from ._k8s.dryrun import manifests

    return manifests(task, *args, **kwargs)[0]


def dry_run_yaml(task: Any, /, *args: Any, **kwargs: Any) -> str:
    """:func:`dry_run` as multi-document YAML."""
    from ._k8s.dryrun import manifests, to_yaml

    return to_yaml(*manifests(task, *args, **kwargs))


def gc(*, dry_run: bool = False) -> list[str]:
    """Delete the objects (in the configured namespace) of runs that no longer exist: those whose root call's
    object is gone or finished. Returns ``kind/name`` of what was (or, with ``dry_run``, would be) deleted."""
    from ._k8s.gc import collect
    from ._runner import call_sync

    return call_sync(collect, dry_run)
