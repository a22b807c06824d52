"""Run one task outside the caller's process: what a cluster pod or an engine's worker runs.

    python -m flyte.runtime --task pkg.module:task_name --inputs inputs.msgpack --outputs out/ \\
        --bundle bundle.zip --raw-data-path /data/raw [--run-name r1]

``--task`` is ``module:attribute`` (imported from the bundle) or, with ``--pickled-task``, a file holding a
cloudpickled task (tasks defined in ``__main__`` or a notebook). The task runs through the local controller, the same
path as a local call (pre -> function -> post). On success ``outputs.msgpack`` is written under ``--outputs``; on
failure ``error.json`` (type, module, message, traceback, retriable) and the exit code is 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import Any

import cloudpickle
import msgspec

from . import _storage
from ._bundle import install_bundle
from ._k8s.settings import SETTINGS_ENV

OUTPUTS_FILE = "outputs.msgpack"
ERROR_FILE = "error.json"


class ErrorDocument(msgspec.Struct, kw_only=True):
    """What a failed task leaves behind for its caller."""

    type: str
    module: str
    message: str
    traceback: str
    retriable: bool
    pickled: bytes | None = None  # the exception itself, when it pickles: the caller re-raises its own type


def write_inputs(task: Any, uri: str, *args: Any, **kwargs: Any) -> None:
    """Encode a call's inputs for :mod:`flyte.runtime` (``raw_data_path`` defaults to the inputs file's folder)."""
    interface = task.interface
    encoded = interface.encode_inputs(interface.bind(args, kwargs), raw_data_path="")
    _storage.write_bytes(uri, msgspec.msgpack.encode(encoded))


def read_outputs(task: Any, outputs_dir: str, raw_data_path: str = "") -> Any:
    """Decode what a runtime process left under ``outputs_dir``: the value, or its exception raised here."""
    try:
        data = _storage.read_bytes(_storage.join(outputs_dir, OUTPUTS_FILE))
    except FileNotFoundError:
        raise error_from_document(_storage.read_bytes(_storage.join(outputs_dir, ERROR_FILE))) from None
    return task.interface.decode_output(data, raw_data_path)


def error_from_document(data: bytes) -> BaseException:
    """The exception an ``error.json`` describes: the task's own (same type) when it could be pickled, else a
    :class:`flyte.errors.RemoteTaskError` with its type, message and traceback."""
    from .errors import RemoteTaskError

    document = msgspec.json.decode(data, type=ErrorDocument)
    if document.pickled:
        try:
            error = _rebuild_exception(cloudpickle.loads(document.pickled))
        except Exception:
            error = None
        if isinstance(error, BaseException):
            error.add_note(f"Remote traceback:\n{document.traceback}")
            return error
    return RemoteTaskError(document.type, document.message, document.traceback, document.retriable)


def _rebuild_exception(loaded: Any) -> BaseException | None:
    if isinstance(loaded, BaseException):
        return loaded
    if isinstance(loaded, tuple) and len(loaded) == 3 and isinstance(loaded[0], type) \
            and issubclass(loaded[0], BaseException):
        kind, args, state = loaded
        error = kind.__new__(kind, *args)
        error.args = args
        error.__dict__.update(state)
        return error  # type: ignore[no-any-return]
    return None


def arguments(*, task: str, inputs: str, outputs: str, raw_data_path: str, run_name: str, action: str,
              bundle: str | None = None, attempt: int = 1) -> list[str]:
    """This runtime's command-line arguments for one call of a pickled ``task`` (what :func:`main` parses)."""
    args = ["--task", task, "--pickled-task", "--inputs", inputs, "--outputs", outputs, "--raw-data-path",
            raw_data_path, "--run-name", run_name, "--action", action]
    if bundle:
        args += ["--bundle", bundle]
    if attempt != 1:
        args += ["--attempt", str(attempt)]
    return args


