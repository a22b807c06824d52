"""What every Slurm call does around its job: the run's connection and directory on the cluster, the attempt's
own directory, submitting and following the job, and cancelling it when the call is cut short."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flyte.extend import current_context

from ._connection import ClusterLink, pool_for
from ._job import SlurmJob, progress_sink
from ._remote import RemoteDir, RunSpace, attempt_space, run_space
from ._states import JobStatus

log = logging.getLogger("flyteplugins.slurm")


@dataclass
class Attempt:
    """One attempt of a call: where it runs and what it may use on the cluster."""

    run: Any
    action: Any
    task_name: str
    link: ClusterLink
    space: RunSpace
    directory: RemoteDir

    @property
    def where(self) -> str:
        return f"{self.task_name} (action {self.action.name})"

    async def run_job(self, script: str, options: dict[str, str | None], args: tuple[str, ...] = (),
                      cwd: str | None = None,
                      finished_hint: Callable[[], Awaitable[bool]] | None = None) -> tuple[SlurmJob, JobStatus]:
        """Submit ``script`` and follow its job to the end; a call cut short cancels the job and waits for it."""
        prefix = f"[{self.action.name} {self.task_name}]"
        job = await SlurmJob.submit(self.link, script, options, args, cwd, self.where,
                                    progress_sink(self.run, prefix))
        self.action.links["Slurm job"] = f"{job.job_id} on {self.link.ssh.host}"
        try:
            status = await job.follow(finished_hint)
        except BaseException as stopped:
            try:
                await job.cancel()
            except Exception as exc:  # noqa: BLE001 - the reason the call stopped is the error to report
                log.warning("%s: cancelling Slurm job %s failed: %s", self.where, job.job_id, exc)
                stopped.add_note(f"Slurm job {job.job_id} on {self.link.ssh.host} could not be cancelled ({exc}); it "
                                 f"may still run: `scancel {job.job_id}` there")
            raise
        return job, status


@contextlib.asynccontextmanager
async def attempt(config: Any) -> AsyncIterator[Attempt]:
    """The current call's attempt on the cluster of ``config`` (its directory removed at the end unless kept)."""
    context = current_context.get()
    if context is None:
        raise RuntimeError("a Slurm task runs inside a run: call it from flyte.run(...) or from another task")
    run = context.run
    link = pool_for(run).link(config.ssh_config)
    space = await run_space(run, link, config.remote_dir, config.keep_remote_dir)
    async with attempt_space(space, context.action.name, max(context.action.attempts, 1),
                             config.keep_remote_dir) as directory:
        yield Attempt(run, context.action, context.task_name, link, space, directory)
