"""A fake MPIJob operator: imitates kubeflow/mpi-operator v0.8 (``kubeflow.org/v2beta1``) and, for objects written
as ``kubeflow.org/v1``, the training operator's MPIJob controller (release-1.9).

What it does, as they do:

* ``spec.mpiReplicaSpecs.Worker.replicas`` pods ``<job>-worker-<i>`` and one launcher: for v2beta1 a ``batch/v1``
  Job ``<job>-launcher`` (``backoffLimit`` from ``runPolicy.backoffLimit``, default 6; its pod's restartPolicy is the
  replica's, ``Always`` becoming ``OnFailure``), for v1 a pod ``<job>-launcher``; labels
  ``training.kubeflow.org/job-name``, ``training.kubeflow.org/operator-name`` (``mpi-operator`` /
  ``mpijob-controller``), ``training.kubeflow.org/replica-type`` (``launcher``/``worker``),
  ``training.kubeflow.org/replica-index`` and ``training.kubeflow.org/job-role: launcher`` on the launcher;
  the launcher is created once every worker runs (``launcherCreationPolicy: WaitForWorkersReady``);
* the hostfile (``slots=`` ``slotsPerWorker``) named by ``OMPI_MCA_orte_default_hostfile`` (and Open MPI 5's
  ``PRTE_MCA_prte_default_hostfile``) in the launcher's env, with ``OMPI_MCA_orte_keep_fqdn_hostnames=true`` and
  ``OMPI_MCA_orte_set_default_slots``;
* ``status.conditions``: ``Created`` (MPIJobCreated), ``Running`` (MPIJobRunning, once the launcher runs), then
  ``Succeeded`` (MPIJobSucceeded: the launcher succeeded) or ``Failed`` (MPIJobFailed: the launcher failed for good;
  DeadlineExceeded past ``runPolicy.activeDeadlineSeconds``), the Running condition then False;
  ``replicaStatuses.{Launcher,Worker}``; ``startTime``; ``completionTime``;
* ``runPolicy.cleanPodPolicy`` (v2beta1 default ``Running``, v1 ``None``): ``Running`` deletes the workers still
  running at the end, ``All`` every pod; ``ttlSecondsAfterFinished`` deletes the MPIJob that long after completion.

Simplified: every pod runs on this machine, so the hostfile is ``localhost slots=<workers x slots>`` (the real one
lists the workers' DNS names, reached over SSH) and the workers' containers run ``sleep infinity`` in place of their
``sshd`` (the ranks run under the launcher's mpirun here); no ConfigMap, SSH Secret, Service or discover_hosts.sh
objects; the ``-x`` list of the launcher's mpirun still decides what the ranks see.
"""

from __future__ import annotations

import copy
import os
import time

from .base import Operator, parse_time, pod_phase, set_env

JOB_NAME = "training.kubeflow.org/job-name"
REPLICA_TYPE = "training.kubeflow.org/replica-type"
REPLICA_INDEX = "training.kubeflow.org/replica-index"
JOB_ROLE = "training.kubeflow.org/job-role"
OPERATOR_NAME = "training.kubeflow.org/operator-name"


