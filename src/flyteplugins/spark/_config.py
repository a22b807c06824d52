"""The Spark plugin's configuration: ``Spark`` (PySpark tasks) and ``GenericSparkConf`` (spark-submit of a JVM app).

Both are frozen, typed structs that validate when written, so a bad value fails at the line that wrote it with the
field's name. Nothing here imports pyspark.
"""

from __future__ import annotations

import os
import re
from typing import Any

import msgspec

from flyte import PodTemplate
from flyte.extend import ConfigMeta

_MEMORY = re.compile(r"^\d+[kmgtp]?b?$", re.IGNORECASE)
_LOCAL_MASTER = re.compile(r"^local(\[(\*|[1-9]\d*)(,\s*[1-9]\d*)?\])?$")
_LOCAL_CLUSTER_MASTER = re.compile(r"^local-cluster\[[1-9]\d*,\s*[1-9]\d*,\s*[1-9]\d*\]$")
_STANDALONE_MASTER = re.compile(r"^spark://([A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$")

_POSITIVE_INT_KEYS = ("spark.executor.instances", "spark.executor.cores", "spark.driver.cores")
_MEMORY_KEYS = ("spark.executor.memory", "spark.driver.memory", "spark.executor.memoryOverhead",
                "spark.driver.memoryOverhead")

MASTERS_ALLOWED = "'local', 'local[N]', 'local[*]', 'local[N,F]', 'local-cluster[N,C,M]' or 'spark://host:port'"


def check_string_map(owner: str, field: str, value: Any) -> None:
    """Spark and Hadoop conf values are strings on the wire; a number or bool here would be silently coerced (or
    rejected) differently by each tier, so reject it where it is written."""
    if not isinstance(value, dict):
        raise TypeError(f"{owner}.{field}: expected a dict of str to str, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not key.strip():
            raise TypeError(f"{owner}.{field}: keys must be non-empty strings, got {key!r}")
        if item is None:
            raise TypeError(f"{owner}.{field}[{key!r}]: expected a string value, got None; to keep Spark's default, "
                            "leave the key out")
        if not isinstance(item, str):
            raise TypeError(
                f"{owner}.{field}[{key!r}]: expected a string value, got {type(item).__name__} {item!r}; "
                f"Spark settings are strings, write {str(item).lower() if isinstance(item, bool) else str(item)!r}"
            )


def check_master(owner: str, master: str) -> None:
    """Raise unless ``master`` is a master URL this tier can run (local modes or a standalone cluster)."""
    field = f"{owner}.spark_conf['spark.master']"
    if _LOCAL_MASTER.match(master) or _LOCAL_CLUSTER_MASTER.match(master):
        return
    if master.startswith("spark://"):
        # A standalone master may list several hosts for high availability: spark://h1:7077,h2:7077.
        hosts = master[len("spark://"):].split(",")
        for host in hosts:
            match = _STANDALONE_MASTER.match("spark://" + host)
            if match is None or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"{field}: {master!r} is not a standalone master URL; expected spark://host:port "
                                 "with a port from 1 to 65535 (several masters: spark://h1:7077,h2:7077)")
        return
    if master.startswith(("k8s://", "yarn", "mesos://")):
        raise ValueError(f"{field}: {master!r} needs a cluster manager this plugin does not drive yet; "
                         f"allowed: {MASTERS_ALLOWED}")
    raise ValueError(f"{field}: {master!r} is not a Spark master URL; allowed: {MASTERS_ALLOWED}")


def check_spark_conf(owner: str, conf: dict[str, str]) -> None:
    """Check the values Spark would only reject when the JVM starts (seconds later, with a Java stack trace)."""
    for key in _POSITIVE_INT_KEYS:
        if key in conf and not (conf[key].strip().isdigit() and int(conf[key]) >= 1):
            raise ValueError(f"{owner}.spark_conf[{key!r}]: {conf[key]!r} is not a whole number >= 1")
    for key in _MEMORY_KEYS:
        if key in conf and not _MEMORY.match(conf[key].strip()):
            raise ValueError(f"{owner}.spark_conf[{key!r}]: {conf[key]!r} is not a memory size; "
                             "use a number with an optional unit k, m, g, t (e.g. '1g', '512m', '3000M')")
    if "spark.master" in conf:
        check_master(owner, conf["spark.master"].strip())


