"""Errors the SDK raises, with flyte-sdk 2.x's names and constructors. A task's own exception reaches the caller as
its own type, made also a ``RuntimeUserError`` whose ``code`` is the class name (flyte-sdk reports only the latter),
so ``except ValueError`` and ``except flyte.errors.RuntimeUserError`` both catch it. The classes here are for what the
SDK itself detects.

flyte-sdk's errors carry a ``code`` and a ``kind`` (``"user"``, ``"system"``, ``"unknown"``); ours do too, so code that
reads them works. Every class here is also a :class:`FlyteError`.
"""

from __future__ import annotations

from typing import Any, Literal

ErrorKind = Literal["system", "unknown", "user"]


class FlyteError(Exception):
    """Base of the SDK's own errors."""


class BaseRuntimeError(FlyteError, RuntimeError):
    """An error with a ``code`` (a short name), a ``kind`` and the ``worker`` it happened on, if known."""

    def __init__(self, code: str, kind: ErrorKind, root_cause_message: str, worker: str | None = None) -> None:
        super().__init__(root_cause_message)
        self.code = code
        self.kind = kind
        self.worker = worker


class _CodedError(BaseRuntimeError):
    _kind: ErrorKind = "user"

    def __init__(self, code: str, message: str, worker: str | None = None) -> None:
        super().__init__(code, self._kind, message, worker)


class RuntimeUserError(_CodedError):
    """Something the user's code or settings did."""


class RuntimeSystemError(_CodedError):
    """Something the platform did."""

    _kind = "system"


class RuntimeUnknownError(_CodedError):
    _kind = "unknown"


class InitializationError(BaseRuntimeError):
    """``flyte.init*`` could not be done (e.g. an explicit config file that does not exist)."""


class LogsNotYetAvailableError(BaseRuntimeError):
    def __init__(self, message: str) -> None:
        super().__init__("LogsNotYetAvailable", "system", message)


class ActionNotFoundError(FlyteError, RuntimeError):
    """A run or action looked up by name does not exist."""


def _user_error(name: str, doc: str) -> type[RuntimeUserError]:
    """A ``RuntimeUserError`` subclass constructed from a message alone, its code being its name."""

    def __init__(self: RuntimeUserError, message: str) -> None:
        RuntimeUserError.__init__(self, name, message)

    return type(name, (RuntimeUserError,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


ActionAbortedError = _user_error("ActionAbortedError", "The action was aborted.")
CodeBundleError = _user_error("CodeBundleError", "The code bundle could not be built or installed.")
ConditionAlreadyExistsError = _user_error("ConditionAlreadyExistsError", "A condition of that name exists already.")
ConditionFailedError = _user_error("ConditionFailedError", "A condition failed.")
ConditionNotFoundError = _user_error("ConditionNotFoundError", "No condition of that name.")
ConditionTimedoutError = _user_error("ConditionTimedoutError", "A condition was not signalled in time.")
DeploymentError = _user_error("DeploymentError", "A deployment failed.")
ImageBuildError = _user_error("ImageBuildError", "An image could not be built or named.")
InlineIOMaxBytesBreached = _user_error("InlineIOMaxBytesBreached", "Inputs or outputs exceed max_inline_io_bytes.")
ModuleLoadError = _user_error("ModuleLoadError", "The task's module could not be loaded.")
OnlyAsyncIOSupportedError = _user_error("OnlyAsyncIOSupportedError", "Only asyncio event loops are supported.")
ParameterMaterializationError = _user_error("ParameterMaterializationError", "A parameter could not be built.")
RemoteTaskNotFoundError = _user_error("RemoteTaskNotFoundError", "No remote task of that name.")
RemoteTaskUsageError = _user_error("RemoteTaskUsageError", "A remote task was used where it cannot be.")
RestrictedTypeError = _user_error("RestrictedTypeError", "A type that cannot be passed between tasks.")
SlowDownError = _user_error("SlowDownError", "The platform asks the client to slow down.")
ResourceExhaustedError = type("ResourceExhaustedError", (SlowDownError,), {"__module__": __name__})
SyncTaskCallInAsyncContextError = _user_error("SyncTaskCallInAsyncContextError",
                                              "A sync task was called the blocking way inside an async task.")
TraceDoesNotAllowNestedTasksError = _user_error("TraceDoesNotAllowNestedTasksError",
                                                "A @flyte.trace function called a task.")


class ImagePullBackOffError(RuntimeUserError):
    pass


class InvalidImageNameError(RuntimeUserError):
    pass


class NotInTaskContextError(RuntimeUserError):
    """A task-only API was used outside a task."""


class OOMError(RuntimeUserError):
    """A task's process (or one of its workers) was killed for using too much memory."""


class PrimaryContainerNotFoundError(RuntimeUserError):
    pass


class RetriesExhaustedError(RuntimeUserError):
    pass


class TaskInterruptedError(RuntimeUserError):
    """The task was interrupted (Ctrl-C, SIGTERM, a node going away)."""


class CustomError(RuntimeUserError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)

    @classmethod
    def from_exception(cls, exc: BaseException) -> CustomError:
        return cls(type(exc).__name__, str(exc))


class NonRecoverableError(RuntimeUserError):
    """Raise it from a task to fail at once, without the retries the task has left."""

    def __init__(self, message: str, code: str = "NonRecoverableError") -> None:
        super().__init__(code, message)


class InvalidPackageError(RuntimeUserError):
    def __init__(self, package_name: str, original_error: Any) -> None:
        super().__init__("InvalidPackageError", f"invalid package {package_name!r}: {original_error}")
        self.package_name = package_name
        self.original_error = original_error


class RuntimeDataValidationError(RuntimeUserError):
    def __init__(self, var: str, e: Any, task_name: str = "") -> None:
        where = f" of {task_name}" if task_name else ""
        super().__init__("DataValidationError", f"{var}{where}: {e}")


class TaskTimeoutError(RuntimeUserError, TimeoutError):
    """A task attempt ran past its ``timeout``; it was cancelled and whatever its ``pre`` brought up was released.
    Also a ``TimeoutError``."""

    def __init__(self, message: str, code: str = "TaskTimeoutError") -> None:
        super().__init__(code, message)


class MaxRuntimeExceededError(TaskTimeoutError):
    """One attempt ran past ``Timeout.max_runtime``."""


class MaxQueuedTimeExceededError(TaskTimeoutError):
    """An attempt waited in a queue past ``Timeout.max_queued_time`` (remote only)."""


class DeadlineExceededError(TaskTimeoutError):
    """All attempts together ran past ``Timeout.deadline``."""


class EncodingError(FlyteError, TypeError):
    """An input or output could not be encoded to cross a process boundary (names the task and parameter)."""


class PluginNotFoundError(FlyteError, TypeError):
    """No task template is registered for a ``plugin_config``'s type."""


class RemoteTaskError(FlyteError):
    """A task run in another process failed with an exception that could not be rebuilt as its own type.

    ``type_name``, ``message`` and ``remote_traceback`` come from the error document the process wrote."""

    def __init__(self, type_name: str, message: str, remote_traceback: str = "", retriable: bool = False) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        self.retriable = retriable

    def __str__(self) -> str:
        text = f"{self.type_name}: {self.message}"
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback
        return text