class MPIJobOperator(Operator):
    key = "kubeflow.org/mpijobs"
    component = "mpi-job-controller"

    @staticmethod
    def v1(job) -> bool:
        return job.get("apiVersion") == "kubeflow.org/v1"

    def condition(self, status, type_, reason, message, value="True"):
        now = self.now()
        conditions = status.setdefault("conditions", [])
        for cond in conditions:
            if cond["type"] == type_:
                if cond["status"] != value or cond.get("reason") != reason:
                    cond.update(status=value, reason=reason, message=message, lastUpdateTime=now,
                                lastTransitionTime=now)
                return
        if type_ in ("Succeeded", "Failed"):
            for cond in conditions:
                if cond["type"] == "Running" and cond["status"] == "True":
                    cond.update(status="False", lastUpdateTime=now, lastTransitionTime=now)
        conditions.append({"type": type_, "status": value, "reason": reason, "message": message,
                           "lastUpdateTime": now, "lastTransitionTime": now})

    def labels(self, job, rtype: str, index: int | None = None) -> dict:
        labels = {JOB_NAME: job["metadata"]["name"], REPLICA_TYPE: rtype,
                  OPERATOR_NAME: "mpijob-controller" if self.v1(job) else "mpi-operator"}
        if index is not None:
            labels[REPLICA_INDEX] = str(index)
        if rtype == "launcher":
            labels[JOB_ROLE] = "launcher"
        return labels

    def hostfile(self, job, slots: int, workers: int) -> str:
        path = os.path.join(self.scratch(job), "hostfile")
        if not os.path.exists(path):
            with open(path, "w") as handle:
                handle.write(f"localhost slots={slots * workers}\n")
        return path

    def reconcile(self, job):
        meta = job["metadata"]
        if meta.get("deletionTimestamp"):
            return
        spec = job.get("spec") or {}
        replicas = spec.get("mpiReplicaSpecs") or {}
        run_policy = spec.get("runPolicy") or {}
        name = meta["name"]
        status = copy.deepcopy(job.get("status") or {})
        conds = {c["type"]: c for c in status.get("conditions") or []}
        if any(conds.get(t, {}).get("status") == "True" for t in ("Succeeded", "Failed")):
            self.finish_up(job, status)
            return
        if "Created" not in conds:
            self.condition(status, "Created", "MPIJobCreated", f"MPIJob default/{name} is created.")
            self.event(job, "Normal", "MPIJobCreated", f"MPIJob {name} is created.")
        status.setdefault("startTime", self.now())
        worker_spec = replicas.get("Worker") or {}
        launcher_spec = replicas.get("Launcher") or {}
        workers = int(worker_spec.get("replicas", 0) or 0)
        slots = int(spec.get("slotsPerWorker", 1) or 1)
        pods = {p["metadata"]["name"]: p for p in self.owned(job)}
        for index in range(workers):
            pod_name = f"{name}-worker-{index}"
            if pod_name not in pods:
                template = copy.deepcopy(worker_spec.get("template") or {})
                pod_spec = template.setdefault("spec", {})
                restart = worker_spec.get("restartPolicy") or "Never"
                pod_spec["restartPolicy"] = "Never" if restart == "ExitCode" else restart
                for container in pod_spec.get("containers") or []:
                    container["command"], container["args"] = ["sleep", "infinity"], []  # stands in for sshd
                    set_env(container, self.base_env(job), override=False)
                self.create_pod(job, pod_name, template, self.labels(job, "worker", index))
        worker_pods = [p for p in self.owned(job)
                       if (p["metadata"].get("labels") or {}).get(REPLICA_TYPE) == "worker"]
        workers_running = sum(1 for p in worker_pods if pod_phase(p) == "Running")
        launcher_phase = self.ensure_launcher(job, launcher_spec, run_policy, slots, workers,
                                              ready=workers_running >= workers)
        status["replicaStatuses"] = {
            "Launcher": {k: v for k, v in (("active", int(launcher_phase == "Running")),
                                           ("succeeded", int(launcher_phase == "Succeeded")),
                                           ("failed", int(launcher_phase == "Failed"))) if v},
            "Worker": {k: v for k, v in (("active", workers_running),) if v},
        }
        outcome = None
        deadline = run_policy.get("activeDeadlineSeconds")
        if deadline is not None:
            remaining = float(deadline) - (time.time() - parse_time(status["startTime"]))
            if remaining <= 0:
                outcome = ("Failed", "DeadlineExceeded", f"MPIJob {name} has failed because it was active longer "
                                                         "than specified deadline")
            else:
                self.requeue_after(job, remaining + 0.05)
        if outcome is None:
            if launcher_phase == "Running":
                self.condition(status, "Running", "MPIJobRunning", f"launcher pod {name}-launcher is running")
            elif launcher_phase == "Succeeded":
                outcome = ("Succeeded", "MPIJobSucceeded", f"MPIJob default/{name} successfully completed.")
            elif launcher_phase == "Failed":
                outcome = ("Failed", "MPIJobFailed", f"MPIJob default/{name} has failed: the launcher failed")
        if outcome is not None:
            type_, reason, message = outcome
            self.condition(status, type_, reason, message)
            status["completionTime"] = self.now()
            self.event(job, "Normal" if type_ == "Succeeded" else "Warning", reason, message)
            if reason == "DeadlineExceeded":
                self.delete_objects(job, [p for p in self.owned(job) if pod_phase(p) in ("Pending", "Running", None)])
                self.delete_objects(job, self.owned(job, "batch/jobs"), key="batch/jobs")
            stored = self.write_status(job, status)
            if stored is not None:
                self.finish_up(stored, status)
            return
        if status != (job.get("status") or {}):
            self.write_status(job, status)

    def ensure_launcher(self, job, launcher_spec, run_policy, slots, workers, ready: bool) -> str | None:
        """Create the launcher once the workers run; its phase (Running, Succeeded, Failed) or None."""
        name = f"{job['metadata']['name']}-launcher"
        template = copy.deepcopy(launcher_spec.get("template") or {})
        pod_spec = template.setdefault("spec", {})
        hostfile = self.hostfile(job, slots, workers)
        for container in pod_spec.get("containers") or []:
            set_env(container, {"OMPI_MCA_orte_default_hostfile": hostfile, "PRTE_MCA_prte_default_hostfile": hostfile,
                                "OMPI_MCA_orte_keep_fqdn_hostnames": "true",
                                "OMPI_MCA_orte_set_default_slots": str(slots)})
            set_env(container, self.base_env(job), override=False)
        restart = launcher_spec.get("restartPolicy") or "Never"
        if self.v1(job):
            pods = [p for p in self.owned(job) if p["metadata"]["name"] == name]
            if not pods:
                if ready:
                    pod_spec["restartPolicy"] = "Never" if restart in ("ExitCode",) else restart
                    self.create_pod(job, name, template, self.labels(job, "launcher"))
                return None
            return pod_phase(pods[0])
        jobs = [j for j in self.owned(job, "batch/jobs") if j["metadata"]["name"] == name]
        if not jobs:
            if ready:
                pod_spec["restartPolicy"] = "OnFailure" if restart == "Always" else (
                    "Never" if restart == "ExitCode" else restart)
                metadata = template.setdefault("metadata", {})
                metadata["labels"] = {**(metadata.get("labels") or {}), **self.labels(job, "launcher")}
                self.create_job(job, name, {"backoffLimit": int(run_policy.get("backoffLimit", 6)),
                                            "template": template}, self.labels(job, "launcher"))
            return None
        conditions = {c["type"]: c["status"] for c in (jobs[0].get("status") or {}).get("conditions") or []}
        if conditions.get("Complete") == "True":
            return "Succeeded"
        if conditions.get("Failed") == "True":
            return "Failed"
        return "Running" if (jobs[0].get("status") or {}).get("active") else None

    def finish_up(self, job, status):
        run_policy = (job.get("spec") or {}).get("runPolicy") or {}
        policy = run_policy.get("cleanPodPolicy") or ("None" if self.v1(job) else "Running")
        pods = self.owned(job)
        if policy == "All":
            self.delete_objects(job, pods)
        elif policy == "Running":
            self.delete_objects(job, [p for p in pods if pod_phase(p) in ("Pending", "Running", None)])
        ttl = run_policy.get("ttlSecondsAfterFinished")
        if ttl is not None:
            self.delete_after(job, float(ttl), status.get("completionTime"))
