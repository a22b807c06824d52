"""The `flyte` command and run progress output, through real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

WORKFLOW = textwrap.dedent(
    '''
    import asyncio
    import dataclasses
    import flyte

    env = flyte.TaskEnvironment(name="cli")

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    @env.task
    async def add(a: int, b: float = 1.5, label: str = "sum", loud: bool = False,
                  items: list[int] | None = None, p: Point | None = None) -> dict:
        """Adds things up."""
        total = a + b + sum(items or []) + (p.x + p.y if p else 0)
        return {"label": label.upper() if loud else label, "total": total}

    @env.task
    def boom(x: int) -> int:
        raise ValueError(f"boom {x}")

    @env.task
    async def slow_child(i: int) -> int:
        await asyncio.sleep(0.6)
        return i

    @env.task
    async def slow(n: int = 3) -> int:
        total = 0
        for i in range(n):  # sequential, so the run lasts n * 0.6 s
            total += await slow_child(i)
        return total
    '''
)


@pytest.fixture
def workflow(tmp_path):
    path = tmp_path / "wf.py"
    path.write_text(WORKFLOW)
    return path


def _flyte(*args, env_extra=None, **kwargs):
    env = {**os.environ, **(env_extra or {})}
    env.pop("FLYTE_PROGRESS", None)
    return subprocess.run([sys.executable, "-m", "flyte", *args], capture_output=True, text=True, env=env,
                          timeout=120, **kwargs)


def test_cli_parses_typed_parameters_and_prints_outputs(workflow):
    result = _flyte("run", "--quiet", str(workflow), "add", "--a", "1", "--items", "[1, 2]",
                    "--p", '{"x": 1, "y": 2}', "--loud")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"label": "SUM", "total": 8.5}
    assert result.stderr == ""  # --quiet


TEXT_PARAMETERS = textwrap.dedent(
    '''
    import enum
    from pathlib import Path
    from typing import Literal, Optional
    import flyte

    env = flyte.TaskEnvironment(name="texts")

    class Color(enum.Enum):
        RED = "red"
        BLUE = "blue"

    @env.task
    async def describe(name: str, mode: Literal["slow", "fast"], label: Optional[str] = None,
                       where: Path = Path("."), color: Color = Color.RED, anything=None,
                       count: Optional[int] = None) -> dict:
        return {"name": name, "mode": mode, "label": label, "where": str(where), "is_path": isinstance(where, Path),
                "color": color.value, "anything": anything, "count": count}
    '''
)


def test_cli_takes_text_parameters_as_text_and_a_parameter_called_name(tmp_path):
    """Issue 10.6: `--name` belongs to the task after FILE, and text-like parameters need no JSON quoting."""
    path = tmp_path / "texts.py"
    path.write_text(TEXT_PARAMETERS)
    result = _flyte("run", "--quiet", "--name", "my-run", str(path), "describe", "--name", "bob", "--mode", "slow",
                    "--label", "x y", "--where", "/tmp", "--color", "blue", "--anything", "hello", "--count", "3")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "bob", "mode": "slow", "label": "x y", "where": "/tmp",
                                         "is_path": True, "color": "blue", "anything": "hello", "count": 3}
    result = _flyte("run", "--quiet", str(path), "describe", "--name", "bob", "--mode", "slow", "--anything", "[1, 2]")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["anything"] == [1, 2]  # untyped: JSON when it is JSON
    result = _flyte("run", "--quiet", str(path), "describe", "--name", "bob", "--mode", "medium")
    assert result.returncode == 2 and "medium" in result.stderr and "slow" in result.stderr  # names the choices


def test_cli_task_help_lists_parameters(workflow):
    result = _flyte("run", str(workflow), "add", "--help")
    assert result.returncode == 0
    for expected in ("Adds things up.", "--a INTEGER", "[required]", "--b FLOAT", "--loud / --no-loud", "--items"):
        assert expected in result.stdout


def test_cli_lists_tasks_and_rejects_unknown_ones(workflow):
    listing = _flyte("run", str(workflow))
    assert listing.returncode == 0 and "add" in listing.stdout and "boom" in listing.stdout
    unknown = _flyte("run", str(workflow), "nope")
    assert unknown.returncode == 2 and "no task 'nope'" in unknown.stderr


def test_cli_exit_codes_reflect_failures(workflow):
    bad_value = _flyte("run", str(workflow), "add", "--a", "x")
    assert bad_value.returncode == 2 and "'x' is not a valid integer" in bad_value.stderr
    bad_json = _flyte("run", str(workflow), "add", "--a", "1", "--items", '["a"]')
    assert bad_json.returncode == 2 and "--items" in bad_json.stderr
    failed = _flyte("run", "--quiet", str(workflow), "boom", "--x", "2")
    assert failed.returncode == 1 and "ValueError: boom 2" in failed.stderr


def test_plain_progress_lines_when_not_a_terminal(workflow):
    result = _flyte("run", str(workflow), "slow", "--n", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("[flyte] run ") and lines[0].endswith("started")
    assert any("cli.slow_child succeeded" in line for line in lines)  # slow children (>= 0.5 s) are reported
    assert "succeeded" in lines[-1]
    assert result.stdout.strip() == "1"


def test_live_progress_tree_in_a_terminal(workflow, tmp_path):
    """Runs under a pseudo-terminal, as a person would see it."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI with a TTY on stdout/stderr
        os.environ.pop("FLYTE_PROGRESS", None)
        os.execv(sys.executable, [sys.executable, "-m", "flyte", "run", str(workflow), "slow", "--n", "3"])
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "cli.slow" in text and "cli.slow_child" in text and "succeeded" in text


def test_progress_never_blocks_a_closed_pipe(workflow):
    """`python wf.py | head -1`: the reader goes away, the run still finishes promptly."""
    script = workflow.parent / "main.py"
    script.write_text("import flyte, wf\nfor i in range(3):\n    print(i, flush=True)\n"
                      "print(flyte.run(wf.slow, n=2).outputs()[0])\n")
    start = time.monotonic()
    result = subprocess.run(f"{sys.executable} {script} 2>&1 | head -1", shell=True, capture_output=True, text=True,
                            cwd=workflow.parent, timeout=60, env={k: v for k, v in os.environ.items()
                                                                  if k != "FLYTE_PROGRESS"})
    assert result.stdout.strip() == "0"
    assert time.monotonic() - start < 20
