"""The ``flyte`` command line.

    flyte run [--name N] [--quiet|--plain] path/to/file.py TASK --param value ...
    flyte run path/to/file.py TASK --help       # the task's parameters
    flyte run path/to/file.py                   # lists the file's tasks

Parameters are parsed from the task's signature: str, int, float, ``Path``, ``Optional[...]`` of those, string
``Literal`` values and enums directly, bool as ``--flag/--no-flag``, untyped ones as JSON when the text is JSON (else as
text), and lists, dicts, dataclasses and msgspec Structs as JSON (validated against the annotation). The run's own
options (``--name``...) come before FILE; everything after it belongs to the task.
"""

from __future__ import annotations

import enum
import importlib.util
import inspect
import json
import sys
import types
import typing
from pathlib import Path, PurePath
from typing import Any

import click
import msgspec

from ._task import TaskTemplate


def _load_tasks(path: str) -> dict[str, TaskTemplate[Any, Any]]:
    file = Path(path).resolve()
    if not file.is_file():
        raise click.BadParameter(f"{path}: no such file", param_hint="FILE")
    sys.path.insert(0, str(file.parent))
    spec = importlib.util.spec_from_file_location(file.stem, file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module
    spec.loader.exec_module(module)
    # The file is the user's script, not an importable module where the tasks run (a pod): its functions travel by
    # value, so nothing there imports the script again (and re-runs what it does at import).
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    tasks: dict[str, TaskTemplate[Any, Any]] = {}
    for attribute, value in vars(module).items():
        if isinstance(value, TaskTemplate):
            tasks[attribute] = value
            tasks.setdefault(value.name, value)
    return tasks


class _JsonOf(click.ParamType):
    """A JSON value decoded and validated as ``annotation`` with msgspec."""

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation
        self.name = f"json({getattr(annotation, '__name__', annotation)})"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            if self.annotation is Any:
                return json.loads(value)
            return msgspec.json.decode(value, type=self.annotation)
        except (msgspec.DecodeError, msgspec.ValidationError, json.JSONDecodeError) as exc:
            self.fail(f"{value!r} is not valid JSON for {self.name}: {exc}", param, ctx)


class _JsonOrText(click.ParamType):
    """An untyped parameter: a JSON value when the text is one (``3``, ``[1, 2]``), else the text itself."""

    name = "value"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value


class _EnumOf(click.Choice):
    def __init__(self, enum_type: type[enum.Enum]) -> None:
        self.enum_type = enum_type
        super().__init__([str(member.value) for member in enum_type])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.enum_type):
            return value
        chosen = super().convert(value, param, ctx)
        return next(member for member in self.enum_type if str(member.value) == chosen)


