"""A fake PyTorchJob operator: imitates kubeflow/training-operator v1.x (release-1.9, ``kubeflow.org/v1``).

What it does (as the training operator's PyTorchJob controller does):

* one pod per replica of each entry of ``spec.pytorchReplicaSpecs`` (``Master``, ``Worker``), named
  ``<job>-master-0`` and ``<job>-worker-<i>``, from the replica's ``template`` (the primary container is the one
  named ``pytorch``), with the labels ``training.kubeflow.org/job-name``, ``training.kubeflow.org/operator-name:
  pytorchjob-controller``, ``training.kubeflow.org/replica-type`` (``master``/``worker``),
  ``training.kubeflow.org/replica-index`` and ``training.kubeflow.org/job-role: master`` on the master; the pod's
  ``restartPolicy`` is the replica's (``ExitCode`` becomes ``Never`` on the pod, and the operator recreates a pod
  that failed with a retryable exit code, 128 or more, as the real one does);
* env on every container (pkg/controller.v1/pytorch/envvar.go and elastic.go): ``PYTHONUNBUFFERED=1``; with a
  Master: ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE`` (total replicas x nproc per node), ``RANK`` (master 0,
  worker i+1); without elasticPolicy ``PET_NPROC_PER_NODE`` and ``PET_NODE_RANK`` (the rank);
  with ``spec.elasticPolicy`` instead ``PET_NPROC_PER_NODE``, ``PET_RDZV_BACKEND``
  (``rdzvBackend``, default c10d), ``PET_RDZV_ENDPOINT`` (``<host>:<port>``), ``PET_RDZV_ID`` (only when
  ``rdzvId`` is set), ``PET_RDZV_CONF`` (``k=v,...``), ``PET_STANDALONE`` (when ``standalone``),
  ``PET_MAX_RESTARTS`` (when ``maxRestarts`` is set) and ``PET_NNODES`` (``min:max``, default both the total
  replicas); nproc per node is ``spec.nprocPerNode`` or the deprecated ``elasticPolicy.nProcPerNode``, 1 when
  absent or not an integer;
* ``status.conditions`` (type/status/reason/message/lastUpdateTime/lastTransitionTime): ``Created``
  (PyTorchJobCreated), ``Running`` (PyTorchJobRunning, once the master -- or worker 0's replica type when there is
  no master -- has a running pod), then ``Succeeded`` (PyTorchJobSucceeded: the master succeeded; with no master,
  all workers succeeded, or any one under an elasticPolicy) or ``Failed`` (PyTorchJobFailed: a pod failed that is
  not restarted; BackoffLimitExceeded; DeadlineExceeded), the Running condition then set to False;
  ``replicaStatuses.<Type>.{active,succeeded,failed,selector}``; ``startTime``; ``completionTime``;
* ``spec.runPolicy``: ``cleanPodPolicy`` (default ``None``: keep the pods; ``Running``: delete the pods still
  pending/running at the end; ``All``: delete all pods), ``ttlSecondsAfterFinished`` (delete the PyTorchJob that
  long after completionTime), ``activeDeadlineSeconds`` (Failed/DeadlineExceeded), ``backoffLimit`` (container
  restarts of OnFailure/Always pods beyond it: Failed/BackoffLimitExceeded).

Simplified: no Services; ``MASTER_ADDR`` is ``127.0.0.1`` instead of the master Service ``<job>-master-0`` and
``MASTER_PORT`` a free port picked per job instead of the container port ``pytorchjob-port`` (23456); likewise the
elastic ``PET_RDZV_ENDPOINT`` is ``127.0.0.1:<free port>`` (``rdzvHost``/``rdzvPort`` are ignored). On
DeadlineExceeded and BackoffLimitExceeded the pods still running are deleted whatever cleanPodPolicy says. No
suspend, schedulingPolicy/gang scheduling, managedBy, HPA for elastic jobs, or Restarting/Suspended conditions
other than the ExitCode restart.
"""

