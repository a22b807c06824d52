"""Run a user script as a user would (its own process group, as a terminal starts it) and interrupt it.

Leak checks need no knowledge of the engine: the script runs with a private, short TMPDIR (short so that Ray keeps its
sockets there) and a unique marker in its environment, which every process it starts inherits (JVMs, raylets, Dask
and torch workers). After the script exits, no process may carry the marker and the TMPDIR must be empty.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

LEAK_MARK = "FLYTE_TEST_LEAK_MARK"


@dataclass
class Outcome:
    returncode: int | None
    seconds_to_exit: float  # from the signal to the script's exit
    output: str
    leftover_processes: list[str] = field(default_factory=list)
    leftover_files: list[str] = field(default_factory=list)


def processes_marked(mark: str) -> list[str]:
    """``pid cmdline`` of every process whose environment carries ``LEAK_MARK=mark``."""
    needle = f"{LEAK_MARK}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle not in handle.read():
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry} {command[:200]}")
        except OSError:
            continue
    return found


def _terminal_signals() -> None:
    """SIGINT as a terminal's program has it. A test run started in the background by a non-interactive shell
    inherits SIGINT ignored, and Python leaves an ignored SIGINT ignored: the script would never see Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_script(script: str, *, wait_for: str | None, delay: float, to_group: bool = True,
                     sig: int = signal.SIGINT, again_after: float | None = None, cwd: str | None = None,
                     limit: float = 60.0, leak_grace: float = 5.0) -> Outcome:
    """Start ``python script`` in a new session, send ``sig`` ``delay`` seconds after the line ``wait_for`` appears
    (or after the start when None), to the whole process group or to the process only, and once more
    ``again_after`` seconds later if given (a user pressing Ctrl-C twice); wait for the exit."""
    mark = uuid.uuid4().hex
    tmp = tempfile.mkdtemp(prefix="fi-", dir="/tmp")
    env = dict(os.environ, TMPDIR=tmp, FLYTE_PROGRESS="plain", PYTHONUNBUFFERED="1", **{LEAK_MARK: mark})
    proc = subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=cwd or tmp, start_new_session=True, preexec_fn=_terminal_signals)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if wait_for is not None and wait_for in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if wait_for is not None and not seen.wait(limit):
            raise AssertionError(f"{script} never printed {wait_for!r}:\n{''.join(lines)}")
        time.sleep(delay)
        sent = time.monotonic()
        send = os.killpg if to_group else os.kill
        if proc.poll() is None:
            send(proc.pid, sig)
        if again_after is not None:
            time.sleep(again_after)
            if proc.poll() is None:
                send(proc.pid, sig)
        try:
            returncode: int | None = proc.wait(limit)
        except subprocess.TimeoutExpired:
            returncode = None
        seconds = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(5)
    deadline = time.monotonic() + leak_grace  # processes being reaped by their parents' exit
    while processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = processes_marked(mark)
    for line in leftovers:
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except OSError:
            pass
    files = sorted(os.listdir(tmp))
    shutil.rmtree(tmp, ignore_errors=True)
    return Outcome(returncode, seconds, "".join(lines), leftovers, files)


def run_script(script: str, env: dict[str, str], limit: float = 180.0) -> Outcome:
    """Run ``python script`` to its end (no signal), with the same leak checks as :func:`interrupt_script`."""
    mark = uuid.uuid4().hex
    tmp = env.get("TMPDIR") or tempfile.mkdtemp(prefix="fi-", dir="/tmp")
    full_env = {**os.environ, "TMPDIR": tmp, "FLYTE_PROGRESS": "plain", "PYTHONUNBUFFERED": "1", LEAK_MARK: mark,
                **env}
    started = time.monotonic()
    done = subprocess.run([sys.executable, script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=full_env, cwd=tmp, timeout=limit, start_new_session=True)
    seconds = time.monotonic() - started
    deadline = time.monotonic() + 5
    while processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = processes_marked(mark)
    files = sorted(os.listdir(tmp))
    if "TMPDIR" not in env:
        shutil.rmtree(tmp, ignore_errors=True)
    return Outcome(done.returncode, seconds, done.stdout, leftovers, files)
