"""Config types every Kubeflow job plugin shares, and the checks its replica types use. Importing loads no engine."""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from flyte import Resources
from flyte.extend import ConfigMeta, resources_from_v1


class CleanPodPolicy(enum.Enum):
    """Which pods the Kubeflow operator deletes when the job ends."""

    NONE = "None"
    ALL = "All"
    RUNNING = "Running"


class RestartPolicy(enum.Enum):
    """When the Kubeflow operator restarts a replica's pod."""

    ALWAYS = "Always"
    FAILURE = "OnFailure"
    NEVER = "Never"


def check_count(owner: str, name: str, value: Any, minimum: int = 0, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name}: expected an int{' or None' if optional else ''}, "
                        f"got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{owner}.{name}: must be >= {minimum}, got {value}")


def check_optional_count(owner: str, name: str, value: Any, minimum: int = 0) -> None:
    check_count(owner, name, value, minimum, optional=True)


def check_optional_seconds(owner: str, name: str, value: Any, allow_zero: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{name}: expected seconds as a number or None, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{owner}.{name}: must be {'>= 0' if allow_zero else '> 0'} seconds, got {value}")


def _check_resources(owner: str, replica: Any, name: str) -> None:
    """``requests``/``limits`` as ``flyte.Resources``, or as the v1 maps the seeds use (``{"cpu": "2"}``), which
    become ``flyte.Resources``."""
    value = getattr(replica, name)
    if isinstance(value, dict):
        converted = resources_from_v1(owner, None, value if name == "requests" else None,
                                      value if name == "limits" else None)
        msgspec.structs.force_setattr(replica, name, converted)
    elif value is not None and not isinstance(value, Resources):
        raise TypeError(f"{owner}.{name}: expected flyte.Resources, a dict such as {{'cpu': '2', 'memory': '4Gi'}}, "
                        f"or None, got {type(value).__name__}")


def check_replica(owner: str, replica: Any) -> None:
    """The fields every replica type has: ``image``, ``requests``, ``limits``, ``restart_policy``."""
    if replica.image is not None and (not isinstance(replica.image, str) or not replica.image):
        raise ValueError(f"{owner}.image: expected a non-empty image name or None, got {replica.image!r}")
    _check_resources(owner, replica, "requests")
    _check_resources(owner, replica, "limits")
    if replica.restart_policy is not None and not isinstance(replica.restart_policy, RestartPolicy):
        raise TypeError(f"{owner}.restart_policy: expected a RestartPolicy (ALWAYS, FAILURE, NEVER), "
                        f"got {replica.restart_policy!r}")


def check_command(owner: str, command: Any) -> None:
    if command is None:
        return
    if isinstance(command, str) or not isinstance(command, (list, tuple)) or not command \
            or not all(isinstance(part, str) for part in command):
        raise TypeError(f"{owner}.command: expected a non-empty list of strings (argv) or None, got {command!r}")


def check_typed(owner: str, name: str, value: Any, expected: type, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, expected):
        raise TypeError(f"{owner}.{name}: expected a {expected.__name__}{' or None' if optional else ''}, "
                        f"got {type(value).__name__}")


class RunPolicy(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """Lifecycle policy of a Kubeflow job.

    On this machine ``active_deadline_seconds`` is enforced (the whole job is stopped and the task fails when it
    runs longer); the pod-related fields take effect on Kubernetes only.
    """

    __positional__ = ("clean_pod_policy", "ttl_seconds_after_finished", "active_deadline_seconds", "backoff_limit")

    clean_pod_policy: CleanPodPolicy | None = None
    ttl_seconds_after_finished: int | None = None
    active_deadline_seconds: int | None = None
    backoff_limit: int | None = None

    def __post_init__(self) -> None:
        if self.clean_pod_policy is not None and not isinstance(self.clean_pod_policy, CleanPodPolicy):
            raise TypeError(f"RunPolicy.clean_pod_policy: expected a CleanPodPolicy (NONE, ALL, RUNNING), "
                            f"got {self.clean_pod_policy!r}")
        check_optional_count("RunPolicy", "ttl_seconds_after_finished", self.ttl_seconds_after_finished)
        check_optional_count("RunPolicy", "active_deadline_seconds", self.active_deadline_seconds, minimum=1)
        check_optional_count("RunPolicy", "backoff_limit", self.backoff_limit)
