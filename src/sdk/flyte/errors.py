"""Errors the SDK raises. A user's own exception always reaches the caller as its own type; these are for what the
SDK itself detects."""

from __future__ import annotations


class FlyteError(Exception):
    """Base of the SDK's own errors."""


class TaskTimeoutError(FlyteError, TimeoutError):
    """A task attempt ran past its ``timeout``; it was cancelled and whatever its ``pre`` brought up was released."""


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