def _param_type(annotation: Any) -> click.ParamType:
    """How the text of ``--param value`` becomes the parameter: text types as typed, the rest as JSON."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) == 1:  # Optional[X]: X (None stays the default)
            return _param_type(members[0])
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        if all(isinstance(value, str) for value in values):
            return click.Choice(values)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return _JsonOrText()
    if annotation in (str, int, float):
        return {str: click.STRING, int: click.INT, float: click.FLOAT}[annotation]
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return click.Path(path_type=annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _EnumOf(annotation)
    return _JsonOf(annotation)


def _option_for(name: str, annotation: Any, default: Any) -> click.Option:
    flag = "--" + name.replace("_", "-")
    required = default is inspect.Parameter.empty
    kwargs: dict[str, Any] = {"required": required, "show_default": not required}
    if not required:
        kwargs["default"] = default
    if annotation is bool:
        return click.Option([f"{flag}/--no-{name.replace('_', '-')}", name], **kwargs)
    kwargs["type"] = _param_type(annotation)
    return click.Option([flag, name], **kwargs)


def _task_command(task: TaskTemplate[Any, Any], run_options: dict[str, Any], dry_run: bool = False,
                  run_name: str | None = None) -> click.Command:
    interface = task.interface
    params: list[click.Parameter] = [
        _option_for(p.name, interface.annotations[p.name], p.default)
        for p in interface.signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]

    def invoke(**inputs: Any) -> None:
        from ._runner import with_runcontext

        if dry_run:
            from ._k8s.dryrun import manifests, to_yaml

            documents, configured = manifests(task, run_name=run_name or "dry-run", **inputs)
            click.echo(to_yaml(documents, configured), nl=False)
            return

        try:
            run = with_runcontext(**run_options).run(task, **inputs)
        except Exception as exc:  # the task failed: show it like Python would, exit 1
            import traceback

            traceback.print_exception(exc)
            sys.exit(1)
        outputs = run.value()
        try:
            click.echo(msgspec.json.encode(outputs).decode())
        except TypeError:
            click.echo(repr(outputs))

    return click.Command(task.short_name, params=params, callback=invoke,
                         help=(task.settings.docs or "").strip() or f"Run {task.name}.")


@click.group()
@click.version_option(package_name="flyte-distributed")
def main() -> None:
    """Run Flyte tasks locally on the embedded engines, or on a Kubernetes cluster (--remote)."""


# Options after FILE belong to the task (a task parameter may be called --name too): allow_interspersed_args=False.
@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": [],
                                "allow_interspersed_args": False})
@click.option("--name", help="Run name (default: generated).")
@click.option("--raw-data-path", help="Where offloaded data goes (kept after the run).")
@click.option("--quiet", "progress", flag_value="quiet", help="No progress output.")
@click.option("--plain", "progress", flag_value="plain", help="Plain progress lines instead of a live tree.")
@click.option("--local", is_flag=True, help="Run in this process (the default unless the config says remote).")
@click.option("--remote", is_flag=True, help="Run on the Kubernetes cluster of the config file's kubernetes section.")
@click.option("--dry-run", is_flag=True, help="Print, as YAML, the objects a remote run would create; create nothing.")
@click.option("--config", "config_file", help="flyte-sdk config file (default: searched as flyte.init_from_config).")
@click.option("-e", "--env", "env_vars", multiple=True, metavar="KEY=VALUE", help="An environment variable for the run.")
@click.option("--root-dir", help="The directory the code bundle is taken from (default: the file's).")
@click.option("-f", "--follow", is_flag=True, help="flyte-sdk's flag: a local run is always followed.")
@click.option("-p", "--project", help="Recorded on the run (flyte-sdk's project).")
@click.option("-d", "--domain", help="Recorded on the run (flyte-sdk's domain).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Recorded on the run.")
@click.option("--copy-style", type=click.Choice(["loaded_modules", "all", "none", "custom"]), help="Recorded.")
@click.option("--service-account", help="Recorded on the run.")
@click.option("--queue", help="Recorded on the run.")
@click.option("--image", "images", multiple=True, metavar="[NAME=]URI", help="Recorded on the run.")
@click.argument("file", required=False)
@click.argument("task_name", required=False)
@click.pass_context
def run(ctx: click.Context, name: str | None, raw_data_path: str | None, progress: str | None, local: bool,
        remote: bool, dry_run: bool, config_file: str | None, env_vars: tuple[str, ...], root_dir: str | None, follow: bool, project: str | None, domain: str | None,
        labels: tuple[str, ...], copy_style: str | None, service_account: str | None, queue: str | None,
        images: tuple[str, ...], file: str | None, task_name: str | None) -> None:
    """Run TASK_NAME from FILE with the task's parameters as options (see `flyte run FILE TASK --help`).
    flyte-sdk's `flyte run` flags are accepted; those that only mean something to a Flyte backend are recorded."""
    if file is None or file in ("--help", "-h"):
        click.echo(ctx.get_help())
        ctx.exit(0)
    if local and remote:
        raise click.UsageError("--local and --remote: choose one")
    from ._initialize import init_from_config

    init_from_config(config_file)  # the file's own flyte.init* calls (at import) override this
    tasks = _load_tasks(file)
    if task_name is None or task_name in ("--help", "-h"):
        click.echo(f"Tasks in {file}:")
        for attribute, task in tasks.items():
            if attribute == task.name:
                continue
            summary = (task.settings.docs or "").strip().splitlines()
            click.echo(f"  {attribute:<24} {summary[0] if summary else ''}")
        ctx.exit(0)
    found = tasks.get(task_name)
    if found is None:
        names = ", ".join(sorted(a for a, t in tasks.items() if a != t.name)) or "none"
        raise click.BadParameter(f"no task {task_name!r} in {file}; tasks: {names}", param_hint="TASK_NAME")
    options: dict[str, Any] = {k: v for k, v in {"name": name, "raw_data_path": raw_data_path, "progress": progress,
                                                  "bundle_root": root_dir}.items() if v}
    if env_vars:
        options["env_vars"] = _pairs("--env", env_vars)
    recorded = {"project": project, "domain": domain, "labels": _pairs("--label", labels) if labels else None,
                "copy_style": copy_style, "service_account": service_account, "queue": queue}
    options.update({key: value for key, value in recorded.items() if value})
    if remote:
        options["mode"] = "remote"
    elif local:
        options["mode"] = "local"
    command = _task_command(found, options, dry_run=dry_run, run_name=name)
    command.main(args=ctx.args, prog_name=f"flyte run {file} {task_name}", standalone_mode=True)


@main.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--config", "config_file", help="flyte-sdk config file (default: searched as flyte.init_from_config).")
def gc(dry_run: bool, config_file: str | None) -> None:
    """Delete the Kubernetes objects left by runs that no longer exist (see flyte.kubernetes.gc)."""
    from ._initialize import init_from_config
    from .kubernetes import gc as collect

    init_from_config(config_file)
    try:
        removed = collect(dry_run=dry_run)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    verb = "would delete" if dry_run else "deleted"
    for item in removed:
        click.echo(f"{verb} {item}")
    click.echo(f"{len(removed)} object(s) {verb}")


def _pairs(option: str, items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=option)
        out[key] = value
    return out


if __name__ == "__main__":
    main()
