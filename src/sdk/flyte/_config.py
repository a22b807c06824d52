"""Typed, frozen settings shared by environments and tasks: resources, pod templates, retries, timeouts, reuse.

Every struct validates in its constructor (``__post_init__``) so a bad value fails where it is written, with the
field's name and what is allowed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

import msgspec

_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def check_quantity(field: str, value: Any) -> None:
    """Raise unless ``value`` is a Kubernetes quantity (``"2"``, ``"500m"``, ``"4Gi"``) or a non-negative number."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{field}: expected a quantity such as 2, '500m' or '4Gi', got {type(value).__name__}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{field}: must be >= 0, got {value}")
        return
    if not _QUANTITY.match(value):
        raise ValueError(f"{field}: {value!r} is not a quantity; use digits with an optional unit (m, Ki, Mi, Gi, ...)")


def quantity_to_float(value: str | int | float) -> float:
    """``"500m"`` -> 0.5, ``"4Gi"`` -> 4 * 2**30, ``"2"`` -> 2.0."""
    if isinstance(value, (int, float)):
        return float(value)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
    match = re.match(r"^(\d+(?:\.\d+)?)([A-Za-z]*)$", value)
    if not match or (match.group(2) and match.group(2) not in units):
        raise ValueError(f"{value!r} is not a quantity")
    return float(match.group(1)) * units.get(match.group(2), 1.0)


Quantity = str | int | float
# A value given as a pair is (request, limit), as in flyte-sdk.
QuantityOrRange = Quantity | tuple[Quantity, Quantity]


class ConfigMeta(type(msgspec.Struct)):  # type: ignore[misc]
    """Metaclass of config structs: an unknown keyword names the class, the allowed fields and the likely one
    (msgspec alone says only "Unexpected keyword argument")."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        fields = cls.__struct_fields__
        unknown = [name for name in kwargs if name not in fields]
        if unknown:
            import difflib

            hints = [f"{name!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(name, fields, 1))
                     else repr(name) for name in unknown]
            raise TypeError(f"{cls.__name__}(): unknown argument(s) {', '.join(hints)}; allowed: {', '.join(fields)}")
        return super().__call__(*args, **kwargs)


class Resources(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """What a task's container asks for. Each of cpu/memory/gpu/disk/shm is a quantity or a (request, limit) pair.

    ``Resources(cpu="2", memory="4Gi")`` requests and limits alike; ``Resources(cpu=("1", "2"))`` requests 1 and
    allows 2. ``shm="auto"`` sizes /dev/shm from the memory limit on Kubernetes.
    """

    cpu: QuantityOrRange | None = None
    memory: QuantityOrRange | None = None
    gpu: int | str | None = None
    disk: Quantity | None = None
    shm: Quantity | Literal["auto"] | None = None

    def __post_init__(self) -> None:
        for name in ("cpu", "memory"):
            value = getattr(self, name)
            if isinstance(value, tuple):
                if len(value) != 2:
                    raise ValueError(f"Resources.{name}: a range is (request, limit), got {value!r}")
                check_quantity(f"Resources.{name} request", value[0])
                check_quantity(f"Resources.{name} limit", value[1])
                if quantity_to_float(value[0]) > quantity_to_float(value[1]):
                    raise ValueError(f"Resources.{name}: request {value[0]!r} exceeds limit {value[1]!r}")
            else:
                check_quantity(f"Resources.{name}", value)
        if self.gpu is not None and not isinstance(self.gpu, str):
            if isinstance(self.gpu, bool) or not isinstance(self.gpu, int) or self.gpu < 0:
                raise ValueError(f"Resources.gpu: expected a count >= 0 or a string like 'A100:2', got {self.gpu!r}")
        check_quantity("Resources.disk", self.disk)
        if self.shm != "auto":
            check_quantity("Resources.shm", self.shm)

    def requests(self) -> dict[str, str]:
        """The Kubernetes ``requests`` map."""
        return self._side(0)

    def limits(self) -> dict[str, str]:
        """The Kubernetes ``limits`` map."""
        return self._side(1)

    def _side(self, index: int) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, key in (("cpu", "cpu"), ("memory", "memory"), ("disk", "ephemeral-storage")):
            value = getattr(self, name)
            if value is None:
                continue
            out[key] = str(value[index] if isinstance(value, tuple) else value)
        if self.gpu is not None:
            out["nvidia.com/gpu"] = str(self.gpu).split(":")[-1]
        return out

    def cpu_request(self) -> float | None:
        """CPUs requested, as a number (``"500m"`` -> 0.5)."""
        if self.cpu is None:
            return None
        return quantity_to_float(self.cpu[0] if isinstance(self.cpu, tuple) else self.cpu)

    def memory_limit_bytes(self) -> int | None:
        """The memory limit in bytes (the request when no separate limit is given)."""
        if self.memory is None:
            return None
        return int(quantity_to_float(self.memory[1] if isinstance(self.memory, tuple) else self.memory))


class PodTemplate(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """A Kubernetes pod spec as a plain dict (no kubernetes import), plus the primary container's name."""

    pod_spec: dict[str, Any] = msgspec.field(default_factory=dict)
    primary_container_name: str = "primary"
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.pod_spec, dict):
            raise TypeError(f"PodTemplate.pod_spec: expected a dict, got {type(self.pod_spec).__name__}")
        if not self.primary_container_name:
            raise ValueError("PodTemplate.primary_container_name: must be a non-empty container name")
        for field in ("labels", "annotations"):
            for key, value in getattr(self, field).items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise TypeError(f"PodTemplate.{field}: keys and values must be strings, got {key!r}: {value!r}")