class Spark(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """Run a task with a SparkSession, given to it as ``flyte.ctx().data["spark_session"]``.

    - ``spark_conf``: Spark settings, every one applied. ``spark.master`` picks the tier: unset means an embedded
      session (``local[N]``, N = executor instances x cores, capped at this machine's cores); ``spark://host:port``
      attaches to an existing standalone cluster and ships the run's code to it.
    - ``hadoop_conf``: Hadoop settings (``fs.s3a.endpoint``...), applied to the session's Hadoop configuration.
    - ``executor_path``: the Python that executors run (default: this interpreter).
    - ``applications_path``, ``driver_pod``, ``executor_pod``: used by the Kubernetes tier; ignored here.
    """

    __positional__ = ("spark_conf", "hadoop_conf", "executor_path", "applications_path", "driver_pod", "executor_pod")

    spark_conf: dict[str, str] = msgspec.field(default_factory=dict)
    hadoop_conf: dict[str, str] = msgspec.field(default_factory=dict)
    executor_path: str | None = None
    applications_path: str | None = None
    driver_pod: PodTemplate | None = None
    executor_pod: PodTemplate | None = None

    def __post_init__(self) -> None:
        check_string_map("Spark", "spark_conf", self.spark_conf)
        check_string_map("Spark", "hadoop_conf", self.hadoop_conf)
        check_spark_conf("Spark", self.spark_conf)
        if self.executor_path is not None and (not isinstance(self.executor_path, str) or not self.executor_path):
            raise ValueError(f"Spark.executor_path: expected a path to a Python interpreter, got {self.executor_path!r}")
        if self.applications_path is not None and not isinstance(self.applications_path, str):
            raise TypeError(f"Spark.applications_path: expected a string, got {type(self.applications_path).__name__}")
        for field in ("driver_pod", "executor_pod"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, PodTemplate):
                raise TypeError(f"Spark.{field}: expected flyte.PodTemplate or None, got {type(value).__name__}")


class GenericSparkConf(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """Run a JVM Spark application with ``spark-submit``: ``main_class`` in the jar at ``applications_path``.

    ``spark_conf`` and ``hadoop_conf`` are passed as ``--conf`` (Hadoop settings as ``spark.hadoop.*``); without a
    ``spark.master`` the application runs on ``local[N]`` as for :class:`Spark`.
    """

    main_class: str
    applications_path: str
    spark_conf: dict[str, str] = msgspec.field(default_factory=dict)
    hadoop_conf: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.main_class, str) or not re.match(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$",
                                                                self.main_class):
            raise ValueError(f"GenericSparkConf.main_class: {self.main_class!r} is not a JVM class name "
                             "(e.g. 'com.example.MyApp')")
        if not isinstance(self.applications_path, str) or not self.applications_path:
            raise ValueError("GenericSparkConf.applications_path: expected the path or URL of the application jar")
        path = self.applications_path
        if "://" not in path and not path.startswith("local:") and not path.endswith(".jar"):
            raise ValueError(f"GenericSparkConf.applications_path: {path!r} is not a jar; expected a .jar path or URL")
        check_string_map("GenericSparkConf", "spark_conf", self.spark_conf)
        check_string_map("GenericSparkConf", "hadoop_conf", self.hadoop_conf)
        check_spark_conf("GenericSparkConf", self.spark_conf)


def local_parallelism(conf: dict[str, str]) -> int:
    """Threads of an embedded ``local[N]`` master: executor instances x cores, capped at this machine's cores.
    Instances default to 2, Spark's default on Kubernetes, so a task sees the same parallelism in both tiers."""
    instances = int(conf.get("spark.executor.instances", "2"))
    cores = int(conf.get("spark.executor.cores", "1"))
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(instances * cores, available))


def resolve_master(conf: dict[str, str]) -> str:
    master = conf.get("spark.master", "").strip()
    return master or f"local[{local_parallelism(conf)}]"
