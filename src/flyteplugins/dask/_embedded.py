"""The embedded tier: a ``distributed.LocalCluster`` of worker processes on this machine, sized by the config.

Everything the cluster writes (worker spill space, the scheduler's scratch directory) goes to one temporary directory
that ``stop_embedded`` removes. Scheduler and dashboard listen on 127.0.0.1 at free ports, so consecutive or
concurrent runs never clash.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from typing import Any

from flyte.extend import run_blocking

from ._config import EmbeddedSpec
from ._engine import CLOSE_TIMEOUT_S, DEAD_CLOSE_TIMEOUT_S, DaskEngine, log

_WORKER_START_TIMEOUT_S = 120


async def start_embedded(spec: EmbeddedSpec) -> DaskEngine:
    # A cluster that comes up after its caller was cancelled (a timeout during the start) is closed again.
    return await run_blocking(_start_blocking, spec, discard=stop_embedded, name="flyte-dask-start")


def _workers_skip_the_main_script() -> None:
    """Worker processes must not run the user's script again.

    Dask starts workers with multiprocessing's spawn, which re-imports the parent's ``__main__`` in each child: a
    script without an ``if __name__ == "__main__":`` guard would start a run of its own in every worker. The workers
    never need it (functions from ``__main__`` reach them by value, through cloudpickle), so the main module is left
    out of the preparation data of the processes that Dask's process threads start; other spawns are untouched.
    Installed once per process."""
    from multiprocessing import spawn

    if getattr(spawn.get_preparation_data, "_flyte_dask", False):
        return
    original = spawn.get_preparation_data

    def get_preparation_data(name: str) -> dict[str, Any]:
        data = original(name)
        if threading.current_thread().name.startswith("AsyncProcess "):  # distributed.process.AsyncProcess
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    get_preparation_data._flyte_dask = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = get_preparation_data


def _start_blocking(spec: EmbeddedSpec) -> DaskEngine:
    from distributed import Client, LocalCluster

    _workers_skip_the_main_script()

    scratch = tempfile.mkdtemp(prefix="flyte-dask-")
    cluster = client = None
    try:
        cluster = LocalCluster(
            n_workers=spec.workers,
            threads_per_worker=spec.threads_per_worker,
            memory_limit=spec.memory_limit,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0" if spec.dashboard else None,
            local_directory=scratch,
            # Without it the scheduler makes <tmp>/dask-scratch-space and leaves it behind.
            scheduler_kwargs={"local_directory": scratch},
        )
        client = Client(cluster, set_as_default=False)
        client.wait_for_workers(spec.workers, timeout=_WORKER_START_TIMEOUT_S)
        pids = tuple(pid for pid in (worker.pid for worker in cluster.workers.values()) if pid)
        return DaskEngine(client=client, scheduler_address=cluster.scheduler_address,
                          dashboard_link=cluster.dashboard_link if spec.dashboard else None,
                          cluster=cluster, local_directory=scratch, worker_pids=pids)
    except BaseException:
        _close_quietly(client, cluster)
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def resizable(live: EmbeddedSpec, wanted: EmbeddedSpec) -> bool:
    """Only the number of workers differs: the live cluster is scaled instead of restarted."""
    return live._replace(workers=wanted.workers) == wanted


async def resize_embedded(engine: DaskEngine, spec: EmbeddedSpec) -> DaskEngine:
    return await run_blocking(_resize_blocking, engine, spec, name="flyte-dask-resize")


def _resize_blocking(engine: DaskEngine, spec: EmbeddedSpec) -> DaskEngine:
    """Scale the cluster to ``spec.workers`` and wait until exactly that many workers are up; on failure the whole
    cluster is stopped (the pool forgets it)."""
    import time

    try:
        engine.cluster.scale(spec.workers)
        deadline = time.monotonic() + _WORKER_START_TIMEOUT_S
        # wait_for_workers waits for at least n; a scale-down retires workers gracefully, which takes a moment.
        while len(engine.client.scheduler_info(n_workers=-1)["workers"]) != spec.workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Dask: the cluster did not reach {spec.workers} workers within "
                                   f"{_WORKER_START_TIMEOUT_S}s")
            time.sleep(0.02)
        engine.worker_pids = tuple(pid for pid in (w.pid for w in engine.cluster.workers.values()) if pid)
    except BaseException:
        stop_embedded(engine)
        raise
    return engine


def stop_embedded(engine: DaskEngine) -> None:
    """Close the task clients, the client and the cluster; kill any worker process that survived; remove scratch."""
    timeout = CLOSE_TIMEOUT_S if engine.is_alive() else DEAD_CLOSE_TIMEOUT_S
    try:
        engine.close_task_clients(timeout)
        _close_quietly(engine.client, engine.cluster, timeout)
    finally:
        _kill_survivors(engine.worker_pids)
        if engine.local_directory:
            shutil.rmtree(engine.local_directory, ignore_errors=True)


def _close_quietly(client: Any, cluster: Any, timeout: float = CLOSE_TIMEOUT_S) -> None:
    for closable in (client, cluster):
        if closable is None:
            continue
        try:
            closable.close(timeout=timeout)
        except Exception as exc:  # best effort; survivors are killed next
            (log.debug if timeout == DEAD_CLOSE_TIMEOUT_S else log.warning)("closing the Dask %s failed: %s", type(closable).__name__, exc)


def _kill_survivors(pids: tuple[int, ...]) -> None:
    """Kill worker processes that outlived a failed close. Only this process's own children are touched."""
    for pid in pids:
        if not _is_our_child(pid):
            continue  # gone (or reaped and the pid reused by someone else)
        log.warning("Dask worker process %d outlived its cluster; killing it", pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _is_our_child(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z" and int(fields[1]) == os.getpid()
    except (OSError, ValueError, IndexError):
        return False
