"""A fake DaskJob operator: imitates the dask-kubernetes operator (2024.x/2025.x, ``kubernetes.dask.org/v1``).

What it does (as ``dask_kubernetes.operator.controller`` does for a DaskJob):

* ``status.jobStatus: JobCreated`` on creation; then the cluster is made: ``ClusterCreated`` and
  ``status.clusterName`` (the DaskJob's name); ``Running`` with ``startTime`` when the runner pod runs;
  ``Successful`` / ``Failed`` with ``endTime`` when the runner pod succeeds / fails, after which the cluster's pods
  are deleted (the DaskJob and its runner pod stay: a DaskJob has no TTL). A runner with ``restartPolicy:
  OnFailure`` (the CRD's default) that keeps failing is restarted by the kubelet and the job stays ``Running``.
* the scheduler pod ``<name>-scheduler`` from ``spec.cluster.spec.scheduler.spec`` (labels
  ``dask.org/cluster-name``, ``dask.org/component: scheduler``), its first container running a real ``dask
  scheduler --host 127.0.0.1 --port <free port> --dashboard-address :0`` (the template's command/args are
  replaced, its env kept);
* ``spec.cluster.spec.worker.replicas`` (default 1) worker pods ``<name>-default-worker-<10 hex>`` from
  ``spec.cluster.spec.worker.spec`` (labels ``dask.org/cluster-name``, ``dask.org/component: worker``,
  ``dask.org/workergroup-name: default``), first container running ``dask worker tcp://127.0.0.1:<port>
  --nthreads 1 --nworkers 1 --no-dashboard --name <pod name>`` with ``DASK_WORKER_NAME`` and
  ``DASK_SCHEDULER_ADDRESS`` in its env;
* the runner pod ``<name>-runner`` from ``spec.job.spec`` (labels ``dask.org/cluster-name``, ``dask.org/component:
  job-runner``), created right after the cluster (as the real operator does, without waiting for the scheduler:
  ``distributed.Client()`` retries its connection), with ``DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:<port>`` added
  to every container's env; its command is the template's own.

Every pod also carries the DaskJob's own labels and those of its part's ``metadata`` (``spec.job.metadata``,
``spec.cluster.spec.scheduler.metadata``, ``spec.cluster.spec.worker.metadata``), as the operator passes them on.

Simplified: the DaskCluster/DaskWorkerGroup custom resources and the scheduler Service are not created (the pods
are owned by the DaskJob directly); the scheduler address is ``tcp://127.0.0.1:<free port>`` instead of
``tcp://<name>-scheduler.<namespace>.svc.cluster.local:8786``; no autoscaling, idleTimeout or DaskCluster status.
"""

from __future__ import annotations

import copy
import uuid

from .base import Operator, bin_path, free_port, pod_phase, set_env

CLUSTER = "dask.org/cluster-name"
COMPONENT = "dask.org/component"
GROUP = "dask.org/workergroup-name"


