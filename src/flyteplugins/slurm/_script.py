"""Batch scripts and the ``sbatch`` command line.

Placeholders are replaced by name only: ``{inputs.x}``, ``{outputs.y}`` and ``{task.fn}``; every other brace (a
shell's ``${VAR}``, ``{1..3}``, ``awk '{print $1}'``) is left as written, so scripts need no escaping. Values are
inserted as text, unquoted, as flytekit does: quote them in the script where a value may hold spaces.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from ._config import TASK_FN

_PLACEHOLDER = re.compile(r"\{(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\}")


def interpolate(template: str, inputs: Mapping[str, Any], outputs: Mapping[str, str], where: str) -> str:
    """``template`` with ``{inputs.x}`` and ``{outputs.y}`` replaced; an unknown name is an error naming those
    that exist."""
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        table = inputs if kind == "inputs" else outputs
        if name not in table:
            missing.append(match.group(0))
            return match.group(0)
        return as_text(table[name])

    result = _PLACEHOLDER.sub(value, template)
    if missing:
        raise ValueError(f"{where}: {', '.join(sorted(set(missing)))} not found; inputs: "
                         f"{', '.join(sorted(inputs)) or 'none'}; outputs: {', '.join(sorted(outputs)) or 'none'}")
    return result


def as_text(value: Any) -> str:
    """How a value reads in a script: a File or Dir as its path, True/False as true/false (shell-friendly)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    path = getattr(value, "path", None)
    if isinstance(path, str) and type(value).__name__ in ("File", "Dir"):
        return path
    return str(value)


def function_script(template: str | None, command: str) -> str:
    """The job script of a function task: the template with ``{task.fn}`` replaced, or a plain bash script."""
    if template is None:
        return f"#!/bin/bash\n{command}\n"
    return template.replace(TASK_FN, command)


def sbatch_command(script: str, options: Mapping[str, str | None], args: tuple[str, ...] = (),
                   cwd: str | None = None) -> str:
    """``sbatch --parsable --key=value ... script args`` (quoted for the login's shell), run in ``cwd``."""
    parts = ["sbatch", "--parsable"]
    for key, value in options.items():
        parts.append(f"--{key}" if value is None else f"--{key}={value}")
    parts.append(script)
    parts.extend(args)
    command = " ".join(shlex.quote(part) for part in parts)
    return f"cd {shlex.quote(cwd)} && {command}" if cwd else command


def parse_job_id(stdout: str) -> str | None:
    """The job id ``sbatch --parsable`` printed (``123`` or ``123;cluster``)."""
    for line in reversed(stdout.strip().splitlines()):
        candidate = line.strip().split(";")[0]
        if candidate.isdigit():
            return candidate
    return None
