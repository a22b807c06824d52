"""How the user's own Ray calls behave while the plugin holds Ray in this process.

``ray.init()`` in a task body connects to the task's cluster.
Code written for Ray calls ``ray.init()`` first (the seeds do: "Connects to the provisioned Ray cluster"), but the
plugin has already connected this process, and a second ``ray.init`` raises "Maybe you called ray.init twice by
accident?". While the plugin holds Ray, ``ray.init`` is replaced by a function that returns the live connection's
context; arguments that ask for another cluster or other resources are ignored with a warning, since the task's
cluster is given by its ``RayJobConfig``. The original comes back when the plugin lets Ray go.

Ray's auto-connect (the first ``f.remote()`` without ``ray.init`` starts a local instance) is off meanwhile: after a
body's own ``ray.shutdown()``, or in a body still running when its run stopped Ray, a Ray call raises instead of
starting an instance nobody manages; the next Ray task gets a fresh instance from the plugin.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("flyteplugins.ray")

_lock = threading.Lock()
_original: Any = None
# Arguments that only say how to connect or log; anything else would mean another cluster or other resources.
_HARMLESS = frozenset({"ignore_reinit_error", "log_to_driver", "logging_level", "configure_logging", "namespace"})


def _init_inside_task(*args: Any, **kwargs: Any) -> Any:
    import ray

    if not ray.is_initialized():  # the plugin's instance is gone (or never came): plain Ray behaviour
        return _original(*args, **kwargs)
    ignored = [name for name in kwargs if name not in _HARMLESS and kwargs[name] is not None]
    if args or ignored:
        log.warning("ray.init(%s) inside a Ray task: using the task's cluster (set it with RayJobConfig); "
                    "arguments ignored: %s", ", ".join(map(repr, args)), ", ".join(["address"] * bool(args) + ignored))
    return _original(ignore_reinit_error=True)


def adopt() -> None:
    """Route ``ray.init`` to the live connection (idempotent)."""
    global _original
    import ray

    with _lock:
        if _original is None:
            _original = ray.init
            ray.init = _init_inside_task
            _set_auto_connect(False)


def release() -> None:
    global _original
    import ray

    with _lock:
        if _original is not None:
            ray.init = _original
            _original = None
            _set_auto_connect(True)


def _set_auto_connect(enabled: bool) -> None:
    import os

    from ray._private import auto_init_hook

    auto_init_hook.enable_auto_connect = enabled and os.environ.get("RAY_ENABLE_AUTO_CONNECT", "") != "0"
