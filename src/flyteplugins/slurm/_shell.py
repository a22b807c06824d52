"""A long-lived ``sh`` on the login node that runs the plugin's commands one after another.

Each SSH ``exec`` starts the login's shell, which reads its rc files (module systems, conda or pyenv set-up): often a
few hundred milliseconds, paid by every ``squeue`` of every poll. This shell is started once per connection, through
the login shell (so it has the login's ``PATH`` and environment), and each command then runs in a subshell of it with
stdin from ``/dev/null``, its stdout and stderr in files of a private temp dir, and its exit status, their sizes and
their content sent back after a marker unique to the command.

A command cut short (cancellation, a timeout) leaves the shell in an unknown state: it is closed, and the next
command starts a new one.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import anyio

START_TIMEOUT_S = 60.0
_READY = "FLYTE-SLURM-SHELL-READY"
_SETUP = (f'T=$(mktemp -d "${{TMPDIR:-/tmp}}/flyte-slurm.XXXXXX") && trap \'rm -rf "$T"\' EXIT && '
          f"trap 'exit 129' HUP && trap 'exit 143' TERM && echo {_READY}\n")


class ShellError(Exception):
    """The shell could not be started or broke mid-command (the caller falls back to a plain exec)."""


class RemoteShell:
    def __init__(self, process: Any) -> None:
        self._process = process
        self._lock = anyio.Lock()
        self.broken = False

    @classmethod
    async def start(cls, conn: Any) -> RemoteShell:
        process = await conn.create_process("exec sh", encoding=None, stderr=_devnull())
        shell = cls(process)
        try:
            with anyio.fail_after(START_TIMEOUT_S):
                process.stdin.write(_SETUP.encode())
                while True:  # what the login's rc files print comes first
                    line = await process.stdout.readline()
                    if not line:
                        raise ShellError("the login shell ended before the command shell was ready")
                    if line.strip() == _READY.encode():
                        break
        except BaseException:
            shell.close()
            raise
        return shell

    async def run(self, command: str, limit_s: float) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr) of ``command``."""
        marker = f"FLYTE-SLURM-END-{uuid.uuid4().hex}"
        script = (f"( {command}\n) </dev/null >\"$T/o\" 2>\"$T/e\"; "
                  f"printf '%s %s %s %s\\n' {marker} \"$?\" \"$(wc -c <\"$T/o\")\" \"$(wc -c <\"$T/e\")\"; "
                  f"cat \"$T/o\" \"$T/e\"\n")
        async with self._lock:
            if self.broken:
                raise ShellError("the command shell is closed")
            done = False
            try:
                with anyio.fail_after(limit_s):
                    self._process.stdin.write(script.encode())
                    while True:
                        line = await self._process.stdout.readline()
                        if not line:
                            raise ShellError("the command shell ended")
                        parts = line.decode(errors="replace").split()
                        if len(parts) == 4 and parts[0] == marker:
                            break
                    status, out_size, err_size = (int(part) for part in parts[1:])
                    out = await self._process.stdout.readexactly(out_size) if out_size else b""
                    err = await self._process.stdout.readexactly(err_size) if err_size else b""
                done = True
                return status, out, err
            finally:
                if not done:
                    self.close()

    def close(self) -> None:
        self.broken = True
        with contextlib.suppress(Exception):
            self._process.stdin.write_eof()
        with contextlib.suppress(Exception):
            self._process.close()


def _devnull() -> Any:
    import asyncssh

    return asyncssh.DEVNULL