class ReusePolicy(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """Keep task containers alive between calls (an actor environment)."""

    replicas: int | tuple[int, int] = 1
    idle_ttl: int | float | timedelta | None = None
    concurrency: int = 1

    def __post_init__(self) -> None:
        replicas = self.replicas if isinstance(self.replicas, tuple) else (self.replicas, self.replicas)
        if len(replicas) != 2 or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in replicas):
            raise ValueError(f"ReusePolicy.replicas: expected an int >= 1 or a (min, max) pair, got {self.replicas!r}")
        if replicas[0] > replicas[1]:
            raise ValueError(f"ReusePolicy.replicas: min {replicas[0]} exceeds max {replicas[1]}")
        if self.concurrency < 1:
            raise ValueError(f"ReusePolicy.concurrency: must be >= 1, got {self.concurrency}")


def to_seconds(field: str, value: int | float | timedelta | None) -> float | None:
    """Seconds from a number or timedelta; None stays None. Rejects negatives and non-numbers, naming the field."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{field}: expected seconds (int/float) or a timedelta, got {type(value).__name__}")
    if seconds < 0:
        raise ValueError(f"{field}: must be >= 0 seconds, got {seconds}")
    return seconds


class RetryStrategy(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """Retry a failed call ``count`` more times, waiting ``backoff`` seconds, multiplied by ``backoff_factor`` each time.

    A timeout or cancellation is not retried; any other exception of the task is.
    """

    count: int = 0
    backoff: int | float | timedelta | None = None
    backoff_factor: float = 2.0
    max_backoff: int | float | timedelta | None = None

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"RetryStrategy.count: expected an int >= 0, got {self.count!r}")
        to_seconds("RetryStrategy.backoff", self.backoff)
        to_seconds("RetryStrategy.max_backoff", self.max_backoff)
        if self.backoff_factor < 1:
            raise ValueError(f"RetryStrategy.backoff_factor: must be >= 1, got {self.backoff_factor}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        base = to_seconds("backoff", self.backoff) or 0.0
        delay = base * self.backoff_factor ** (attempt - 1)
        cap = to_seconds("max_backoff", self.max_backoff)
        return min(delay, cap) if cap is not None else delay

    @classmethod
    def of(cls, value: int | RetryStrategy | None) -> RetryStrategy:
        if value is None:
            return cls()
        if isinstance(value, RetryStrategy):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(count=value)
        raise TypeError(f"retries: expected an int or a RetryStrategy, got {type(value).__name__}")


class Timeout(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """How long one attempt may run (``max_runtime``) and, remotely, wait in a queue (``max_queued_time``).

    The attempt includes the plugin's ``pre``: a cold engine start (a JVM, a Ray head) counts against the limit."""

    max_runtime: int | float | timedelta
    max_queued_time: int | float | timedelta | None = None

    def __post_init__(self) -> None:
        to_seconds("Timeout.max_runtime", self.max_runtime)
        to_seconds("Timeout.max_queued_time", self.max_queued_time)

    @property
    def seconds(self) -> float:
        return to_seconds("Timeout.max_runtime", self.max_runtime) or 0.0

    @classmethod
    def of(cls, value: int | float | timedelta | Timeout | None) -> Timeout | None:
        if value is None or isinstance(value, Timeout):
            return value
        to_seconds("timeout", value)
        return cls(max_runtime=value)


