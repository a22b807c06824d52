"""The job's replicas and the ``TF_CONFIG`` each one gets, as the Kubeflow training operator writes it.

``TF_CONFIG`` is ``{"cluster": {type: [host:port, ...]}, "task": {"type": type, "index": i}, "environment": "cloud"}``;
the cluster lists every replica but the evaluators (they are not part of the training cluster), and a job of a
single replica gets no ``TF_CONFIG`` (it trains alone). A replica process also carries ``FLYTE_TF_REPLICA`` (its type),
set by the embedded launcher and by the TFJob builder, which tells it to run the function instead of a job.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._config import TfJob

REPLICA_ENV = "FLYTE_TF_REPLICA"
TYPES = ("chief", "ps", "worker", "evaluator")  # TF_CONFIG's names, the order replicas start in
_CHIEFS = ("chief", "master")  # the operator's Master is a chief by another name


@dataclass(frozen=True, order=True)
class Replica:
    type: str
    index: int

    def __str__(self) -> str:
        return f"{self.type} {self.index}"


def replicas_of(config: TfJob) -> list[Replica]:
    return [Replica(kind, index) for kind in TYPES for index in range(getattr(config, kind).replicas)]


def primary_of(config: TfJob) -> Replica:
    """The replica whose value is the task's and whose success ends the job: the chief, else worker 0."""
    return Replica("chief", 0) if config.chief.replicas else Replica("worker", 0)


def serves(config: TfJob, replica: Replica) -> bool:
    """Whether the replica serves until stopped rather than finishing its own work: parameter servers, and the
    workers of a chief + parameter server job (``ParameterServerStrategy``, where the chief drives them)."""
    return replica.type == "ps" or (replica.type == "worker" and bool(config.chief.replicas and config.ps.replicas))


def distributed(config: TfJob) -> bool:
    """The operator gives no TF_CONFIG to a job of one replica."""
    return len(replicas_of(config)) != 1


def cluster_spec(addresses: Mapping[Replica, str]) -> dict[str, list[str]]:
    """``{type: [address of index 0, 1, ...]}`` for every replica but the evaluators."""
    cluster: dict[str, list[str]] = {}
    for replica in sorted(addresses, key=lambda r: (TYPES.index(r.type), r.index)):
        if replica.type != "evaluator":
            cluster.setdefault(replica.type, []).append(addresses[replica])
    return cluster


def tf_config(cluster: dict[str, list[str]], replica: Replica) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": replica.type, "index": replica.index},
                       "environment": "cloud"})


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on every interface right now, chosen at random below the kernel's ephemeral
    range. TensorFlow's gRPC servers bind them only once TensorFlow is up, seconds later: ports there are not handed
    out to outgoing connections meanwhile (a port from ``bind(0)`` is), and none handed out by this process in the
    last minutes is given again (two jobs starting together)."""
    low, _ = _ephemeral_range()
    now = time.monotonic()
    for port, when in list(_handed_out.items()):
        if now - when > _REUSE_AFTER_S:
            del _handed_out[port]
    ports: list[int] = []
    candidates = random.sample(range(10000, low), min(2000, low - 10000)) if low > 11000 else []
    for port in candidates:
        if len(ports) == count:
            break
        if port not in ports and port not in _handed_out and _bindable(port):
            ports.append(port)
    while len(ports) < count:  # a machine whose ephemeral range leaves no room below it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        if port not in ports:
            ports.append(port)
    _handed_out.update(dict.fromkeys(ports, now))
    return ports


_handed_out: dict[int, float] = {}
_REUSE_AFTER_S = 300.0


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            low, high = (int(part) for part in handle.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Identity:
    """What a replica process knows of itself: its type and index and the TF_CONFIG it was given (None alone)."""

    type: str
    index: int
    tf_config: dict[str, Any] | None

    @property
    def primary(self) -> bool:
        if self.type in _CHIEFS:
            return True
        cluster = (self.tf_config or {}).get("cluster") or {}
        return self.type == "worker" and self.index == 0 and not any(cluster.get(kind) for kind in _CHIEFS)


def identity_from(environ: Mapping[str, str]) -> Identity | None:
    """The replica this process is (TF_CONFIG's task, else the type ``FLYTE_TF_REPLICA`` names, index 0), or None
    when it is not one."""
    kind = environ.get(REPLICA_ENV)
    if not kind:
        return None
    raw = environ.get("TF_CONFIG")
    if not raw:
        return Identity(kind, 0, None)
    config = json.loads(raw)
    task = config.get("task") or {}
    return Identity(str(task.get("type", kind)), int(task.get("index", 0)), config)