def load_task(reference: str, pickled: bool) -> Any:
    if pickled:
        return cloudpickle.loads(_storage.read_bytes(reference))
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--task: expected 'module:attribute', got {reference!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


async def _execute(task: Any, encoded: dict[str, bytes], raw_data_path: str, run_name: str | None,
                   action_name: str | None = None, bundle: str | None = None, attempt: int = 1) -> bytes:
    """One attempt of one call. The caller owns retries and the output cache (a new attempt is a new object,
    pod or job), so neither applies here; the timeout does, so that the attempt reports it."""
    from ._controller import controller
    from ._run import RunOptions, RunState

    task = task.override(retries=0, cache="disable")

    state = RunState(RunOptions(mode="remote", name=run_name, raw_data_path=raw_data_path, progress="quiet"))
    if os.environ.get(SETTINGS_ENV):  # a pod of a remote run: nested calls become objects on the same cluster
        from ._k8s.controller import RemoteController
        from ._k8s.settings import current

        state.controller = RemoteController(current())  # type: ignore[arg-type]
        if bundle:
            state.scratch["k8s_bundle_uri"] = bundle
    try:
        action = state.new_action(task.name, None)
        action.attempts = attempt - 1  # counted up as the attempt starts: flyte.ctx().attempt_number is attempt - 1
        if action_name:
            action.name = action_name
            state.action_prefix = action_name
        return await controller.run_action(task, encoded, state, action, None)
    finally:
        await state.close()


def _error_document(error: BaseException) -> ErrorDocument:
    from .errors import TaskTimeoutError

    try:
        # The class, args and attributes, not the exception itself: unpickling an exception calls its class with
        # its args alone, which fails for one whose __init__ takes more (BudgetError(message, budget)).
        pickled = cloudpickle.dumps((type(error), error.args, dict(getattr(error, "__dict__", {}))))
    except Exception:
        pickled = None
    return ErrorDocument(
        type=type(error).__name__, module=type(error).__module__, message=str(error),
        traceback="".join(traceback.format_exception(error)),
        retriable=isinstance(error, (ConnectionError, TaskTimeoutError)), pickled=pickled,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flyte.runtime", description=__doc__.split("\n")[0])
    parser.add_argument("--task", required=True, help="module:attribute, or a pickled task file with --pickled-task")
    parser.add_argument("--pickled-task", action="store_true")
    parser.add_argument("--inputs", required=True, help="msgpack file written by flyte.runtime.write_inputs")
    parser.add_argument("--outputs", required=True, help="directory (or URI) for outputs.msgpack / error.json")
    parser.add_argument("--bundle", help="code bundle: a zip or a directory")
    parser.add_argument("--raw-data-path", required=True)
    parser.add_argument("--run-name")
    parser.add_argument("--action", help="the action's name in its run (its nested calls are named under it)")
    parser.add_argument("--attempt", type=int, default=1, help="which attempt of the call this is (1 = the first)")
    args = parser.parse_args(argv)

    import anyio

    try:
        if args.bundle:
            local = _storage.local_path(args.bundle)
            install_bundle(local if local is not None else _storage.read_bytes(args.bundle))
        task = load_task(args.task, args.pickled_task)
        encoded = msgspec.msgpack.decode(_storage.read_bytes(args.inputs), type=dict[str, bytes])
        output = anyio.run(_execute, task, encoded, args.raw_data_path, args.run_name, args.action, args.bundle,
                           args.attempt)
    except BaseException as error:  # report everything, KeyboardInterrupt included, then exit non-zero
        # The call's first error stands: the replicas of a distributed job (TensorFlow's, MPI's ranks, elastic
        # nodes) sharing these outputs fail in a cascade, the root cause first, and the others' consequential errors
        # (a collective whose peer died) must not overwrite it.
        _storage.create_bytes(_storage.join(args.outputs, ERROR_FILE), msgspec.json.encode(_error_document(error)))
        print(f"flyte.runtime: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    from . import _context

    if not _context.omit_outputs:
        _storage.write_bytes(_storage.join(args.outputs, OUTPUTS_FILE), output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
