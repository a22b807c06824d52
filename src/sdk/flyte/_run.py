"""Runs: the unit that owns actions, engines, the code bundle and temporary data, and is cleaned up as one."""

from __future__ import annotations

import atexit
import itertools
import os
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ._engines import pool

# Temporary dirs of runs that have not closed. A run still going when the interpreter exits (started in a daemon
# thread, say) never reaches close(): its dirs are removed at exit instead, like its engines.
_unclosed_dirs: set[str] = set()


@atexit.register
def _remove_unclosed_dirs() -> None:
    import shutil

    for path in list(_unclosed_dirs):
        shutil.rmtree(path, ignore_errors=True)
    _unclosed_dirs.clear()


class Action:
    """One task call in a run's tree: identity, timings, status, attempts and links (Spark UI, dashboards)."""

    __slots__ = ("name", "task_name", "parent", "children", "status", "attempts", "started", "ended", "links",
                 "error", "cached", "kind", "detail", "report_path", "run_name")

    def __init__(self, name: str, task_name: str, parent: Action | None, kind: str = "task") -> None:
        self.name = name
        self.task_name = task_name
        self.kind = kind  # "task", "group" (flyte.group) or "trace" (a flyte.trace call)
        self.detail: dict[str, str] = {}  # a trace's inputs and output, as text
        self.report_path: str | None = None  # report=True tasks: the HTML report's file
        self.run_name = ""
        self.parent = parent
        self.children: list[Action] = []
        self.status = "queued"
        self.attempts = 0
        self.started = 0.0
        self.ended = 0.0
        self.links: dict[str, str] = {}
        self.error: str | None = None
        self.cached = False

    @property
    def project(self) -> str | None:
        from ._initialize import initialized

        return getattr(initialized(), "project", None)

    @property
    def domain(self) -> str | None:
        from ._initialize import initialized

        return getattr(initialized(), "domain", None)

    @property
    def org(self) -> str | None:
        from ._initialize import initialized

        return getattr(initialized(), "org", None)

    @property
    def duration(self) -> float:
        """Seconds from the first attempt's start to the end (or now, while running)."""
        if not self.started:
            return 0.0
        return (self.ended or time.monotonic()) - self.started

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def __repr__(self) -> str:
        return f"Action({self.name!r}, task={self.task_name!r}, status={self.status!r}, {self.duration:.3f}s)"


class RunOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Settings of a run, from :func:`flyte.with_runcontext`."""

    mode: str = "local"
    name: str | None = None
    raw_data_path: str | None = None
    env_vars: dict[str, str] = msgspec.field(default_factory=dict)
    overwrite_cache: bool = False
    disable_run_cache: bool = False
    cache_dir: str | None = None
    keep_raw_data: bool = False
    progress: str = "auto"  # auto | rich | plain | quiet
    bundle_root: str | None = None
    custom_context: dict[str, str] = msgspec.field(default_factory=dict)
    # flyte-sdk options without a local meaning (service_account, labels, queue...): kept for the record.
    recorded: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("local", "remote"):
            raise ValueError(f"with_runcontext(mode=...): {self.mode!r}; allowed: 'local', 'remote'")
        if self.progress not in ("auto", "rich", "plain", "quiet"):
            raise ValueError(f"with_runcontext(progress=...): {self.progress!r}; allowed: auto, rich, plain, quiet")


class RunState:
    """The live state of a run, shared by all its actions (``TaskContext.run``)."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.name = options.name or f"r{os.urandom(5).hex()}"
        self.mode = options.mode
        self._owned_tmp: str | None = None
        self.controller: Any = None  # the controller of this run's calls; None: the local one
        self.action_prefix = ""  # in a pod running one action of a remote run: that action's name
        self.closers: list[Callable[[], Any]] = []  # async callables run when the run closes (a cluster session)
        if options.raw_data_path:
            self.raw_data_path = options.raw_data_path
            from ._storage import local_path

            local = local_path(self.raw_data_path)
            if local is not None:
                os.makedirs(local, exist_ok=True)
        else:
            import tempfile

            self._owned_tmp = tempfile.mkdtemp(prefix=f"flyte-{self.name}-")
            self.raw_data_path = self._owned_tmp
            if not options.keep_raw_data:
                _unclosed_dirs.add(self._owned_tmp)
        self.roots: list[Action] = []
        self._counter = itertools.count(1)
        self.started = time.monotonic()
        self.started_at = time.time()
        self.ended = 0.0
        self.status = "running"
        self.interrupted_by: str | None = None  # "SIGINT", "SIGTERM", "KeyboardInterrupt" when an interrupt aborted it
        self.listeners: list[Callable[[str, Action], None]] = []
        self.bundle: Any = None  # built lazily, once, by flyte.extend.code_bundle()
        self.scratch: dict[str, Any] = {}  # per-run state that plugins keep (e.g. a zipped bundle path)
        self.reports: dict[str, Any] = {}  # flyte.report's Report per action name

    def new_action(self, task_name: str, parent: Action | None, kind: str = "task") -> Action:
        number = next(self._counter)
        action = Action(f"{self.action_prefix}-{number}" if self.action_prefix else f"a{number}", task_name, parent,
                        kind)
        action.run_name = self.name
        (parent.children if parent is not None else self.roots).append(action)
        return action

    def notify(self, event: str, action: Action) -> None:
        for listener in self.listeners:
            listener(event, action)

    def temp_dir(self, purpose: str) -> str:
        """A directory under the run's own temporary area, removed when the run ends."""
        path = os.path.join(self.scratch_root(), purpose)
        os.makedirs(path, exist_ok=True)
        return path

    def scratch_root(self) -> str:
        root = self.scratch.get("__scratch_root__")
        if root is None:
            import tempfile

            root = tempfile.mkdtemp(prefix=f"flyte-{self.name}-scratch-")
            self.scratch["__scratch_root__"] = root
            _unclosed_dirs.add(root)
        return root

    async def close(self) -> None:
        import shutil  # here, not at import: it brings the compression modules, a twentieth of `import flyte`

        self.ended = time.monotonic()
        try:
            for closer in reversed(self.closers):
                try:
                    await closer()
                except Exception as exc:  # noqa: BLE001 - the rest of the cleanup must still run
                    import logging

                    logging.getLogger("flyte").warning("run %s: cleanup failed: %s", self.name, exc)
            await pool.stop_for_run(self.name)
        finally:
            root = self.scratch.get("__scratch_root__")
            if root:
                shutil.rmtree(root, ignore_errors=True)
                _unclosed_dirs.discard(root)
            if self._owned_tmp and not self.options.keep_raw_data:
                shutil.rmtree(self._owned_tmp, ignore_errors=True)
                _unclosed_dirs.discard(self._owned_tmp)


