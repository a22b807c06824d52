"""Typed, frozen settings shared by environments and tasks: resources, pod templates, retries, timeouts, reuse.

Every struct validates in its constructor (``__post_init__``) so a bad value fails where it is written, with the
field's name and what is allowed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

import msgspec

from ._devices import Device, device_count

_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_GPU_STRING = re.compile(r"^[A-Za-z][\w ]*(:\d+([-|]\d+)*)?$")


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
        order: tuple[str, ...] | None = getattr(cls, "__positional__", None)
        if args and order is not None:
            # A keyword-only struct may still take flyte-sdk's positional order, named by ``__positional__``.
            if len(args) > len(order):
                raise TypeError(f"{cls.__name__}() takes at most {len(order)} positional argument(s) "
                                f"({', '.join(order) or 'none'}), got {len(args)}")
            for name, value in zip(order, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{cls.__name__}(): {name!r} given by position and by name")
                kwargs[name] = value
            args = ()
        unknown = [name for name in kwargs if name not in fields]
        if unknown:
            import difflib

            hints = [f"{name!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(name, fields, 1))
                     else repr(name) for name in unknown]
            raise TypeError(f"{cls.__name__}(): unknown argument(s) {', '.join(hints)}; allowed: {', '.join(fields)}")
        return super().__call__(*args, **kwargs)


class Resources(msgspec.Struct, frozen=True, metaclass=ConfigMeta):
    """What a task's container asks for: ``Resources(cpu, memory, gpu, disk, shm)``. cpu and memory are a quantity
    or a (request, limit) pair; gpu a count, ``"A100:2"`` or a :func:`flyte.GPU` device.

    ``Resources(cpu="2", memory="4Gi")`` requests and limits alike; ``Resources(cpu=("1", "2"))`` requests 1 and
    allows 2. ``shm="auto"`` sizes /dev/shm from the memory limit on Kubernetes.
    """

    cpu: QuantityOrRange | None = None
    memory: QuantityOrRange | None = None
    gpu: int | str | Device | None = None
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
        if isinstance(self.gpu, str):
            if not _GPU_STRING.match(self.gpu):
                raise ValueError(f"Resources.gpu: {self.gpu!r} is not a device string such as 'A100:2' or 'T4:1'")
        elif self.gpu is not None and not isinstance(self.gpu, Device):
            if isinstance(self.gpu, bool) or not isinstance(self.gpu, int) or self.gpu < 0:
                raise ValueError(f"Resources.gpu: expected a count >= 0, a string like 'A100:2' or flyte.GPU(...), "
                                 f"got {self.gpu!r}")
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
            out["nvidia.com/gpu"] = str(device_count(self.gpu))
        return out

    def get_device(self) -> Device | None:
        """The accelerator request as a :class:`flyte.Device` (None without one)."""
        if self.gpu is None or isinstance(self.gpu, Device):
            return self.gpu
        if isinstance(self.gpu, int):
            return Device(self.gpu, "GPU") if self.gpu else None
        model = self.gpu.rsplit(":", 1)[0] if ":" in self.gpu else self.gpu
        return Device(device_count(self.gpu), "GPU", model)

    def get_shared_memory(self) -> str | None:
        return None if self.shm is None else str(self.shm)

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


class PodTemplate(msgspec.Struct, frozen=True, metaclass=ConfigMeta):
    """A Kubernetes pod spec, as a dict or a kubernetes ``V1PodSpec`` (kept as the API's dict; kubernetes is never
    imported here), plus the primary container's name, labels and annotations. flyte-sdk's positional order."""

    pod_spec: dict[str, Any] = msgspec.field(default_factory=dict)
    primary_container_name: str = "primary"
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pod_spec is None:
            msgspec.structs.force_setattr(self, "pod_spec", {})
        elif not isinstance(self.pod_spec, dict):
            if not hasattr(self.pod_spec, "attribute_map"):
                raise TypeError(f"PodTemplate.pod_spec: expected a dict or a kubernetes V1PodSpec, got "
                                f"{type(self.pod_spec).__name__}")
            msgspec.structs.force_setattr(self, "pod_spec", _k8s_model_to_dict(self.pod_spec))
        for field in ("labels", "annotations"):
            if getattr(self, field) is None:
                msgspec.structs.force_setattr(self, field, {})
        if not self.primary_container_name:
            raise ValueError("PodTemplate.primary_container_name: must be a non-empty container name")
        for field in ("labels", "annotations"):
            for key, value in getattr(self, field).items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise TypeError(f"PodTemplate.{field}: keys and values must be strings, got {key!r}: {value!r}")


def _k8s_model_to_dict(value: Any) -> Any:
    """A kubernetes (or kubernetes_asyncio) client model as the API's JSON (camelCase keys, Nones left out), read
    from the model's own ``attribute_map``; kubernetes itself is not imported."""
    if isinstance(value, (list, tuple)):
        return [_k8s_model_to_dict(item) for item in value]
    if isinstance(value, dict):
        return {key: _k8s_model_to_dict(item) for key, item in value.items()}
    if hasattr(value, "attribute_map"):
        return {json_name: _k8s_model_to_dict(getattr(value, attribute))
                for attribute, json_name in value.attribute_map.items() if getattr(value, attribute) is not None}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class ReusePolicy(msgspec.Struct, frozen=True, metaclass=ConfigMeta):
    """Keep task containers alive between calls (an actor environment): ``replicas`` (n, or (min, max)),
    ``idle_ttl`` before the whole environment goes, ``concurrency`` calls per replica, ``scaledown_ttl`` before one
    idle replica goes, ``scope`` "global" (shared across runs) or "run". Locally the environment's tasks run in this
    process, so only the validation applies."""

    replicas: int | tuple[int, int] = 2
    idle_ttl: int | float | timedelta = 30
    concurrency: int = 1
    scaledown_ttl: int | float | timedelta = 30
    scope: Literal["global", "run"] = "global"

    def __post_init__(self) -> None:
        replicas = self.replicas if isinstance(self.replicas, tuple) else (self.replicas, self.replicas)
        if len(replicas) != 2 or any(isinstance(r, bool) or not isinstance(r, int) or r < 0 for r in replicas):
            raise ValueError(f"ReusePolicy.replicas: expected an int >= 0 or a (min, max) pair, got {self.replicas!r}")
        if replicas[0] > replicas[1]:
            raise ValueError(f"ReusePolicy.replicas: min {replicas[0]} exceeds max {replicas[1]}")
        if self.concurrency < 1:
            raise ValueError(f"ReusePolicy.concurrency: must be >= 1, got {self.concurrency}")
        idle = to_seconds("ReusePolicy.idle_ttl", self.idle_ttl)
        if idle is not None and idle < 30:
            raise ValueError(f"ReusePolicy.idle_ttl: must be at least 30 seconds, got {idle:g}")
        to_seconds("ReusePolicy.scaledown_ttl", self.scaledown_ttl)
        if self.scope not in ("global", "run"):
            raise ValueError(f"ReusePolicy.scope: {self.scope!r}; allowed: 'global', 'run'")

    @property
    def min_replicas(self) -> int:
        return self.replicas[0] if isinstance(self.replicas, tuple) else self.replicas

    @property
    def max_replicas(self) -> int:
        return self.replicas[1] if isinstance(self.replicas, tuple) else self.replicas

    def get_scaledown_ttl(self) -> timedelta | None:
        seconds = to_seconds("ReusePolicy.scaledown_ttl", self.scaledown_ttl)
        return None if seconds is None else timedelta(seconds=seconds)


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


