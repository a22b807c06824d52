"""A fake RayJob operator: imitates KubeRay 1.x's RayJob controller (``ray.io/v1``, KubeRay v1.3-1.7).

What it does (as ``ray-operator/controllers/ray/rayjob_controller.go`` does):

* validation first (``validateRayJobSpec``): a name longer than 47 characters, ``ttlSecondsAfterFinished`` < 0 or
  > 0 with ``shutdownAfterJobFinishes`` false, neither ``rayClusterSpec`` nor ``clusterSelector``,
  ``shutdownAfterJobFinishes`` with ``clusterSelector``, a ``submissionMode`` other than K8sJobMode / HTTPMode /
  InteractiveMode / SidecarMode, ``activeDeadlineSeconds`` <= 0 or ``backoffLimit`` < 0 -> ``status:
  {jobDeploymentStatus: ValidationFailed, reason: ValidationFailed, message: <why>}``, never left;
* otherwise ``jobDeploymentStatus: Initializing`` with ``startTime``, ``jobId`` (``<name>-<5 chars>``),
  ``rayClusterName`` (``<name>-<5 chars>``) and the cluster's pods: the head pod ``<cluster>-head`` from
  ``rayClusterSpec.headGroupSpec.template`` (labels: the template's + ``ray.io/cluster``, ``ray.io/node-type:
  head``, ``ray.io/group: headgroup``, ``ray.io/is-ray-node: "yes"``, ``app.kubernetes.io/created-by:
  kuberay-operator``, ``app.kubernetes.io/name: kuberay``), whose first container (the Ray container, as KubeRay
  takes it) runs a real ``ray start --head --block`` (``--port``/``--dashboard-port`` and every other port a free
  one; ``--include-dashboard=false``; ``--num-cpus`` from ``rayStartParams["num-cpus"]``, default 1;
  ``--object-store-memory`` 100 MB) with the template's env; once the head's GCS port answers, ``replicas`` worker
  pods ``<cluster>-<group>-worker-<5 chars>`` per ``workerGroupSpecs[i]`` (labels ``ray.io/node-type: worker``,
  ``ray.io/group: <groupName>``) running ``ray start --address=127.0.0.1:<gcs port> --block --num-cpus 1``;
* when the head answers and every node is ready (its ``ray start`` printed "Ray runtime started", standing in for
  KubeRay's readiness probes): the submitter, a batch Job named ``<rayjob>`` (K8sJobMode, the
  default; HTTPMode and SidecarMode are run the same way) with the labels ``ray.io/originated-from-crd: RayJob``,
  ``ray.io/originated-from-cr-name``, from ``submitterPodTemplate`` when given (its first container), else a
  container ``ray-job-submitter``; its command is ``/bin/bash -lc -- 'export PATH=<venv bin>:$PATH; <entrypoint>'``;
  ``jobDeploymentStatus: Running``, ``jobStatus: PENDING``, then ``RUNNING`` while the submitter pod runs;
* when the submitter Job completes: ``jobStatus: SUCCEEDED`` / ``jobDeploymentStatus: Complete``; when it fails:
  ``FAILED`` / ``Failed`` with ``reason: AppFailed`` and a message; ``endTime``, ``succeeded``/``failed`` counts;
  ``spec.activeDeadlineSeconds`` -> ``Failed``/``DeadlineExceeded``; a cluster that is not up within
  ``preRunningDeadlineSeconds`` (when set: KubeRay has no default) -> ``Failed``/``PreRunningDeadlineExceeded``;
* ``shutdownAfterJobFinishes: true``: ``ttlSecondsAfterFinished`` (default 0) seconds after ``endTime`` the cluster
  is deleted (the head and worker pods; every Ray process of the cluster is then stopped, see below); the RayJob
  and its submitter Job stay, as KubeRay's default. Like KubeRay with its operator environment variable
  ``DELETE_RAYJOB_CR_AFTER_JOB_FINISHES=true``, setting that variable in the double's environment (or the class
  attribute ``delete_rayjob_after_finish``) deletes the RayJob itself instead.

Simplified (document-level differences from KubeRay):

* no RayCluster custom resource and no head Service: pods are owned by the RayJob directly; the GCS address is
  ``127.0.0.1:<free port>`` instead of ``<cluster>-head-svc:6379``;
* the submitter runs the entrypoint as a Ray driver itself (``RAY_ADDRESS=127.0.0.1:<gcs port>``, so
  ``ray.init()`` joins the cluster) instead of ``ray job submit`` through the dashboard (which needs the
  dashboard); so the submitter pod's log *is* the driver log. What the job supervisor on the head would do is done
  there first (``ray_node.py job``): ``runtimeEnvYAML`` (also handed over as ``RAY_RUNTIME_ENV_YAML``) is the job's
  runtime env, a remote ``working_dir`` (``s3://...zip``) is downloaded and unpacked by Ray's own code and the
  entrypoint runs in it, its ``env_vars`` are set, and ``RAY_JOB_CONFIG_JSON_ENV_VAR`` carries the job config, so
  the workers' runtime-env agents fetch the ``working_dir`` from the store themselves and a driver whose
  ``ray.init(runtime_env=...)`` repeats a field of the job's fails as on Ray. As KubeRay's driver runs on the head,
  the submitter's container gets the head container's ``env``, ``envFrom`` and ``volumeMounts`` (the head pod's
  volumes, service account and image pull secrets too) instead of its own (also ``RAY_JOB_SUBMISSION_ID=<jobId>``);
  its Job's ``backoffLimit`` is ``submitterConfig.backoffLimit`` or 0 (KubeRay: 2), since a retry here re-runs the
  workload;
* ``clusterSelector`` (an existing RayCluster) is accepted by validation but no RayCluster runs here, so such a job
  stays ``Initializing`` (``Failed``/``PreRunningDeadlineExceeded`` with a deadline); InteractiveMode waits (``Waiting``) for a ``jobId`` forever;
  no suspend, deletionStrategy, autoscaling, retries (``backoffLimit``) of the whole RayJob, or dashboardURL;
* test hook: ``reject_next(message)`` makes the next RayJob fail validation with that message (the SDK builds no
  spec KubeRay refuses, so its handling of ValidationFailed is tested through this);
* Ray processes: ``ray start --block`` runs raylet, gcs_server, the dashboard agent, ... as its children in the
  pod's process group, so the kubelet's SIGTERM/SIGKILL of the group stops them. As a ``ray stop`` equivalent,
  whatever process still names the cluster's scratch folder (its ``--temp-dir``, a short ``/tmp/kd-*`` folder, as
  Unix socket paths are limited to 107 bytes; also its pods' ``TMPDIR``) in its command line or environment is
  killed a few seconds after the cluster is deleted and when the RayJob goes; the folder is then removed.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import sys
import time

import psutil

from .base import VENV_BIN, Operator, free_port, parse_time, pod_phase, port_open, set_env

MODES = ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")
# every Ray process here: no token authentication (a ~/.ray/auth_token would switch it on), and 127.0.0.1 as the
# node address (Ray otherwise replaces a loopback --node-ip-address with this machine's outward address)
# (for the head and worker nodes through ray_node.py, for the submitter/driver through RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER)
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
RAY_CLI = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_node.py")]
COMMON_LABELS = {"app.kubernetes.io/created-by": "kuberay-operator", "app.kubernetes.io/name": "kuberay"}


def validate(rayjob) -> str | None:
    meta, spec = rayjob["metadata"], rayjob.get("spec") or {}
    if len(meta["name"]) > 47:
        return f"The RayJob metadata.name {meta['name']} should be no more than 47 characters"
    ttl = int(spec.get("ttlSecondsAfterFinished") or 0)
    if ttl < 0:
        return "TTLSecondsAfterFinished must be a non-negative integer"
    if not spec.get("shutdownAfterJobFinishes") and ttl > 0:
        return (
            "a RayJob with shutdownAfterJobFinishes set to false is not allowed to be set with "
            "a non-zero ttlSecondsAfterFinished"
        )
    if spec.get("shutdownAfterJobFinishes") and spec.get("clusterSelector"):
        return "The RayJob with clusterSelector does not support ShutdownAfterJobFinishes"
    if not spec.get("rayClusterSpec") and not spec.get("clusterSelector"):
        return "one of RayClusterSpec or ClusterSelector must be set"
    mode = spec.get("submissionMode") or "K8sJobMode"
    if mode not in MODES:
        return f"invalid SubmissionMode {mode!r}: must be one of {', '.join(MODES)}"
    if spec.get("activeDeadlineSeconds") is not None and int(spec["activeDeadlineSeconds"]) <= 0:
        return f"activeDeadlineSeconds must be a positive integer, got {spec['activeDeadlineSeconds']}"
    if spec.get("backoffLimit") is not None and int(spec["backoffLimit"]) < 0:
        return f"backoffLimit must be a non-negative integer, got {spec['backoffLimit']}"
    return None


def kill_marked(marker: str) -> list[int]:
    """Kill (SIGKILL) every process naming ``marker`` in its command line or environment; their pids."""
    killed = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == me:
            continue
        try:
            found = any(marker in arg for arg in proc.info.get("cmdline") or [])
            if not found:
                env = proc.environ()
                found = env.get("TMPDIR") == marker or marker in env.get("RAY_TMPDIR", "")
            if found and proc.status() != psutil.STATUS_ZOMBIE:
                proc.send_signal(signal.SIGKILL)
                killed.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return killed


class RayJobOperator(Operator):
    key = "ray.io/rayjobs"
    component = "rayjob-controller"
    short_scratch = True
    delete_rayjob_after_finish = os.environ.get("DELETE_RAYJOB_CR_AFTER_JOB_FINISHES", "").lower() == "true"

    def __init__(self, double):
        super().__init__(double)
        self.injected_problems: list[str] = []

    def reject_next(self, message: str, n: int = 1) -> None:
        """Test hook: the next ``n`` RayJobs fail validation with ``message``."""
        self.injected_problems.extend([message] * n)

    def cleanup_scratch(self, uid):
        path = self.scratch_dirs.get(uid)
        if path:
            kill_marked(path)
        super().cleanup_scratch(uid)

    def reconcile(self, rayjob):
        meta = rayjob["metadata"]
        if meta.get("deletionTimestamp"):
            return
        spec = rayjob.get("spec") or {}
        status = copy.deepcopy(rayjob.get("status") or {})
        phase = status.get("jobDeploymentStatus", "")
        name = meta["name"]
        if phase == "ValidationFailed":
            return
        if not phase:
            problem = validate(rayjob) or (self.injected_problems.pop(0) if self.injected_problems else None)
            if problem:
                status.update(jobDeploymentStatus="ValidationFailed", reason="ValidationFailed", message=problem)
                self.event(rayjob, "Warning", "ValidationFailed", problem)
                self.write_status(rayjob, status)
                return
            status.update(
                jobDeploymentStatus="Initializing",
                startTime=self.now(),
                jobId=spec.get("jobId") or f"{name}-{self.suffix()}",
                rayClusterName=f"{name}-{self.suffix()}",
                jobStatus="",
            )
            if spec.get("rayClusterSpec"):
                self.create_head(rayjob, status["rayClusterName"])
            self.write_status(rayjob, status)
            self.requeue_after(rayjob, 0.2)
            return
        if phase in ("Complete", "Failed"):
            self.after_finish(rayjob, status)
            return
        if phase == "Waiting":
            return
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None:
            remaining = float(deadline) - (time.time() - parse_time(status["startTime"]))
            if remaining <= 0:
                self.end(rayjob, status, "FAILED", "Failed", "DeadlineExceeded",
                         f"The RayJob has passed the activeDeadlineSeconds. StartTime: {status['startTime']}. "
                         f"ActiveDeadlineSeconds: {deadline}")
                return
            self.requeue_after(rayjob, remaining + 0.05)
        if phase == "Initializing":
            self.initializing(rayjob, status)
        elif phase == "Running":
            self.running(rayjob, status)

    # ----- cluster
    def ports(self, rayjob) -> dict:
        mem = self.memory(rayjob)
        if "gcs" not in mem:
            mem["gcs"] = free_port()
        return mem

    def node_args(self) -> list[str]:
        return [
            "--node-ip-address=127.0.0.1",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
        ]

    def cluster_labels(self, cluster, node_type, group) -> dict:
        return {
            **COMMON_LABELS,
            "ray.io/cluster": cluster,
            "ray.io/node-type": node_type,
            "ray.io/group": group,
            "ray.io/is-ray-node": "yes",
            "ray.io/identifier": f"{cluster}-{node_type}",
        }

    def ray_template(self, rayjob, template, argv, env) -> dict:
        template = copy.deepcopy(template or {})
        pod_spec = template.setdefault("spec", {})
        containers = pod_spec.setdefault("containers", [])
        if not containers:
            containers.append({"name": "ray", "image": "rayproject/ray"})
        container = containers[0]
        container["command"] = argv
        container.pop("args", None)
        set_env(container, env)
        set_env(container, self.base_env(rayjob), override=False)
        return template

    def create_head(self, rayjob, cluster):
        spec = rayjob.get("spec") or {}
        head = (spec.get("rayClusterSpec") or {}).get("headGroupSpec") or {}
        params = head.get("rayStartParams") or {}
        mem = self.ports(rayjob)
        scratch = self.scratch(rayjob)
        argv = [
            *RAY_CLI, "start", "--head", "--block",
            f"--port={mem['gcs']}",
            f"--dashboard-port={free_port()}",
            "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
            f"--num-cpus={params.get('num-cpus', '1')}",
            f"--temp-dir={os.path.join(scratch, 'ray')}",
            *self.node_args(),
        ]
        if params.get("num-gpus") is not None:
            argv.append(f"--num-gpus={params['num-gpus']}")
        env = {"RAY_CLUSTER_NAME": cluster, "RAY_ADDRESS": f"127.0.0.1:{mem['gcs']}", **RAY_ENV}
        template = self.ray_template(rayjob, head.get("template"), argv, env)
        try:
            self.create_pod(rayjob, f"{cluster}-head", template, self.cluster_labels(cluster, "head", "headgroup"))
        except Exception as exc:
            self.event(rayjob, "Warning", "FailedToCreateHeadPod", str(exc))

    def create_workers(self, rayjob, cluster):
        spec = rayjob.get("spec") or {}
        mem = self.ports(rayjob)
        pods = self.owned(rayjob)
        for group in (spec.get("rayClusterSpec") or {}).get("workerGroupSpecs") or []:
            group_name = group.get("groupName", "workergroup")
            have = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get("ray.io/group") == group_name)
            wanted = int(group.get("replicas", group.get("minReplicas", 0)) or 0) * int(group.get("numOfHosts", 1))
            params = group.get("rayStartParams") or {}
            for _ in range(wanted - have):
                argv = [
                    *RAY_CLI, "start", f"--address=127.0.0.1:{mem['gcs']}", "--block",
                    f"--num-cpus={params.get('num-cpus', '1')}",
                    *self.node_args(),
                ]
                env = {"RAY_CLUSTER_NAME": cluster, "RAY_ADDRESS": f"127.0.0.1:{mem['gcs']}", **RAY_ENV}
                template = self.ray_template(rayjob, group.get("template"), argv, env)
                try:
                    self.create_pod(rayjob, f"{cluster}-{group_name}-worker-{self.suffix()}", template,
                                    self.cluster_labels(cluster, "worker", group_name))
                except Exception as exc:
                    self.event(rayjob, "Warning", "FailedToCreateWorkerPod", str(exc))

    def cluster_pods(self, rayjob) -> list[dict]:
        return [p for p in self.owned(rayjob) if (p["metadata"].get("labels") or {}).get("ray.io/node-type")]

    def initializing(self, rayjob, status):
        spec = rayjob.get("spec") or {}
        cluster = status["rayClusterName"]
        limit = spec.get("preRunningDeadlineSeconds")
        if limit is not None and time.time() - parse_time(status["startTime"]) >= float(limit):
            self.end(rayjob, status, "", "Failed", "PreRunningDeadlineExceeded",
                     f"The RayJob has passed the preRunningDeadlineSeconds. StartTime: {status['startTime']}. "
                     f"PreRunningDeadlineSeconds: {int(limit)}")
            return
        self.requeue_after(rayjob, 0.2)
        if not spec.get("rayClusterSpec"):
            return
        mem = self.ports(rayjob)
        head = self.store.get("/pods", rayjob["metadata"].get("namespace", ""), f"{cluster}-head")
        if head is None or pod_phase(head) != "Running" or not port_open(mem["gcs"]):
            return
        if not mem.get("workers"):
            mem["workers"] = True
            self.create_workers(rayjob, cluster)
            return
        # KubeRay waits for a ready RayCluster: every node's `ray start` has reported the node up
        if any(pod_phase(p) != "Running" or not self.log_contains(p, "Ray runtime started")
               for p in self.cluster_pods(rayjob)):
            return
        mode = spec.get("submissionMode") or "K8sJobMode"
        if mode == "InteractiveMode":
            status["jobDeploymentStatus"] = "Waiting"
            self.write_status(rayjob, status)
            return
        try:
            self.create_submitter(rayjob, status)
        except Exception as exc:
            self.event(rayjob, "Warning", "FailedToCreateRayJobSubmitter", str(exc))
            return
        status.update(jobDeploymentStatus="Running", jobStatus="PENDING")
        self.write_status(rayjob, status)

    def create_submitter(self, rayjob, status):
        spec = rayjob.get("spec") or {}
        name = rayjob["metadata"]["name"]
        if self.store.get("batch/jobs", rayjob["metadata"].get("namespace", ""), name) is not None:
            return
        mem = self.ports(rayjob)
        template = copy.deepcopy(spec.get("submitterPodTemplate") or {})
        pod_spec = template.setdefault("spec", {})
        containers = pod_spec.setdefault("containers", [])
        if not containers:
            head = ((spec.get("rayClusterSpec") or {}).get("headGroupSpec") or {}).get("template") or {}
            image = ((head.get("spec") or {}).get("containers") or [{}])[0].get("image", "rayproject/ray")
            containers.append({"name": "ray-job-submitter", "image": image})
        container = containers[0]
        self.as_on_head(spec, pod_spec, container)
        entrypoint = spec.get("entrypoint") or "true"
        container["command"] = [*RAY_CLI, "job", "--", f'export PATH="{VENV_BIN}:$PATH"; {entrypoint}']
        container.pop("args", None)
        env = {"RAY_ADDRESS": f"127.0.0.1:{mem['gcs']}", "RAY_JOB_SUBMISSION_ID": status["jobId"],
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **RAY_ENV}
        if spec.get("runtimeEnvYAML"):
            env["RAY_RUNTIME_ENV_YAML"] = spec["runtimeEnvYAML"]
        set_env(container, env)
        set_env(container, self.base_env(rayjob), override=False)
        pod_spec["restartPolicy"] = "Never"
        labels = {**COMMON_LABELS, "ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": name}
        template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
        backoff = int((spec.get("submitterConfig") or {}).get("backoffLimit", 0))
        self.create_job(rayjob, name, {"backoffLimit": backoff, "template": template}, labels)

    @staticmethod
    def as_on_head(spec, pod_spec, container):
        """KubeRay's job supervisor starts the driver on the head: the driver sees the head container's environment,
        mounts and identity, not the submitter's."""
        head = ((spec.get("rayClusterSpec") or {}).get("headGroupSpec") or {}).get("template") or {}
        head_spec = head.get("spec") or {}
        head_container = (head_spec.get("containers") or [{}])[0]
        for key in ("env", "envFrom", "volumeMounts"):
            container.pop(key, None)
            if head_container.get(key):
                container[key] = copy.deepcopy(head_container[key])
        known = {v.get("name") for v in pod_spec.get("volumes") or []}
        extra = [copy.deepcopy(v) for v in head_spec.get("volumes") or [] if v.get("name") not in known]
        if extra:
            pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), *extra]
        for key in ("serviceAccountName", "imagePullSecrets"):
            pod_spec.pop(key, None)
            if head_spec.get(key):
                pod_spec[key] = copy.deepcopy(head_spec[key])

    def running(self, rayjob, status):
        meta = rayjob["metadata"]
        job = self.store.get("batch/jobs", meta.get("namespace", ""), meta["name"])
        if job is None:
            self.end(rayjob, status, "FAILED", "Failed", "SubmissionFailed", "the submitter Job is gone")
            return
        conds = {c["type"]: c for c in (job.get("status") or {}).get("conditions") or [] if c["status"] == "True"}
        if "Complete" in conds:
            self.end(rayjob, status, "SUCCEEDED", "Complete", None, "Job finished successfully.")
            return
        if "Failed" in conds:
            code = None
            for pod in self.store.list("/pods", meta.get("namespace")):
                if any(r.get("uid") == job["metadata"]["uid"] for r in pod["metadata"].get("ownerReferences") or []):
                    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                        code = ((cs.get("state") or {}).get("terminated") or {}).get("exitCode", code)
            self.end(rayjob, status, "FAILED", "Failed", "AppFailed",
                     f"Job {status.get('jobId')} failed: the entrypoint exited with code {code}"
                     f" ({conds['Failed'].get('reason')})")
            return
        if (job.get("status") or {}).get("active") and status.get("jobStatus") != "RUNNING":
            pods = [p for p in self.store.list("/pods", meta.get("namespace"))
                    if any(r.get("uid") == job["metadata"]["uid"] for r in p["metadata"].get("ownerReferences") or [])]
            if any(pod_phase(p) == "Running" for p in pods):
                status["jobStatus"] = "RUNNING"
                self.write_status(rayjob, status)
                return
        self.requeue_after(rayjob, 0.5)

    def end(self, rayjob, status, job_status, deployment, reason, message):
        status.update(jobDeploymentStatus=deployment, endTime=self.now(), message=message)
        if job_status:
            status["jobStatus"] = job_status
        if reason:
            status["reason"] = reason
        status["succeeded" if deployment == "Complete" else "failed"] = 1
        self.event(rayjob, "Normal" if deployment == "Complete" else "Warning",
                   "Completed" if deployment == "Complete" else (reason or "Failed"), message)
        stored = self.write_status(rayjob, status)
        if stored is not None:
            self.after_finish(stored, stored.get("status") or {})

    def after_finish(self, rayjob, status):
        spec = rayjob.get("spec") or {}
        mem = self.memory(rayjob)
        if not spec.get("shutdownAfterJobFinishes") or spec.get("clusterSelector") or mem.get("shut"):
            return
        ttl = float(spec.get("ttlSecondsAfterFinished") or 0)
        remaining = ttl - (time.time() - parse_time(status.get("endTime") or self.now()))
        if remaining > 0:
            self.requeue_after(rayjob, remaining + 0.05)
            return
        mem["shut"] = True
        if self.delete_rayjob_after_finish:
            self.delete_after(rayjob, 0)
            return
        pods = self.cluster_pods(rayjob)
        self.delete_objects(rayjob, pods)
        scratch = self.scratch_dirs.get(rayjob["metadata"]["uid"])
        if scratch:
            # the "ray stop" step: once the pods' grace period is over, nothing of this cluster may survive
            def sweep():
                for pid in kill_marked(scratch):
                    print(f"kube_double RayJob operator: killed stray Ray process {pid}", flush=True)

            asyncio.get_event_loop().call_later(4.0, sweep)
