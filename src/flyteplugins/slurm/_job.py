"""One Slurm job from submission to its end: ``sbatch``, following its state and output, and ``scancel`` when the
call is cut short.

State comes from ``squeue --json`` (filtered by job id here too: Slurm 22.05 ignores ``--jobs`` with ``--json``),
falling back to ``scontrol show job -o`` (where ``squeue`` has no ``--json``) and, once the job has left the
controller (``MinJobAge``), to ``sacct`` where accounting is kept. Polls start fast and slow down to
:data:`MAX_POLL_S`. The job's stdout and stderr files are read as they grow (over SFTP, from where they stopped)
and shown in the run's progress; their last lines go into the error of a job that failed.

A call that is cancelled (its timeout, Ctrl-C, a failing sibling) cancels its job and waits, shielded, until Slurm
says it ended, so nothing of it is left in ``squeue``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ._connection import ClusterLink
from ._errors import SlurmCommandError
from ._script import parse_job_id, sbatch_command
from ._states import JobStatus, from_sacct, from_scontrol, from_squeue_json, parse_scontrol

log = logging.getLogger("flyteplugins.slurm")

FIRST_POLL_S = 0.2
MAX_POLL_S = 2.0
MAX_HINTED_POLL_S = 5.0  # with a cheap hint of the job's end, Slurm itself is asked less often
HINT_INTERVAL_S = 0.1  # growing to MAX_HINT_INTERVAL_S: short jobs are seen at once, long ones cost little
MAX_HINT_INTERVAL_S = 1.0
GONE_GRACE_POLLS = 3  # polls a job may be missing everywhere before it counts as gone
CANCEL_DEADLINE_S = 90.0
KILL_AFTER_S = 30.0
TAIL_LINES = 25
READ_CHUNK = 1 << 20
SUBMIT_TIMEOUT_S = 120.0
_JOB_ID_VAR = "FLYTE_SLURM_JOB_ID"

Sink = Callable[[str, str], None]  # (stream, line)


class SlurmJob:
    """A submitted job: its id, where its output goes, what was seen of it."""

    def __init__(self, link: ClusterLink, job_id: str, where: str, sink: Sink | None = None) -> None:
        self.link = link
        self.job_id = job_id
        self.where = where
        self.sink = sink
        self.status: JobStatus | None = None
        self.stdout_path = ""
        self.stderr_path = ""
        self.work_dir = ""
        self._offsets: dict[str, int] = {}
        self._pending: dict[str, bytes] = {}
        self.tails: dict[str, collections.deque[str]] = {"stdout": collections.deque(maxlen=TAIL_LINES),
                                                         "stderr": collections.deque(maxlen=TAIL_LINES)}

    # -- submission -------------------------------------------------------------------------------------------
    @classmethod
    async def submit(cls, link: ClusterLink, script: str, options: dict[str, str | None], args: tuple[str, ...],
                     cwd: str | None, where: str, sink: Sink | None = None) -> SlurmJob:
        """``sbatch`` the script. Shielded: a submission cut half-way would leave a job nobody follows; the
        caller's cancellation takes effect once the job id is known (and the job is then cancelled)."""
        command = sbatch_command(script, options, args, cwd)
        # Where Slurm writes the job's stdout and stderr comes with the submission (one shell, not two):
        # ``scontrol`` expands ``%j`` and relative paths.
        # In ``sh``, whatever the login's shell is (csh has no ``$(...)``); it inherits the login's PATH.
        located = "sh -c " + shlex.quote(f"{_JOB_ID_VAR}=$({command}) && echo \"${_JOB_ID_VAR}\" && "
                                         f"{{ scontrol show job -o \"${_JOB_ID_VAR}\" || true; }}")
        with anyio.CancelScope(shield=True):
            result = await link.run(located, idempotent=False, timeout=SUBMIT_TIMEOUT_S)
            lines = result.stdout.strip().splitlines()
            job_id = parse_job_id(lines[0]) if result.ok and lines else None
            if job_id is None:
                detail = (result.stderr or result.stdout).strip()
                if result.exit_status == 127 or "sbatch: command not found" in detail:
                    detail += " (is Slurm's client on the login node's PATH for non-interactive shells?)"
                raise SlurmCommandError(f"{where}: sbatch refused the job (exit status {result.exit_status}): "
                                        f"{detail or 'no output'}", command, result.exit_status, result.stderr)
            job = cls(link, job_id, where, sink)
            job._locate_output("\n".join(lines[1:]))
        return job

    def _locate_output(self, scontrol: str) -> None:
        record = parse_scontrol(scontrol)
        if record.get("JobId") != self.job_id:
            return
        self.stdout_path = record.get("StdOut", "")
        self.stderr_path = record.get("StdErr", "")
        self.work_dir = record.get("WorkDir", "")
        if self.stderr_path == self.stdout_path:
            self.stderr_path = ""

    # -- state ------------------------------------------------------------------------------------------------
    async def query(self) -> JobStatus | None:
        """The job's state now, or None when no source knows it any more."""
        link = self.link
        if link.checked.get("squeue --json") != "unsupported":
            result = await link.run(f"squeue --json --jobs={self.job_id}")
            if result.ok:
                with contextlib.suppress(ValueError):
                    status = from_squeue_json(result.stdout, self.job_id)
                    if status is not None:
                        return status
            elif "json" in result.stderr.lower() and ("unrecognized" in result.stderr or "invalid" in result.stderr):
                link.checked["squeue --json"] = "unsupported"
        result = await link.run(f"scontrol show job -o {self.job_id}")
        if result.ok:
            status = from_scontrol(result.stdout, self.job_id)
            if status is not None:
                return status
        if link.checked.get("sacct") != "unsupported":
            result = await link.run(f"sacct -X -n -P -o JobID,State,ExitCode,NodeList -j {self.job_id}")
            if result.ok:
                return from_sacct(result.stdout, self.job_id)
            if "accounting storage is disabled" in (result.stderr + result.stdout).lower():
                link.checked["sacct"] = "unsupported"
        return None

    async def follow(self, finished_hint: Callable[[], Awaitable[bool]] | None = None) -> JobStatus:
        """Poll until the job ends; returns its final state (``UNKNOWN`` when it left the controller unseen and no
        accounting remembers it).

        ``finished_hint`` is a cheap check (a file the job writes last, seen over SFTP) made between the polls of
        Slurm: when it says the work is done, Slurm is asked at once, so a short job's end is seen soon without
        asking ``slurmctld`` often."""
        delay = FIRST_POLL_S
        missing = 0
        next_poll = 0.0
        hinted = False
        hint_delay = HINT_INTERVAL_S
        while True:
            now = anyio.current_time()
            if now >= next_poll or hinted:
                status = await self.query()
                await self.read_output()
                if status is not None:
                    missing = 0
                    self.status = status
                    if status.finished:
                        await self.read_output(final=True)
                        return status
                else:
                    missing += 1
                    if missing >= GONE_GRACE_POLLS:
                        await self.read_output(final=True)
                        last = self.status
                        self.status = JobStatus(self.job_id, "UNKNOWN", reason="the job left the controller before "
                                                "its end was seen, and no accounting (sacct) remembers it",
                                                nodes=last.nodes if last else "")
                        return self.status
                # Once the work is done, the job ends within moments: ask again soon.
                next_poll = anyio.current_time() + (FIRST_POLL_S if hinted else delay)
                delay = min(delay * 1.5, MAX_POLL_S if finished_hint is None else MAX_HINTED_POLL_S)
            if finished_hint is None:
                await anyio.sleep(max(0.0, next_poll - anyio.current_time()))
                continue
            await anyio.sleep(hint_delay)
            hint_delay = min(hint_delay * 1.2, MAX_HINT_INTERVAL_S)
            if not hinted:
                try:
                    hinted = await finished_hint()
                except Exception as exc:  # noqa: BLE001 - a hint only: Slurm's state decides
                    log.debug("job %s: the finished hint failed: %s", self.job_id, exc)

    # -- output -----------------------------------------------------------------------------------------------
    async def read_output(self, final: bool = False) -> None:
        for stream, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            if path and path != "/dev/null":
                try:
                    await self._read_stream(stream, path, final)
                except Exception as exc:  # noqa: BLE001 - output is shown best-effort; the state decides
                    log.debug("job %s: reading %s (%s) failed: %s", self.job_id, stream, path, exc)

    async def _read_stream(self, stream: str, path: str, final: bool) -> None:
        import asyncssh

        offset = self._offsets.get(stream, 0)

        async def read(sftp: Any) -> bytes:
            try:
                async with sftp.open(path, "rb", encoding=None) as handle:
                    await handle.seek(offset)
                    return await handle.read(READ_CHUNK)  # type: ignore[no-any-return]
            except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied):
                return b""

        while True:
            data = await self.link.with_sftp(read, f"reading the job's {stream}")
            if data:
                offset += len(data)
                self._offsets[stream] = offset
                self._lines(stream, self._pending.get(stream, b"") + data)
            if len(data) < READ_CHUNK:
                break
        if final and self._pending.get(stream):
            self._emit(stream, self._pending.pop(stream))

    def _lines(self, stream: str, data: bytes) -> None:
        *lines, rest = data.split(b"\n")
        self._pending[stream] = rest
        for line in lines:
            self._emit(stream, line)

    def _emit(self, stream: str, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        self.tails[stream].append(line)
        if self.sink is not None:
            self.sink(stream, line)

    def tail(self, stream: str) -> str:
        return "\n".join(self.tails[stream])

    @property
    def merged(self) -> bool:
        """Whether stderr goes to the stdout file (sbatch's default)."""
        return bool(self.stdout_path) and not self.stderr_path

    def failure_output(self) -> tuple[str, str, str, bool]:
        """(stderr's tail, stdout's tail, stderr's path, merged) for :func:`job_error`; with stderr merged into
        stdout, their common file is stderr's."""
        if self.merged:
            return self.tail("stdout"), "", self.stdout_path, True
        return self.tail("stderr"), self.tail("stdout"), self.stderr_path, False

    # -- cancellation -----------------------------------------------------------------------------------------
    async def cancel(self) -> None:
        """``scancel`` the job and wait until it has ended (SIGKILL after :data:`KILL_AFTER_S`); shielded."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_DEADLINE_S) as scope:
            await self.link.run(f"scancel {shlex.quote(self.job_id)}")
            started = anyio.current_time()
            killed = False
            delay = FIRST_POLL_S
            while True:
                status = await self.query()
                if status is None or status.finished:
                    self.status = status or self.status
                    return
                if not killed and anyio.current_time() - started > KILL_AFTER_S:
                    killed = True
                    await self.link.run(f"scancel --full --signal=KILL {shlex.quote(self.job_id)}")
                await anyio.sleep(delay)
                delay = min(delay * 1.5, 1.0)
        if scope.cancelled_caught:
            log.warning("%s: Slurm job %s had not ended %gs after scancel", self.where, self.job_id,
                        CANCEL_DEADLINE_S)


def progress_sink(run: Any, prefix: str) -> Sink | None:
    """Where a job's output lines go: the terminal, under the run's progress, unless the run is quiet."""
    import os

    mode = getattr(run.options, "progress", "auto")
    if mode == "quiet" or (mode == "auto" and os.environ.get("FLYTE_PROGRESS") == "quiet"):
        return None

    def write(stream: str, line: str) -> None:
        try:
            sys.stderr.write(f"{prefix}{' (stderr)' if stream == 'stderr' else ''} {line}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    return write
