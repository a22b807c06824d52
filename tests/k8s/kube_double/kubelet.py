"""The fake kubelet and scheduler of the single node "double-node" (part of the Kubernetes API server test double).

Every pod (made by the Job controller or created directly) is taken through the documented pod lifecycle, with the
container run as a local process of this machine's Python environment instead of a container image:

* Scheduling: the pod's requests (limits where requests are absent; max(init, sum(containers))) are compared with
  the node's allocatable; too much, a resource the node lacks, or a nodeSelector the node's labels do not match
  leaves the pod Pending with ``PodScheduled=False/Unschedulable`` and a ``FailedScheduling`` Warning event. Each
  pod is checked on its own (other pods' usage is not subtracted). ``faults.hold_pods(True)`` holds new pods
  unscheduled.
* Images are not pulled. Documented magic: an invalid reference (uppercase, spaces, ``::``) -> waiting
  ``InvalidImageName``; a repository path containing ``does-not-exist`` -> ``ErrImagePull`` / ``ImagePullBackOff``
  alternating every ``image_pull_grace_s`` with ``Failed``/``BackOff`` events. Otherwise Pulled/Created/Started.
* Env: ``value``, ``valueFrom`` (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef), ``envFrom``, and
  ``$(VAR)`` expansion. A missing Secret/ConfigMap/key (not optional) -> waiting ``CreateContainerConfigError``,
  retried until it appears. The process environment is the double's own environment (``os.environ`` at start,
  standing in for the image's environment) + those + ``HOSTNAME=<pod>`` + ``KUBECONFIG=<double.kubeconfig>``,
  which stands in for the mounted service-account token.
* Volumes: emptyDir -> a per-pod temp dir; secret/configMap -> their keys written as files; hostPath -> the path
  itself; anything else -> an empty dir. Mount paths are not real (no chroot): the mapping is exposed to the process
  as ``FLYTE_DOUBLE_MOUNTS='{"/mount/path": "/actual/dir"}'``.
* Command: ``command`` + ``args`` (no image ENTRYPOINT/CMD exists here); ``python``/``python3``/``python3.X`` map
  to the double's ``sys.executable``. ``workingDir`` if it exists, else the pod's temp dir. Each container runs in
  its own process group (``start_new_session``); when its main process exits, the rest of its group is killed
  like the runtime kills the container's cgroup. Init containers run first, in order; then all containers.
* Status: Pending -> Running -> Succeeded/Failed from the containers' states (running/terminated with exitCode,
  reason Completed/Error/OOMKilled, signal); podIP/hostIP 127.0.0.1; conditions PodScheduled, Initialized,
  ContainersReady, Ready. restartPolicy OnFailure/Always restart containers (restartCount, lastState, a short
  CrashLoopBackOff between).
* Memory: the process tree's RSS is polled every 100 ms; above ``limits.memory`` the group gets SIGKILL ->
  ``OOMKilled``, exit code 137.
* Deletion: a pod with ``deletionTimestamp`` gets SIGTERM (process group), SIGKILL after
  min(grace period, 5 s), then the pod object is removed. Removal without grace kills at once.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import math
import os
import re
import shutil
import signal
import sys
import time

import psutil

from . import logs as logmod
from .quantities import parse_quantity
from .store import now_rfc3339

NODE_NAME = "double-node"
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_GRACE_CAP_S = 5.0


class MissingConfig(Exception):
    pass


def node_object(cpu: str, memory: str, gpus: int) -> dict:
    resources = {"cpu": str(cpu), "memory": str(memory), "pods": "110", "ephemeral-storage": "100Gi"}
    if gpus:
        resources["nvidia.com/gpu"] = str(gpus)
    now = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/double": "",
            },
        },
        "spec": {},
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0-kube-double",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "local://process",
            },
        },
    }


def image_problem(image: str) -> str | None:
    """The documented magic images: an invalid reference, or a repository path containing "does-not-exist"."""
    reference = image.split("@")[0]
    last = reference.rsplit("/", 1)[-1]
    repository = reference.rsplit(":", 1)[0] if ":" in last else reference
    if (
        not image
        or image != image.strip()
        or " " in image
        or "::" in image
        or repository != repository.lower()
        or repository.endswith("/")
        or repository.startswith("/")
    ):
        return "InvalidImageName"
    if "does-not-exist" in repository:
        return "ErrImagePull"
    return None


def pod_requests(spec: dict) -> dict[str, float]:
    def of(container):
        resources = container.get("resources") or {}
        out = {}
        for key, value in {**(resources.get("limits") or {}), **(resources.get("requests") or {})}.items():
            out[key] = parse_quantity(value)
        return out

    total: dict[str, float] = {}
    for container in spec.get("containers") or []:
        for key, value in of(container).items():
            total[key] = total.get(key, 0.0) + value
    for container in spec.get("initContainers") or []:
        for key, value in of(container).items():
            total[key] = max(total.get(key, 0.0), value)
    return total


class Container:
    def __init__(self, spec: dict, init: bool):
        self.spec = spec
        self.name = spec["name"]
        self.init = init
        self.state: dict = {"waiting": {"reason": "PodInitializing" if init else "ContainerCreating"}}
        self.last_state: dict = {}
        self.restart_count = 0
        self.ready = False
        self.started = False
        self.process: asyncio.subprocess.Process | None = None
        self.finished = False  # terminated and will not restart

    def status(self, image_id_prefix="docker-pullable://") -> dict:
        out = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": copy.deepcopy(self.state),
            "lastState": copy.deepcopy(self.last_state),
        }
        if self.process is not None:
            out["containerID"] = f"local://{self.process.pid}"
            out["imageID"] = image_id_prefix + self.spec.get("image", "")
        return out


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: dict):
        self.kubelet = kubelet
        meta = pod["metadata"]
        self.uid = meta["uid"]
        self.namespace = meta.get("namespace", "default")
        self.name = meta["name"]
        self.spec = copy.deepcopy(pod.get("spec") or {})
        self.init = [Container(c, True) for c in self.spec.get("initContainers") or []]
        self.main = [Container(c, False) for c in self.spec.get("containers") or []]
        self.logs: dict[str, list[logmod.ContainerLog]] = {}
        self.stopping = asyncio.Event()
        self.removed = False
        self.pgids: set[int] = set()
        self.directory = os.path.join(kubelet.root, f"{self.namespace}_{self.name}_{self.uid[:8]}")
        self.conditions: dict[str, dict] = {}
        self.phase = "Pending"
        self.start_time = None
        self.scheduled = False
        self.task: asyncio.Task | None = None
        self.mounts: dict[str, str] = {}

    # ----- store helpers
    def current(self) -> dict | None:
        pod = self.kubelet.store.get("/pods", self.namespace, self.name)
        if pod is None or pod["metadata"]["uid"] != self.uid:
            return None
        return pod

    def set_condition(self, type_: str, status: str, reason: str | None = None, message: str | None = None):
        previous = self.conditions.get(type_)
        if previous and previous["status"] == status and previous.get("reason") == reason:
            return
        cond = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self.conditions[type_] = cond

    def compute_phase(self) -> str:
        restart = self.spec.get("restartPolicy", "Always")
        if (
            any(c.finished and c.state.get("terminated", {}).get("exitCode", 0) != 0 for c in self.init)
            and restart == "Never"
        ):
            return "Failed"
        if not self.main or not all(c.finished for c in self.main):
            if any("running" in c.state or c.restart_count > 0 or "terminated" in c.state for c in self.main):
                return "Running"
            return "Pending"
        if all(c.state.get("terminated", {}).get("exitCode") == 0 for c in self.main):
            return "Succeeded"
        return "Failed"

    def publish(self) -> None:
        pod = self.current()
        if pod is None:
            return
        self.phase = self.compute_phase()
        status = copy.deepcopy(pod.get("status") or {})
        status["phase"] = self.phase
        if self.scheduled:
            status["hostIP"] = "127.0.0.1"
            status["hostIPs"] = [{"ip": "127.0.0.1"}]
            status["podIP"] = "127.0.0.1"
            status["podIPs"] = [{"ip": "127.0.0.1"}]
            status["startTime"] = self.start_time
            if self.init:
                status["initContainerStatuses"] = [c.status() for c in self.init]
            status["containerStatuses"] = [c.status() for c in self.main]
            ready = self.phase == "Running" and all(c.ready for c in self.main)
            initialized = all(c.finished and c.state.get("terminated", {}).get("exitCode") == 0 for c in self.init)
            self.set_condition(
                "Initialized",
                "True" if initialized else "False",
                None if initialized else "ContainersNotInitialized",
                None
                if initialized
                else f"containers with incomplete status: [{' '.join(c.name for c in self.init if not c.finished)}]",
            )
            finished = self.phase in ("Succeeded", "Failed")
            why = "PodCompleted" if finished else (None if ready else "ContainersNotReady")
            self.set_condition("ContainersReady", "True" if ready else "False", why)
            self.set_condition("Ready", "True" if ready else "False", why)
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
        status["conditions"] = [self.conditions[t] for t in order if t in self.conditions]
        if status == pod.get("status"):
            return
        updated = copy.deepcopy(pod)
        updated["status"] = status
        self.kubelet.store.update("/pods", updated)

    def event(self, type_, reason, message, component="kubelet", container=None):
        pod = self.current()
        if pod is not None:
            path = None
            if container is not None:
                path = f"spec.{'initContainers' if container.init else 'containers'}{{{container.name}}}"
            self.kubelet.recorder.record(pod, "Pod", "v1", type_, reason, message, component, path)

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the pod is being stopped; True when stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        return self.stopping.is_set()

    # ----- lifecycle
    async def run(self):
        try:
            await self._run()
        except asyncio.CancelledError:
            self.kill_all(signal.SIGKILL)
            raise
        except Exception:
            import traceback

            traceback.print_exc()
        finally:
            self.kill_all(signal.SIGKILL)
            for container in self.init + self.main:
                for log in self.logs.get(container.name, []):
                    if not log.done:
                        log.close()
            pod = self.current()
            if pod is not None and pod["metadata"].get("deletionTimestamp"):
                self.kubelet.collector.finish("/pods", pod)

    async def _run(self):
        faults = self.kubelet.faults
        while faults.pods_held and not self.stopping.is_set():
            await self.sleep(0.05)
        if self.stopping.is_set():
            return
        if self.spec.get("nodeName") and self.spec["nodeName"] != NODE_NAME:
            await self.stopping.wait()  # bound to a node that does not exist: nobody runs it
            return
        reason = None if self.spec.get("nodeName") else self.kubelet.unschedulable_reason(self.spec)
        if reason:
            self.set_condition("PodScheduled", "False", "Unschedulable", reason)
            self.publish()
            self.event("Warning", "FailedScheduling", reason, "default-scheduler")
            await self.stopping.wait()
            return
        pod = self.current()
        if pod is None:
            return
        if not self.spec.get("nodeName"):
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = NODE_NAME
            self.spec["nodeName"] = NODE_NAME
            self.kubelet.store.update("/pods", bound)
            self.event(
                "Normal",
                "Scheduled",
                f"Successfully assigned {self.namespace}/{self.name} to {NODE_NAME}",
                "default-scheduler",
            )
        self.scheduled = True
        self.start_time = now_rfc3339()
        self.set_condition("PodScheduled", "True")
        self.set_condition("PodReadyToStartContainers", "True")
        self.publish()
        os.makedirs(self.directory, exist_ok=True)
        while not self.stopping.is_set():
            try:
                self.prepare_volumes()
                break
            except MissingConfig as exc:
                self.event("Warning", "FailedMount", f"MountVolume.SetUp failed for volume {exc}")
                if await self.sleep(0.5):
                    return
        for container in self.init:
            while not self.stopping.is_set():
                await self.run_container(container)
                if container.state.get("terminated", {}).get("exitCode") == 0 or container.finished:
                    break
            if self.stopping.is_set() or container.state.get("terminated", {}).get("exitCode") != 0:
                self.publish()
                return
        await asyncio.gather(*(self.run_container(c) for c in self.main))
        self.publish()

    def prepare_volumes(self):
        store = self.kubelet.store
        base = os.path.join(self.directory, "volumes")
        paths = {}
        for volume in self.spec.get("volumes") or []:
            target = os.path.join(base, volume["name"])
            if "hostPath" in volume:
                paths[volume["name"]] = volume["hostPath"].get("path", target)
                continue
            os.makedirs(target, exist_ok=True)
            for kind, key, field in (("secret", "/secrets", "secretName"), ("configMap", "/configmaps", "name")):
                if kind not in volume:
                    continue
                source = volume[kind]
                obj = store.get(key, self.namespace, source.get(field, ""))
                if obj is None:
                    if source.get("optional"):
                        continue
                    raise MissingConfig(f'"{volume["name"]}" : {kind.lower()} "{source.get(field)}" not found')
                data = (
                    {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                    if kind == "secret"
                    else {
                        **{k: v.encode() for k, v in (obj.get("data") or {}).items()},
                        **{k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()},
                    }
                )
                items = source.get("items")
                mapping = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
                for item_key, rel in mapping.items():
                    if item_key not in data:
                        continue
                    path = os.path.join(target, rel)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as handle:
                        handle.write(data[item_key])
            paths[volume["name"]] = target
        self.volume_paths = paths

    def mounts_for(self, container) -> dict:
        mounts = {}
        for mount in container.spec.get("volumeMounts") or []:
            path = self.volume_paths.get(mount.get("name"))
            if path is None:
                continue
            if mount.get("subPath"):
                path = os.path.join(path, mount["subPath"])
                os.makedirs(path, exist_ok=True) if not os.path.exists(path) else None
            mounts[mount["mountPath"]] = path
        return mounts

    def resolve_env(self, container) -> dict[str, str]:
        store = self.kubelet.store
        pod = self.current() or {"metadata": {}, "spec": self.spec}
        env: dict[str, str] = {}

        def lookup(key, name, optional):
            obj = store.get(key, self.namespace, name or "")
            if obj is None and not optional:
                raise MissingConfig(f'{"secret" if key == "/secrets" else "configmap"} "{name}" not found')
            return obj

        def data_of(obj, secret):
            if obj is None:
                return {}
            if secret:
                return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()}
            return dict(obj.get("data") or {})

        for source in container.spec.get("envFrom") or []:
            for field, key in (("secretRef", "/secrets"), ("configMapRef", "/configmaps")):
                if field in source:
                    ref = source[field]
                    obj = lookup(key, ref.get("name"), ref.get("optional"))
                    for k, v in data_of(obj, key == "/secrets").items():
                        env[source.get("prefix", "") + k] = v
        for item in container.spec.get("env") or []:
            name = item["name"]
            if "valueFrom" not in item:
                env[name] = expand(str(item.get("value", "")), env)
                continue
            source = item["valueFrom"]
            for field, key in (("secretKeyRef", "/secrets"), ("configMapKeyRef", "/configmaps")):
                if field in source:
                    ref = source[field]
                    obj = lookup(key, ref.get("name"), ref.get("optional"))
                    data = data_of(obj, key == "/secrets")
                    if ref.get("key") not in data:
                        if obj is None or ref.get("optional"):
                            break
                        raise MissingConfig(
                            f"couldn't find key {ref.get('key')} in "
                            f"{'Secret' if key == '/secrets' else 'ConfigMap'} "
                            f"{self.namespace}/{ref.get('name')}"
                        )
                    env[name] = data[ref["key"]]
            if "fieldRef" in source:
                env[name] = field_ref(pod, source["fieldRef"].get("fieldPath", ""))
            if "resourceFieldRef" in source:
                env[name] = self.resource_field(container, source["resourceFieldRef"])
        return env

    def resource_field(self, container, ref) -> str:
        target = container
        if ref.get("containerName"):
            target = next((c for c in self.main + self.init if c.name == ref["containerName"]), container)
        kind, _, resource = ref.get("resource", "").partition(".")
        resources = target.spec.get("resources") or {}
        value = (resources.get(kind) or {}).get(resource)
        if value is None:
            value = self.kubelet.node_allocatable.get(resource, "0")
        divisor = parse_quantity(ref.get("divisor", "1") or "1")
        return str(max(int(math.ceil(parse_quantity(value) / divisor)), 1 if resource == "cpu" else 0))

    def waiting(self, container, reason, message=None):
        state = {"reason": reason}
        if message:
            state["message"] = message
        container.state = {"waiting": state}
        container.ready = False
        self.publish()

    async def run_container(self, container: Container):
        loop_count = 0
        while not self.stopping.is_set():
            image = container.spec.get("image", "")
            problem = image_problem(image)
            if problem == "InvalidImageName":
                message = (
                    f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": '
                    f"invalid reference format"
                )
                self.waiting(container, "InvalidImageName", message)
                self.event("Warning", "InspectFailed", message, container=container)
                await self.stopping.wait()
                return
            if problem == "ErrImagePull":
                message = (
                    f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and '
                    f'unpack image "{image}": not found'
                )
                while not self.stopping.is_set():
                    self.event("Normal", "Pulling", f'Pulling image "{image}"', container=container)
                    self.waiting(container, "ErrImagePull", message)
                    self.event("Warning", "Failed", message, container=container)
                    self.event("Warning", "Failed", "Error: ErrImagePull", container=container)
                    if await self.sleep(self.kubelet.image_pull_grace_s):
                        return
                    self.waiting(container, "ImagePullBackOff", f'Back-off pulling image "{image}"')
                    self.event("Normal", "BackOff", f'Back-off pulling image "{image}"', container=container)
                    self.event("Warning", "Failed", "Error: ImagePullBackOff", container=container)
                    if await self.sleep(self.kubelet.image_pull_grace_s):
                        return
                return
            try:
                env = self.resolve_env(container)
            except MissingConfig as exc:
                self.waiting(container, "CreateContainerConfigError", str(exc))
                self.event("Warning", "Failed", f"Error: {exc}", container=container)
                if await self.sleep(0.5):
                    return
                continue
            if loop_count == 0 and container.restart_count == 0:
                self.event(
                    "Normal", "Pulled", f'Container image "{image}" already present on machine', container=container
                )
            exit_code = await self.execute(container, env)
            loop_count += 1
            if self.stopping.is_set():
                container.finished = True
                self.publish()
                return
            restart = self.spec.get("restartPolicy", "Always")
            if container.init:
                should_restart = exit_code != 0 and restart != "Never"
            else:
                should_restart = restart == "Always" or (restart == "OnFailure" and exit_code != 0)
            if not should_restart:
                container.finished = True
                self.publish()
                return
            container.last_state = {"terminated": container.state["terminated"]}
            container.restart_count += 1
            backoff = min(0.1 * 2 ** (container.restart_count - 1), 2.0)
            self.waiting(
                container,
                "CrashLoopBackOff",
                f"back-off {backoff:g}s restarting failed container={container.name} "
                f"pod={self.name}_{self.namespace}({self.uid})",
            )
            self.event(
                "Warning",
                "BackOff",
                "Back-off restarting failed container "
                f"{container.name} in pod {self.name}_{self.namespace}({self.uid})",
                container=container,
            )
            if await self.sleep(backoff):
                return

    async def execute(self, container: Container, extra_env: dict) -> int:
        spec = container.spec
        env = dict(self.kubelet.base_env)
        env.update(extra_env)
        mounts = self.mounts_for(container)
        env["HOSTNAME"] = self.name
        env["KUBECONFIG"] = self.kubelet.kubeconfig
        env["FLYTE_DOUBLE_MOUNTS"] = json.dumps(mounts)
        argv = [expand(str(a), env) for a in (spec.get("command") or []) + (spec.get("args") or [])]
        workdir = spec.get("workingDir")
        if not workdir or not os.path.isdir(workdir):
            workdir = self.directory
        log = logmod.ContainerLog()
        self.logs.setdefault(container.name, []).append(log)
        started = now_rfc3339()
        if argv and _PYTHON.match(os.path.basename(argv[0])):
            argv[0] = sys.executable
        try:
            if not argv:
                raise FileNotFoundError("no command specified")
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            message = (
                f"failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                f'exec: "{argv[0] if argv else ""}": {exc}'
            )
            log.close()
            container.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": message,
                    "startedAt": started,
                    "finishedAt": now_rfc3339(),
                    "containerID": "local://0",
                }
            }
            container.ready = False
            self.event("Warning", "Failed", f"Error: {message}", container=container)
            self.publish()
            return 128
        container.process = process
        self.pgids.add(process.pid)
        self.kubelet.pgids.add(process.pid)
        self.event("Normal", "Created", f"Created container: {container.name}", container=container)
        self.event("Normal", "Started", f"Started container {container.name}", container=container)
        container.state = {"running": {"startedAt": started}}
        container.ready = not container.init
        container.started = True
        self.publish()
        limit = None
        memory = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        if memory is not None:
            limit = parse_quantity(memory)
        oom = False

        async def pump():
            while True:
                data = await process.stdout.read(65536)
                if not data:
                    break
                log.feed(data)

        async def watch_memory():
            nonlocal oom
            while limit is not None:
                await asyncio.sleep(0.1)
                if rss_of_tree(process.pid) > limit:
                    oom = True
                    kill_group(process.pid, signal.SIGKILL)
                    return

        reader = asyncio.ensure_future(pump())
        watcher = asyncio.ensure_future(watch_memory())
        code = await process.wait()
        watcher.cancel()
        kill_group(process.pid, signal.SIGKILL)  # the runtime kills what is left in the container
        try:
            await asyncio.wait_for(reader, 5)
        except asyncio.TimeoutError:
            reader.cancel()
        log.close()
        self.kubelet.pgids.discard(process.pid)
        terminated = {"startedAt": started, "finishedAt": now_rfc3339(), "containerID": f"local://{process.pid}"}
        if oom:
            terminated.update(exitCode=137, reason="OOMKilled", signal=9)
            self.event(
                "Warning",
                "OOMKilled",
                f"Container {container.name} was OOM-killed (memory limit {memory})",
                container=container,
            )
        elif code < 0:
            terminated.update(exitCode=128 - code, reason="Error", signal=-code)
        else:
            terminated.update(exitCode=code, reason="Completed" if code == 0 else "Error")
        container.state = {"terminated": terminated}
        container.ready = False
        if self.stopping.is_set():
            self.event("Normal", "Killing", f"Stopping container {container.name}", container=container)
        return terminated["exitCode"]

    def kill_all(self, sig) -> None:
        for pgid in list(self.pgids):
            kill_group(pgid, sig)

    async def terminate(self, grace: float) -> None:
        self.stopping.set()
        self.kill_all(signal.SIGTERM)
        deadline = time.monotonic() + min(grace, _GRACE_CAP_S)
        while time.monotonic() < deadline and any(group_alive(p) for p in self.pgids):
            await asyncio.sleep(0.05)
        self.kill_all(signal.SIGKILL)


def expand(text: str, env: dict) -> str:
    """Kubernetes $(VAR) expansion; $$ escapes; unknown references stay as written."""

    def replace(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, text)


def field_ref(pod: dict, path: str) -> str:
    meta = pod.get("metadata") or {}
    match = re.match(r"^metadata\.(labels|annotations)\['([^']*)'\]$", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName", NODE_NAME),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
        "status.podIPs": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    return str(simple.get(path) or "")


def kill_group(pgid: int, sig) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(p.info.get("status") != psutil.STATUS_ZOMBIE for p in _group_members(pgid))


def _group_members(pgid: int):
    out = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                out.append(proc)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return out


def rss_of_tree(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        total = root.memory_info().rss
        for child in root.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0


class Kubelet:
    def __init__(self, double, store, collector, recorder, root: str):
        self.double = double
        self.store = store
        self.collector = collector
        self.recorder = recorder
        self.faults = double.faults
        self.root = root
        self.kubeconfig = double.kubeconfig
        self.base_env = dict(os.environ)
        self.image_pull_grace_s = double.image_pull_grace_s
        self.node_allocatable = node_object(double.node_cpu, double.node_memory, double.node_gpus)["status"][
            "allocatable"
        ]
        self.workers: dict[str, PodWorker] = {}
        self.pgids: set[int] = set()
        store.listeners.append(self.on_event)
        collector.pod_killer = self.kill_now

    def on_event(self, key, type_, obj, prev):
        if key != "/pods":
            return
        uid = obj["metadata"]["uid"]
        if type_ == "ADDED" and uid not in self.workers:
            worker = PodWorker(self, obj)
            self.workers[uid] = worker
            worker.task = asyncio.get_event_loop().create_task(worker.run())
        elif type_ == "MODIFIED" and obj["metadata"].get("deletionTimestamp"):
            worker = self.workers.get(uid)
            if worker is not None and not worker.stopping.is_set():
                grace = float(obj["metadata"].get("deletionGracePeriodSeconds") or 0)
                asyncio.get_event_loop().create_task(worker.terminate(grace))
        elif type_ == "DELETED":
            worker = self.workers.pop(uid, None)
            if worker is not None:
                worker.removed = True
                worker.stopping.set()
                worker.kill_all(signal.SIGKILL)
                shutil.rmtree(worker.directory, ignore_errors=True)

    def kill_now(self, pod) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.stopping.set()
            worker.kill_all(signal.SIGKILL)

    def unschedulable_reason(self, spec: dict) -> str | None:
        node = self.store.get("/nodes", "", NODE_NAME)
        labels = (node or {}).get("metadata", {}).get("labels", {})
        for key, value in (spec.get("nodeSelector") or {}).items():
            if labels.get(key) != value:
                return (
                    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: "
                    "0/1 nodes are available: 1 Preemption is not helpful for scheduling."
                )
        allocatable = (node or {}).get("status", {}).get("allocatable", self.node_allocatable)
        short = []
        for resource, amount in sorted(pod_requests(spec).items()):
            if amount <= 0:
                continue
            available = parse_quantity(allocatable[resource]) if resource in allocatable else 0.0
            if amount > available:
                short.append(f"1 Insufficient {resource}")
        if short:
            return (
                f"0/1 nodes are available: {', '.join(short)}. preemption: 0/1 nodes are available: 1 No "
                f"preemption victims found for incoming pod."
            )
        return None

    async def serve_log(self, request, pod, params):
        worker = self.workers.get(pod["metadata"]["uid"])
        instances = worker.logs if worker else {}

        def waiting_reason(name):
            for status in (pod.get("status") or {}).get("containerStatuses", []) + (pod.get("status") or {}).get(
                "initContainerStatuses", []
            ):
                if status["name"] == name:
                    return (status.get("state") or {}).get("waiting", {}).get("reason")
            return None

        return await logmod.serve(request, pod, instances, waiting_reason, self.double.faults)

    def live_processes(self) -> list[int]:
        pids = []
        groups = set(self.pgids)
        for worker in self.workers.values():
            groups |= worker.pgids
        if not groups:
            return []
        for proc in psutil.process_iter(["pid", "status"]):
            try:
                if proc.info.get("status") == psutil.STATUS_ZOMBIE:
                    continue
                if os.getpgid(proc.pid) in groups:
                    pids.append(proc.pid)
            except (ProcessLookupError, psutil.Error, OSError):
                continue
        return sorted(pids)

    async def shutdown(self) -> None:
        for worker in list(self.workers.values()):
            worker.stopping.set()
            worker.kill_all(signal.SIGKILL)
        for pgid in list(self.pgids):
            kill_group(pgid, signal.SIGKILL)
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        # reap killed children
        deadline = time.monotonic() + 3
        while self.live_processes() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
