"""The task process's side of an embedded job: the replica processes, how the job ends, and stopping them all.

Each replica is ``python -m flyteplugins.tensorflow._replica`` (our runtime, ``flyte.runtime``, running the task) in
a session of its own: a terminal's Ctrl-C reaches the task process only, which stops the replicas by process group,
and they die with it if it is killed. The job ends as the training operator ends a TFJob: when the primary replica
(chief, else worker 0) succeeds, or as soon as any replica fails.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio

from flyteplugins.kubeflow.local import poll_until
from flyteplugins.kubeflow.procfs import live_group_members

from ._cluster import Replica
from ._errors import Ended

JOB_ENV = "FLYTE_TENSORFLOW_JOB"  # on every replica (inherited by its children): finds strays by job
_POLL_MIN, _POLL_MAX = 0.01, 0.1

_live: set[ReplicaProcess] = set()
_live_lock = threading.Lock()


class ReplicaProcess:
    """One replica, leader of its own process group (which holds whatever it starts)."""

    def __init__(self, replica: Replica, popen: subprocess.Popen[bytes], error_document: str) -> None:
        self.replica = replica
        self.popen = popen
        self.pid = popen.pid
        self.error_document = error_document
        with _live_lock:
            _live.add(self)

    @classmethod
    def start(cls, replica: Replica, args: list[str], env: Mapping[str, str], error_document: str) -> ReplicaProcess:
        command = [sys.executable, "-m", "flyteplugins.tensorflow._replica", *args]
        popen = subprocess.Popen(command, env=dict(env), start_new_session=True, stdin=subprocess.DEVNULL)
        return cls(replica, popen, error_document)

    def returncode(self) -> int | None:
        return self.popen.poll()

    def ended(self) -> Ended:
        code = self.popen.returncode
        assert code is not None
        document = self.error_document if os.path.exists(self.error_document) else None
        return Ended(self.replica, self.pid, code, document)

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def gone(self) -> bool:
        return self.popen.poll() is not None and not _group_alive(self.pid)

    def forget(self) -> None:
        with _live_lock:
            _live.discard(self)


@dataclass
class Outcome:
    """How a job ended: the primary succeeded, or these replicas failed (in the order they were seen)."""

    succeeded: bool
    failures: list[Ended] = field(default_factory=list)


async def supervise(processes: Mapping[Replica, ReplicaProcess], primary: Replica, serving: set[Replica], *,
                    deadline: float | None, peer_grace: float) -> Outcome:
    """Wait, without blocking the loop, until the primary succeeds or a replica fails. After a success the serving
    replicas (parameter servers) are stopped at once and the others get ``peer_grace`` seconds to finish their
    own work (a worker writing its checkpoint); after a failure the caller stops everything. ``deadline``
    (monotonic) bounds the wait: past it ``TimeoutError`` is raised."""
    delay = _POLL_MIN
    while True:
        codes = {replica: process.returncode() for replica, process in processes.items()}
        if codes[primary] == 0:
            break
        failed = [processes[replica].ended() for replica, code in codes.items() if code not in (None, 0)]
        if failed:
            return Outcome(False, failed)
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("deadline reached")
        await anyio.sleep(delay)
        delay = min(delay * 1.5, _POLL_MAX)
    for replica in serving:
        processes[replica].signal_group(signal.SIGTERM)
    peers = [p for r, p in processes.items() if r not in serving and r != primary]
    await poll_until(lambda: all(p.returncode() is not None for p in peers), peer_grace, 0.02)
    return Outcome(True)


async def stop_all(processes: list[ReplicaProcess], grace: float = 3.0) -> None:
    """SIGTERM every replica's group, SIGKILL what is left after ``grace`` seconds, and wait until all are gone, so
    that nothing outlives the call. Idempotent."""
    running = [p for p in processes if p.returncode() is None]
    for process in running:
        process.signal_group(signal.SIGTERM)
    await poll_until(lambda: all(p.returncode() is not None for p in running), grace, 0.02)
    for process in processes:
        process.signal_group(signal.SIGKILL)  # the group may hold children of a replica that exited
    await poll_until(lambda: all(p.gone() for p in processes), 5.0, 0.02)
    for process in processes:
        process.forget()


def _group_alive(pgid: int) -> bool:
    if os.path.isdir("/proc"):
        return bool(live_group_members(pgid))  # zombies left to their new parent do not count
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@atexit.register
def _kill_all_at_exit() -> None:
    with _live_lock:
        processes = list(_live)
        _live.clear()
    for process in processes:
        process.signal_group(signal.SIGKILL)
    for process in processes:
        try:
            process.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