CacheMode = Literal["auto", "override", "disable"]
_CACHE_MODES = ("auto", "override", "disable")


class Cache(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """Output caching. ``behavior="auto"`` keys the cache by task, code version and inputs; ``"override"`` always
    recomputes and stores; ``"disable"`` neither reads nor writes. ``version`` replaces the code hash."""

    behavior: CacheMode = "disable"
    version: str | None = None
    ignored_inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.behavior not in _CACHE_MODES:
            raise ValueError(f"cache: {self.behavior!r} is not one of {', '.join(_CACHE_MODES)}")

    @classmethod
    def of(cls, value: str | Cache | bool | None) -> Cache:
        if isinstance(value, Cache):
            return value
        if value is None or value is False:
            return cls()
        if value is True:
            return cls(behavior="auto")
        if isinstance(value, str):
            return cls(behavior=value)  # type: ignore[arg-type]
        raise TypeError(f"cache: expected one of {', '.join(_CACHE_MODES)} or a flyte.Cache, got {value!r}")


class Secret(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """A secret to mount: locally read from the environment variable ``as_env_var`` (default: ``key`` upper-cased)."""

    key: str
    group: str | None = None
    as_env_var: str | None = None

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("Secret.key: must be non-empty")


def normalize_env_vars(field: str, value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"{field}: expected a dict of str to str, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"{field}: keys and values must be strings, got {key!r}: {item!r}")
    return dict(value)


def normalize_secrets(value: Any) -> tuple[Secret, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            item = Secret(key=item)
        if not isinstance(item, Secret):
            raise TypeError(f"secrets: expected str or flyte.Secret, got {type(item).__name__}")
        out.append(item)
    return tuple(out)


# Kubernetes resource names the v1 ``requests``/``limits`` maps may use, and the Resources field each one maps to.
_K8S_RESOURCES = {"cpu": "cpu", "memory": "memory", "ephemeral-storage": "disk", "nvidia.com/gpu": "gpu", "gpu": "gpu"}


def check_resource_map(owner: str, field: str, value: dict[str, Any] | None) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise TypeError(f"{owner}.{field}: expected a dict such as {{'cpu': '1', 'memory': '2Gi'}}, "
                        f"got {type(value).__name__}")
    for key, quantity in value.items():
        if key not in _K8S_RESOURCES:
            raise ValueError(f"{owner}.{field}[{key!r}]: unknown resource; allowed: {', '.join(_K8S_RESOURCES)}")
        if _K8S_RESOURCES[key] == "gpu":
            if isinstance(quantity, bool) or not isinstance(quantity, (int, str)):
                raise ValueError(f"{owner}.{field}[{key!r}]: expected a GPU count, got {quantity!r}")
            continue
        check_quantity(f"{owner}.{field}[{key!r}]", quantity)


def resources_from_v1(owner: str, resources: Resources | None, requests: dict[str, Any] | None,
                     limits: dict[str, Any] | None) -> Resources | None:
    """One ``Resources`` from either spelling: ``resources=flyte.Resources(...)`` or flytekit's v1 ``requests``/``limits``
    maps (Kubernetes names: cpu, memory, ephemeral-storage, nvidia.com/gpu). A resource in both maps becomes a (request, limit) pair."""
    if resources is not None and not isinstance(resources, Resources):
        raise TypeError(f"{owner}.resources: expected flyte.Resources, got {type(resources).__name__}")
    check_resource_map(owner, "requests", requests)
    check_resource_map(owner, "limits", limits)
    if resources is not None and (requests or limits):
        raise ValueError(f"{owner}: give resources=flyte.Resources(...) or the v1 requests=/limits= maps, not both")
    if resources is not None or not (requests or limits):
        return resources
    fields: dict[str, Any] = {}
    for key in dict.fromkeys([*(requests or {}), *(limits or {})]):
        name = _K8S_RESOURCES[key]
        request, limit = (requests or {}).get(key), (limits or {}).get(key)
        if name in ("gpu", "disk"):
            fields[name] = limit if limit is not None else request
        elif request is not None and limit is not None and request != limit:
            fields[name] = (request, limit)
        else:
            fields[name] = request if request is not None else limit
    try:
        return Resources(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{owner}: requests/limits do not form valid resources: {exc}") from None