from __future__ import annotations

import copy
import time

from .base import Operator, free_port, parse_time, pod_phase, set_env

JOB_NAME = "training.kubeflow.org/job-name"
REPLICA_TYPE = "training.kubeflow.org/replica-type"
REPLICA_INDEX = "training.kubeflow.org/replica-index"
JOB_ROLE = "training.kubeflow.org/job-role"
OPERATOR_NAME = "training.kubeflow.org/operator-name"


def _nproc(spec: dict) -> int:
    value = spec.get("nprocPerNode")
    if value is None:
        value = (spec.get("elasticPolicy") or {}).get("nProcPerNode")
    try:
        return max(int(value), 1)
    except (TypeError, ValueError):
        return 1


class PyTorchJobOperator(Operator):
    key = "kubeflow.org/pytorchjobs"
    component = "pytorchjob-controller"

    def order(self, replicas: dict) -> list[str]:
        return sorted(replicas, key=lambda t: (t != "Master", t))

    def condition(self, status, type_, reason, message, value="True"):
        now = self.now()
        conditions = status.setdefault("conditions", [])
        for cond in conditions:
            if cond["type"] == type_:
                if cond["status"] != value or cond.get("reason") != reason:
                    cond.update(status=value, reason=reason, message=message, lastUpdateTime=now,
                                lastTransitionTime=now)
                return
        if type_ in ("Succeeded", "Failed", "Restarting"):
            for cond in conditions:
                if cond["type"] == "Running" and cond["status"] == "True":
                    cond.update(status="False", lastUpdateTime=now, lastTransitionTime=now)
        conditions.append({"type": type_, "status": value, "reason": reason, "message": message,
                           "lastUpdateTime": now, "lastTransitionTime": now})

    def reconcile(self, job):
        meta = job["metadata"]
        if meta.get("deletionTimestamp"):
            return
        spec = job.get("spec") or {}
        replicas = spec.get("pytorchReplicaSpecs") or {}
        run_policy = spec.get("runPolicy") or {}
        name = meta["name"]
        status = copy.deepcopy(job.get("status") or {})
        conds = {c["type"]: c for c in status.get("conditions") or []}
        finished = any(conds.get(t, {}).get("status") == "True" for t in ("Succeeded", "Failed"))
        pods = self.owned(job)
        if finished:
            self.finish_up(job, status, pods)
            return
        if "Created" not in conds:
            self.condition(status, "Created", "PyTorchJobCreated", f"PyTorchJob {name} is created.")
            self.event(job, "Normal", "PyTorchJobCreated", f"PyTorchJob {name} is created.")
        status.setdefault("startTime", self.now())
        mem = self.memory(job)
        mem.setdefault("master_port", free_port())
        mem.setdefault("rdzv_port", free_port())
        by_name = {p["metadata"]["name"]: p for p in pods}
        outcome = None
        restarting = False
        # pods to (re)create; ExitCode restarts
        for rtype in self.order(replicas):
            rspec = replicas[rtype] or {}
            for index in range(int(rspec.get("replicas", 1))):
                pod_name = f"{name}-{rtype.lower()}-{index}"
                pod = by_name.get(pod_name)
                if pod is not None and rspec.get("restartPolicy") == "ExitCode" and pod_phase(pod) == "Failed":
                    code = _exit_code(pod)
                    if code is not None and code >= 128:
                        restarting = True
                        self.delete_objects(job, [pod])
                        continue
                if pod is None:
                    try:
                        self.create_pod(job, pod_name, self.pod_template(job, rtype, rspec, index),
                                        self.pod_labels(job, rtype, index))
                    except Exception as exc:
                        self.event(job, "Warning", "FailedCreatePod", f"Error creating: {exc}")
                        self.requeue_after(job, 1.0)
        pods = self.owned(job)
        replica_statuses = {}
        for rtype in self.order(replicas):
            counts = {"active": 0, "succeeded": 0, "failed": 0}
            for pod in pods:
                if (pod["metadata"].get("labels") or {}).get(REPLICA_TYPE) != rtype.lower():
                    continue
                phase = pod_phase(pod)
                if phase == "Running" and not pod["metadata"].get("deletionTimestamp"):
                    counts["active"] += 1
                elif phase == "Succeeded":
                    counts["succeeded"] += 1
                elif phase == "Failed" and not pod["metadata"].get("deletionTimestamp"):
                    counts["failed"] += 1
            entry = {k: v for k, v in counts.items() if v}
            entry["selector"] = f"{JOB_NAME}={name},{OPERATOR_NAME}=pytorchjob-controller,{REPLICA_TYPE}={rtype.lower()}"
            replica_statuses[rtype] = entry
        status["replicaStatuses"] = replica_statuses
        if restarting:
            self.condition(status, "Restarting", "PyTorchJobRestarting",
                           f"PyTorchJob {name} is restarting because a replica failed with a retryable exit code.")
        # limits
        deadline = run_policy.get("activeDeadlineSeconds")
        backoff = run_policy.get("backoffLimit")
        if deadline is not None:
            remaining = float(deadline) - (time.time() - parse_time(status["startTime"]))
            if remaining <= 0:
                outcome = ("DeadlineExceeded",
                           f"PyTorchJob {name} has failed because it was active longer than specified deadline")
            else:
                self.requeue_after(job, remaining + 0.05)
        if outcome is None and backoff is not None:
            restarts = sum(
                int(cs.get("restartCount", 0))
                for pod in pods
                if (pod.get("spec") or {}).get("restartPolicy") in ("OnFailure", "Always")
                for cs in (pod.get("status") or {}).get("containerStatuses") or []
            )
            if restarts > int(backoff):
                outcome = ("BackoffLimitExceeded",
                           f"PyTorchJob {name} has failed because it has reached the specified backoff limit")
        succeeded = False
        if outcome is None:
            lead = "Master" if "Master" in replicas else ("Worker" if "Worker" in replicas else None)
            for rtype in self.order(replicas):
                rspec = replicas[rtype] or {}
                counts = replica_statuses[rtype]
                expected = int(rspec.get("replicas", 1)) - counts.get("succeeded", 0)
                if rtype == lead:
                    if counts.get("active", 0) > 0:
                        self.condition(status, "Running", "PyTorchJobRunning", f"PyTorchJob {name} is running.")
                    if expected == 0 or (rtype != "Master" and spec.get("elasticPolicy") and counts.get("succeeded")):
                        succeeded = True
                        break
                if counts.get("failed", 0) > 0 and rspec.get("restartPolicy") != "ExitCode":
                    outcome = ("PyTorchJobFailed",
                               f"PyTorchJob {name} is failed because {counts['failed']} {rtype} replica(s) failed.")
                    break
                if counts.get("failed", 0) > 0 and rspec.get("restartPolicy") == "ExitCode":
                    bad = [p for p in pods if pod_phase(p) == "Failed" and (_exit_code(p) or 0) < 128
                           and (p["metadata"].get("labels") or {}).get(REPLICA_TYPE) == rtype.lower()]
                    if bad:
                        outcome = ("PyTorchJobFailed",
                                   f"PyTorchJob {name} is failed because {len(bad)} {rtype} replica(s) failed.")
                        break
        if succeeded:
            message = f"PyTorchJob {name} is successfully completed."
            self.condition(status, "Succeeded", "PyTorchJobSucceeded", message)
            status["completionTime"] = self.now()
            self.event(job, "Normal", "PyTorchJobSucceeded", message)
        elif outcome is not None:
            reason, message = outcome
            self.condition(status, "Failed", reason, message)
            status["completionTime"] = self.now()
            self.event(job, "Warning" if reason != "PyTorchJobFailed" else "Normal", reason, message)
            if reason in ("DeadlineExceeded", "BackoffLimitExceeded"):
                self.delete_objects(job, [p for p in pods if pod_phase(p) in ("Pending", "Running", None)])
        status["lastReconcileTime"] = self.now()
        if succeeded or outcome is not None:
            stored = self.write_status(job, status)
            if stored is not None:
                self.finish_up(stored, status, self.owned(stored))
            return
        current = job.get("status") or {}
        if {k: v for k, v in status.items() if k != "lastReconcileTime"} != {
            k: v for k, v in current.items() if k != "lastReconcileTime"
        }:
            self.write_status(job, status)

    def finish_up(self, job, status, pods):
        run_policy = (job.get("spec") or {}).get("runPolicy") or {}
        policy = run_policy.get("cleanPodPolicy") or "None"
        if policy == "All":
            self.delete_objects(job, pods)
        elif policy == "Running":
            self.delete_objects(job, [p for p in pods if pod_phase(p) in ("Pending", "Running", None)])
        ttl = run_policy.get("ttlSecondsAfterFinished")
        if ttl is not None:
            self.delete_after(job, float(ttl), status.get("completionTime"))

    def pod_labels(self, job, rtype, index) -> dict:
        labels = {
            JOB_NAME: job["metadata"]["name"],
            OPERATOR_NAME: "pytorchjob-controller",
            REPLICA_TYPE: rtype.lower(),
            REPLICA_INDEX: str(index),
        }
        if rtype == "Master":
            labels[JOB_ROLE] = "master"
        return labels

    def pod_template(self, job, rtype, rspec, index) -> dict:
        spec = job.get("spec") or {}
        replicas = spec.get("pytorchReplicaSpecs") or {}
        template = copy.deepcopy(rspec.get("template") or {})
        pod_spec = template.setdefault("spec", {})
        restart = rspec.get("restartPolicy") or "Never"
        pod_spec["restartPolicy"] = "Never" if restart == "ExitCode" else restart
        mem = self.memory(job)
        total = sum(int((r or {}).get("replicas", 1)) for r in replicas.values())
        nproc = _nproc(spec)
        env = {"PYTHONUNBUFFERED": "1"}
        rank = index + (1 if rtype == "Worker" and "Master" in replicas else 0)
        if "Master" in replicas:
            env.update(
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(mem["master_port"]),
                WORLD_SIZE=str(total * nproc),
                RANK=str(rank),
            )
        elastic = spec.get("elasticPolicy")
        if elastic is not None:
            env["PET_RDZV_BACKEND"] = elastic.get("rdzvBackend") or "c10d"
            env["PET_RDZV_ENDPOINT"] = f"127.0.0.1:{mem['rdzv_port']}"
            if elastic.get("rdzvId"):
                env["PET_RDZV_ID"] = elastic["rdzvId"]
            if elastic.get("rdzvConf"):
                env["PET_RDZV_CONF"] = ",".join(f"{c.get('key')}={c.get('value')}" for c in elastic["rdzvConf"])
            if elastic.get("standalone"):
                env["PET_STANDALONE"] = "true"
            if elastic.get("maxRestarts") is not None:
                env["PET_MAX_RESTARTS"] = str(elastic["maxRestarts"])
            low = elastic.get("minReplicas", total)
            high = elastic.get("maxReplicas", total)
            env["PET_NNODES"] = f"{low}:{high}"
            env["PET_NPROC_PER_NODE"] = str(nproc)
        else:
            env.update(PET_NPROC_PER_NODE=str(nproc), PET_NODE_RANK=str(rank))
        for container in pod_spec.get("containers") or []:
            set_env(container, env)
            set_env(container, self.base_env(job), override=False)
        return template


def _exit_code(pod) -> int | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode"):
            return int(terminated["exitCode"])
    return None