class Backoff(msgspec.Struct, frozen=True, metaclass=ConfigMeta):
    """Wait ``base * factor**n`` before retry n (0-based), at most ``cap``."""

    base: int | float | timedelta
    factor: float = 1.0
    cap: int | float | timedelta | None = None

    def __post_init__(self) -> None:
        to_seconds("Backoff.base", self.base)
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, float)) or not 1 <= self.factor < 1e308:
            raise ValueError(f"Backoff.factor: must be a finite number >= 1, got {self.factor!r}")
        to_seconds("Backoff.cap", self.cap)
        if self.factor > 1 and self.cap is None:
            raise ValueError("Backoff.cap: required when factor > 1 (the waits would grow without bound)")

    def compute_delay(self, n: int) -> timedelta:
        seconds = (to_seconds("base", self.base) or 0.0) * self.factor ** n
        cap = to_seconds("cap", self.cap)
        return timedelta(seconds=min(seconds, cap) if cap is not None else seconds)


class RetryStrategy(msgspec.Struct, frozen=True, metaclass=ConfigMeta):
    """Retry a failed call ``count`` more times. ``backoff`` is a :class:`flyte.Backoff`, or seconds to wait before
    the first retry, multiplied by ``backoff_factor`` for each later one (at most ``max_backoff``).

    A timeout or cancellation is not retried; any other exception of the task is.
    """

    count: int = 0
    backoff: Backoff | int | float | timedelta | None = None
    backoff_factor: float = 2.0
    max_backoff: int | float | timedelta | None = None

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"RetryStrategy.count: expected an int >= 0, got {self.count!r}")
        if not isinstance(self.backoff, Backoff):
            to_seconds("RetryStrategy.backoff", self.backoff)
        to_seconds("RetryStrategy.max_backoff", self.max_backoff)
        if self.backoff_factor < 1:
            raise ValueError(f"RetryStrategy.backoff_factor: must be >= 1, got {self.backoff_factor}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if isinstance(self.backoff, Backoff):
            return self.backoff.compute_delay(attempt - 1).total_seconds()
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


class Timeout(msgspec.Struct, frozen=True, metaclass=ConfigMeta):
    """How long one attempt may run (``max_runtime``), wait in a queue (``max_queued_time``, remote only), and how
    long all attempts together may take (``deadline``). Seconds or timedeltas; None or 0 means no limit.

    The attempt includes the plugin's ``pre``: a cold engine start (a JVM, a Ray head) counts against the limit."""

    max_runtime: int | float | timedelta | None = None
    max_queued_time: int | float | timedelta | None = None
    deadline: int | float | timedelta | None = None

    def __post_init__(self) -> None:
        to_seconds("Timeout.max_runtime", self.max_runtime)
        to_seconds("Timeout.max_queued_time", self.max_queued_time)
        to_seconds("Timeout.deadline", self.deadline)

    @property
    def seconds(self) -> float:
        """The per-attempt limit in seconds (0: none)."""
        return to_seconds("Timeout.max_runtime", self.max_runtime) or 0.0

    @property
    def deadline_seconds(self) -> float:
        """The limit on all attempts together, in seconds (0: none)."""
        return to_seconds("Timeout.deadline", self.deadline) or 0.0

    @classmethod
    def of(cls, value: int | float | timedelta | Timeout | None) -> Timeout | None:
        if value is None or isinstance(value, Timeout):
            return value
        if not to_seconds("timeout", value):
            return None  # 0: no limit, flyte-sdk's default
        return cls(max_runtime=value)


CacheMode = Literal["auto", "override", "disable"]
_CACHE_MODES = ("auto", "override", "disable")


# Spellings flyte-sdk accepts for the two ends of the cache switch.
_CACHE_ALIASES = {"enable": "auto", "enabled": "auto", "on": "auto", "true": "auto", "yes": "auto",
                  "off": "disable", "false": "disable", "no": "disable", "none": "disable"}


class Cache(msgspec.Struct, frozen=True, metaclass=ConfigMeta):
    """Output caching: ``Cache("auto")`` keys the cache by task, a hash of the function's source and the inputs;
    ``"override"`` uses ``version_override`` as the version instead of the hash (the source hash when it is not
    given); ``"disable"`` neither reads nor writes. ``ignored_inputs`` are left out of the key, ``salt`` starts a
    separate namespace, ``serialize`` makes concurrent calls with the same key wait for the first one's result.
    ``policies`` (objects with ``get_version(salt, params)``) and ``max_age`` are recorded for remote runs."""

    behavior: CacheMode = "disable"
    version_override: str | None = None
    serialize: bool = False
    ignored_inputs: tuple[str, ...] | str = ()
    salt: str = ""
    policies: Any = None
    max_age: int | float | timedelta | None = None

    def __post_init__(self) -> None:
        behavior = self.behavior.lower() if isinstance(self.behavior, str) else self.behavior
        behavior = _CACHE_ALIASES.get(behavior, behavior)
        if behavior not in _CACHE_MODES:
            raise ValueError(f"Cache.behavior: {self.behavior!r} is not one of {', '.join(_CACHE_MODES)} "
                             f"(or on/off, true/false, enabled)")
        msgspec.structs.force_setattr(self, "behavior", behavior)
        if isinstance(self.ignored_inputs, str):
            msgspec.structs.force_setattr(self, "ignored_inputs", (self.ignored_inputs,))
        to_seconds("Cache.max_age", self.max_age)

    @property
    def version(self) -> str | None:
        """The explicit version (``version_override``), if any."""
        return self.version_override

    def is_enabled(self) -> bool:
        return self.behavior != "disable"

    def get_ignored_inputs(self) -> tuple[str, ...]:
        return tuple(self.ignored_inputs)

    @classmethod
    def of(cls, value: str | Cache | bool | None) -> Cache:
        if isinstance(value, Cache):
            return value
        if value is None or value is False:
            return cls()
        if value is True:
            return cls(behavior="auto")
        if isinstance(value, str):
            return cls(value)  # type: ignore[arg-type]
        raise TypeError(f"cache: expected one of {', '.join(_CACHE_MODES)} or a flyte.Cache, got {value!r}")


_SECRETS_MOUNT = "/etc/flyte/secrets"
_ENV_VAR_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class Secret(msgspec.Struct, frozen=True, metaclass=ConfigMeta):
    """A secret the task needs: ``Secret(key, group=None, mount=None, as_env_var=None)``. Locally its value is read
    from the environment variable ``as_env_var``, by default ``GROUP_KEY`` (or ``KEY``) upper-cased with ``-`` as
    ``_``, as on a Flyte backend; ``mount`` may only be ``/etc/flyte/secrets``."""

    key: str
    group: str | None = None
    mount: str | None = None
    as_env_var: str | None = None

    def __post_init__(self) -> None:
        if not self.key or not isinstance(self.key, str):
            raise ValueError(f"Secret.key: must be a non-empty string, got {self.key!r}")
        if self.mount is not None:
            if str(self.mount) != _SECRETS_MOUNT:
                raise ValueError(f"Secret.mount: {str(self.mount)!r}; allowed: {_SECRETS_MOUNT!r}")
            msgspec.structs.force_setattr(self, "mount", str(self.mount))
        elif self.as_env_var is None:
            name = f"{self.group}_{self.key}" if self.group else self.key
            msgspec.structs.force_setattr(self, "as_env_var", name.replace("-", "_").upper())
        if self.as_env_var is not None and not _ENV_VAR_NAME.match(self.as_env_var):
            raise ValueError(f"Secret.as_env_var: {self.as_env_var!r} is not an environment variable name "
                             "(upper-case letters, digits and _, not starting with a digit)")


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
            item = Secret(item)
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
            if name == "gpu" and isinstance(fields[name], str) and fields[name].isdigit():
                fields[name] = int(fields[name])  # Kubernetes quantities are strings: "nvidia.com/gpu": "1"
        elif request is not None and limit is not None and request != limit:
            fields[name] = (request, limit)
        else:
            fields[name] = request if request is not None else limit
    try:
        return Resources(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{owner}: requests/limits do not form valid resources: {exc}") from None