class ActionOutputs(tuple):  # type: ignore[type-arg]
    """A run's outputs, as flyte-sdk returns them: a tuple with one element per output (a task annotated
    ``-> tuple[A, B]`` has two), each also an attribute ``o0``, ``o1``... So ``run.outputs()[0]`` is the value of a
    single-output task. A single-output ``ActionOutputs`` also compares equal to its value."""

    def __new__(cls, values: tuple[Any, ...]) -> ActionOutputs:
        return super().__new__(cls, values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("o") and name[1:].isdigit() and int(name[1:]) < len(self):
            return self[int(name[1:])]
        raise AttributeError(f"ActionOutputs has no {name!r}; outputs: {', '.join(self.named_outputs)}")

    @property
    def named_outputs(self) -> dict[str, Any]:
        return {f"o{i}": value for i, value in enumerate(self)}

    def __eq__(self, other: object) -> bool:
        if len(self) == 1 and not isinstance(other, tuple):
            return bool(self[0] == other)
        return tuple.__eq__(self, other)  # type: ignore[no-any-return]

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return "ActionOutputs(" + ", ".join(f"o{i}={v!r}" for i, v in enumerate(self)) + ")"


def outputs_of(value: Any, output_type: Any) -> ActionOutputs:
    """``value`` as flyte-sdk's outputs of a task whose return annotation is ``output_type``."""
    import typing

    args = typing.get_args(output_type)
    multiple = (typing.get_origin(output_type) is tuple and bool(args) and args[-1] is not Ellipsis
                and isinstance(value, tuple))
    return ActionOutputs(tuple(value) if multiple else (value,))


class Run:
    """The result of :func:`flyte.run`: status, outputs, the tree of actions with their timings, and ``url``, the
    run's summary page (a local file, with its outputs, actions and reports)."""

    def __init__(self, state: RunState, outputs: Any, error: BaseException | None, output_type: Any = Any) -> None:
        self._state = state
        self._outputs = outputs
        self._output_type = output_type
        self.error = error

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def url(self) -> str:
        """A ``file://`` link to the run's summary page (see ``flyte._records``)."""
        from ._records import run_url

        return run_url(self.name)

    @property
    def status(self) -> str:
        return self._state.status

    @property
    def phase(self) -> str:
        """flyte-sdk's name for the status, upper-case: ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT``, ``ABORTED``."""
        return self._state.status.upper()

    @property
    def duration(self) -> float:
        return self._state.ended - self._state.started

    @property
    def raw_data_path(self) -> str:
        return self._state.raw_data_path

    @property
    def actions(self) -> list[Action]:
        """Root actions of the run (usually one); each has ``children``."""
        return self._state.roots

    @property
    def action(self) -> Action | None:
        """The root action (flyte-sdk's ``run.action``)."""
        return self._state.roots[0] if self._state.roots else None

    def done(self) -> bool:
        """Always true: ``flyte.run`` returns once a local run has finished."""
        return self._state.status != "running"

    def wait(self, quiet: bool = False, wait_for: str = "terminal") -> None:
        """Return at once: a local run is over when ``flyte.run`` returns (flyte-sdk's remote runs need the wait)."""
        if wait_for not in ("terminal", "running"):
            raise ValueError(f"Run.wait(wait_for=...): {wait_for!r}; allowed: 'terminal', 'running'")

    def raise_for_status(self) -> None:
        """Raise the run's error if it did not succeed."""
        if self.error is not None:
            raise self.error

    def outputs(self) -> ActionOutputs:
        """The task's outputs in flyte-sdk's shape: ``run.outputs()[0]`` (or ``.o0``) is the return value; a task
        annotated ``-> tuple[A, B]`` has ``[0]`` and ``[1]``. Re-raises the task's exception if the run failed."""
        if self.error is not None:
            raise self.error
        return outputs_of(self._outputs, self._output_type)

    def value(self) -> Any:
        """The task's return value as it returned it (``outputs()[0]`` for a single output)."""
        if self.error is not None:
            raise self.error
        return self._outputs

    def __repr__(self) -> str:
        if self.error is not None:
            return f"Run(name={self.name!r}, status={self.status!r}, error={self.error!r})"
        return f"Run(name={self.name!r}, status={self.status!r}, outputs={self._outputs!r}, {self.duration:.2f}s)"

    def __str__(self) -> str:
        return repr(self)