class DaskJobOperator(Operator):
    key = "kubernetes.dask.org/daskjobs"
    component = "dask-kubernetes-operator"

    def reconcile(self, job):
        meta = job["metadata"]
        if meta.get("deletionTimestamp"):
            return
        name = meta["name"]
        status = copy.deepcopy(job.get("status") or {})
        state = status.get("jobStatus")
        if not state:
            status["jobStatus"] = "JobCreated"
            self.write_status(job, status)
            return
        if state == "JobCreated":
            try:
                self.create_cluster(job)
                status.update(jobStatus="ClusterCreated", clusterName=name)
                self.write_status(job, status)
                self.create_runner(job)
                status["jobRunnerPodName"] = f"{name}-runner"
            except Exception as exc:
                self.event(job, "Warning", "FailedCreate", f"Error creating the Dask cluster or runner: {exc}")
                self.requeue_after(job, 1.0)
                return
            self.write_status(job, status)
            return
        if state in ("Successful", "Failed"):
            self.delete_cluster(job)
            return
        runner = self.store.get("/pods", meta.get("namespace", ""), f"{name}-runner")
        if runner is None:
            return
        phase = pod_phase(runner)
        if phase == "Running" and state != "Running":
            status.update(jobStatus="Running", startTime=self.now())
        elif phase in ("Succeeded", "Failed"):
            status.setdefault("startTime", self.now())
            status.update(jobStatus="Successful" if phase == "Succeeded" else "Failed", endTime=self.now())
        if status != job.get("status"):
            stored = self.write_status(job, status)
            if stored is not None and status["jobStatus"] in ("Successful", "Failed"):
                self.delete_cluster(stored)

    def labels(self, job, component: str, part: dict | None = None) -> dict:
        """As the operator labels its pods: the DaskJob's own labels, then those of the part's ``metadata`` (the
        job, the scheduler, the worker group), then its own."""
        own = dict(job["metadata"].get("labels") or {})
        own.update(((part or {}).get("metadata") or {}).get("labels") or {})
        return {**own, CLUSTER: job["metadata"]["name"], COMPONENT: component}

    def address(self, job) -> str:
        mem = self.memory(job)
        mem.setdefault("port", free_port())
        return f"tcp://127.0.0.1:{mem['port']}"

    def create_cluster(self, job):
        name = job["metadata"]["name"]
        cluster = ((job.get("spec") or {}).get("cluster") or {}).get("spec") or {}
        address = self.address(job)
        port = self.memory(job)["port"]
        existing = {p["metadata"]["name"] for p in self.owned(job)}
        scheduler = copy.deepcopy((cluster.get("scheduler") or {}).get("spec") or {})
        if f"{name}-scheduler" not in existing:
            self.prepare(job, scheduler, [bin_path("dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                          "--dashboard-address", ":0"], {})
            self.create_pod(job, f"{name}-scheduler", {"spec": scheduler},
                            self.labels(job, "scheduler", cluster.get("scheduler")))
        worker_spec = (cluster.get("worker") or {})
        replicas = int(worker_spec.get("replicas", 1))
        have = sum(1 for n in existing if n.startswith(f"{name}-default-worker-"))
        for _ in range(replicas - have):
            pod_name = f"{name}-default-worker-{uuid.uuid4().hex[:10]}"
            spec = copy.deepcopy(worker_spec.get("spec") or {})
            self.prepare(job, spec, [bin_path("dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                     "--no-dashboard", "--name", pod_name],
                         {"DASK_WORKER_NAME": pod_name, "DASK_SCHEDULER_ADDRESS": address})
            self.create_pod(job, pod_name, {"spec": spec}, {**self.labels(job, "worker", worker_spec), GROUP: "default"})

    def prepare(self, job, spec, argv, env):
        containers = spec.setdefault("containers", [])
        if not containers:
            containers.append({"name": "dask", "image": "ghcr.io/dask/dask:latest"})
        container = containers[0]
        container["command"] = argv
        container.pop("args", None)
        set_env(container, env)
        set_env(container, self.base_env(job), override=False)

    def create_runner(self, job):
        name = job["metadata"]["name"]
        if self.store.get("/pods", job["metadata"].get("namespace", ""), f"{name}-runner") is not None:
            return
        spec = copy.deepcopy(((job.get("spec") or {}).get("job") or {}).get("spec") or {})
        spec.setdefault("restartPolicy", "OnFailure")
        for container in spec.get("containers") or []:
            set_env(container, {"DASK_SCHEDULER_ADDRESS": self.address(job)})
            set_env(container, self.base_env(job), override=False)
        self.create_pod(job, f"{name}-runner", {"spec": spec},
                        self.labels(job, "job-runner", (job.get("spec") or {}).get("job")))

    def delete_cluster(self, job):
        pods = [
            p for p in self.owned(job)
            if (p["metadata"].get("labels") or {}).get(COMPONENT) in ("scheduler", "worker")
        ]
        self.delete_objects(job, pods)
