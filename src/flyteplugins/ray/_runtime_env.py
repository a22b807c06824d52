"""The job's runtime environment: the user's ``runtime_env`` plus the run's code bundle.

The bundle reaches Ray's workers as the ``working_dir`` (Ray uploads it through the cluster and unpacks it for each
worker), unless the user set a ``working_dir`` of their own. One exception keeps the local instance as quick as a
plain ``ray.init()``: when the job has no runtime environment at all, the workers share this machine's files, so the
bundle directory is put on their import path instead; any runtime environment costs seconds of setup per worker.
"""

from __future__ import annotations

import json
from typing import Any

from flyte.extend import CodeBundle


def job_runtime_env(user_env: dict[str, Any] | None, bundle: CodeBundle | None, *,
                    local: bool) -> tuple[str, tuple[str, ...]]:
    """``(runtime_env as sorted JSON, directories for the workers' import path)``."""
    env = dict(user_env or {})
    code_paths: tuple[str, ...] = ()
    if bundle:
        if local and not env:
            code_paths = (str(bundle.directory),)
        elif "working_dir" not in env:
            env["working_dir"] = str(bundle.directory)
        elif local:
            code_paths = (str(bundle.directory),)
    return json.dumps(env or None, sort_keys=True), code_paths
