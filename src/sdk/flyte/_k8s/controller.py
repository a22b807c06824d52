"""The remote controller: a run's calls become Kubernetes objects instead of running in this process.

Everything a call does around its body stays as it is locally (the local controller's path: inputs encoded, an
action, cache lookup, retries with backoff, per-attempt timeout and deadline, progress); only an attempt differs:
it is run by the run's :class:`~flyte._k8s.session.RemoteSession` as an object on the cluster. A pod running a
remote task has a remote controller too, so the task's nested calls (awaited, gathered, mapped, overridden) become
objects of their own, owned by that pod.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._controller import LocalController, time_limited
from .session import RemoteSession
from .settings import KubernetesSettings


class RemoteController(LocalController):
    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings
        self._lock = asyncio.Lock()

    async def session(self, run: Any) -> RemoteSession:
        session = run.scratch.get("k8s_session")
        if session is None:
            async with self._lock:
                session = run.scratch.get("k8s_session")
                if session is None:
                    session = await RemoteSession.open(self.settings, run)
                    run.scratch["k8s_session"] = session
                    run.closers.append(session.close)
        return session  # type: ignore[no-any-return]

    async def _attempt(self, task: Any, encoded: dict[str, bytes], run: Any, action: Any, parent: Any,
                       deadline_at: float | None = None) -> bytes:
        session = await self.session(run)
        return await time_limited(task, action, deadline_at, lambda: session.run_attempt(task, encoded, action))
