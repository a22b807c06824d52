"""A fake TFJob operator: imitates kubeflow/training-operator v1.x (release-1.9, ``kubeflow.org/v1``).

What it does (as the training operator's TFJob controller does, pkg/controller.v1/tensorflow):

* defaults (tensorflow_defaults.go): ``replicas`` 1, ``restartPolicy`` ``Never``, ``runPolicy.cleanPodPolicy``
  ``None``, ``successPolicy`` ``""``;
* one pod per replica of each entry of ``spec.tfReplicaSpecs`` (``Chief``, ``Master``, ``PS``, ``Worker``,
  ``Evaluator``), named ``<job>-<type>-<i>`` (type lower-cased), from the replica's ``template``, with the labels
  ``training.kubeflow.org/job-name``, ``training.kubeflow.org/operator-name: tfjob-controller``,
  ``training.kubeflow.org/replica-type``, ``training.kubeflow.org/replica-index`` and
  ``training.kubeflow.org/job-role: master`` on the chief (or master; worker 0 when there is neither); the pod's
  ``restartPolicy`` is the replica's (``ExitCode`` becomes ``Never``, and a pod that failed with a retryable exit
  code, 128 or more, is recreated);
* ``TF_CONFIG`` on the container named ``tensorflow`` (tensorflow.go): ``{"cluster": {type: [addresses]},
  "task": {"type": type, "index": i}, "environment": "cloud"}``, the cluster listing every replica but the
  evaluators; none when the job has a single replica (not distributed); with ``enableDynamicWorker`` the sparse
  form ``{"sparseCluster": {"worker": {i: address}, "ps": [...]}, "task": ...}``;
* ``status.conditions``: ``Created`` (TFJobCreated), ``Running`` (TFJobRunning, while the chief -- or, without one,
  a worker -- runs), then ``Succeeded`` (TFJobSucceeded: the chief succeeded; without a chief, all workers did, or
  worker 0 did unless ``successPolicy: AllWorkers``) or ``Failed`` (TFJobFailed: a replica failed that is not
  restarted, worker failures being ignored under ``enableDynamicWorker``; BackoffLimitExceeded; DeadlineExceeded);
  ``replicaStatuses``, ``startTime``, ``completionTime``;
* ``spec.runPolicy`` as the PyTorchJob operator (the same common job controller): cleanPodPolicy, TTL, active
  deadline, backoff limit.

Simplified: no Services; every replica's address is ``127.0.0.1`` and a free port picked here, instead of the
Service ``<job>-<type>-<i>.<namespace>.svc`` and the container port ``tfjob-port`` (2222). No suspend,
schedulingPolicy, managedBy.
"""

from __future__ import annotations

import copy
import json
import time

from .base import free_port, parse_time, pod_phase, set_env
from .pytorch import JOB_NAME, JOB_ROLE, OPERATOR_NAME, REPLICA_INDEX, REPLICA_TYPE, PyTorchJobOperator, _exit_code

ORDER = ("Chief", "Evaluator", "Master", "PS", "Worker")  # the controller's order of status checks
CONTAINER = "tensorflow"


def _lower(rtype: str) -> str:
    return rtype.lower()


def _chief_type(replicas: dict) -> str | None:
    return next((t for t in ("Chief", "Master") if t in replicas), None)


class TFJobOperator(PyTorchJobOperator):
    """Shares the PyTorchJob operator's conditions and clean-up (the training operator's common job controller)."""

    key = "kubeflow.org/tfjobs"
    component = "tfjob-controller"

    def order(self, replicas: dict) -> list[str]:
        return [t for t in ORDER if t in replicas]

    def reconcile(self, job):
        meta = job["metadata"]
        if meta.get("deletionTimestamp"):
            return
        spec = job.get("spec") or {}
        replicas = {t: r or {} for t, r in (spec.get("tfReplicaSpecs") or {}).items()}
        run_policy = spec.get("runPolicy") or {}
        name = meta["name"]
        status = copy.deepcopy(job.get("status") or {})
        conds = {c["type"]: c for c in status.get("conditions") or []}
        pods = self.owned(job)
        if any(conds.get(t, {}).get("status") == "True" for t in ("Succeeded", "Failed")):
            self.finish_up(job, status, pods)
            return
        if "Created" not in conds:
            self.condition(status, "Created", "TFJobCreated", f"TFJob {name} is created.")
            self.event(job, "Normal", "TFJobCreated", f"TFJob {name} is created.")
        status.setdefault("startTime", self.now())
        by_name = {p["metadata"]["name"]: p for p in pods}
        restarting = False
        for rtype in self.order(replicas):
            rspec = replicas[rtype]
            for index in range(int(rspec.get("replicas", 1))):
                pod_name = f"{name}-{_lower(rtype)}-{index}"
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
        counts = {rtype: self._counts(pods, rtype) for rtype in self.order(replicas)}
        status["replicaStatuses"] = {
            rtype: {**{k: v for k, v in c.items() if v}, "selector": f"{JOB_NAME}={name},{OPERATOR_NAME}="
                    f"tfjob-controller,{REPLICA_TYPE}={_lower(rtype)}"} for rtype, c in counts.items()}
        if restarting:
            self.condition(status, "Restarting", "TFJobRestarting",
                           f"TFJob {name} is restarting because a replica failed with a retryable exit code.")
        outcome = self._limits(job, status, pods, run_policy)
        succeeded = False
        if outcome is None:
            succeeded, outcome = self._progress(job, status, replicas, counts, pods)
        if succeeded:
            message = f"TFJob {meta.get('namespace', 'default')}/{name} successfully completed."
            self.condition(status, "Succeeded", "TFJobSucceeded", message)
            status["completionTime"] = self.now()
            self.event(job, "Normal", "TFJobSucceeded", message)
        elif outcome is not None:
            reason, message = outcome
            self.condition(status, "Failed", reason, message)
            status["completionTime"] = self.now()
            self.event(job, "Normal" if reason == "TFJobFailed" else "Warning", reason, message)
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
                k: v for k, v in current.items() if k != "lastReconcileTime"}:
            self.write_status(job, status)

    @staticmethod
    def _counts(pods: list, rtype: str) -> dict:
        counts = {"active": 0, "succeeded": 0, "failed": 0}
        for pod in pods:
            if (pod["metadata"].get("labels") or {}).get(REPLICA_TYPE) != _lower(rtype):
                continue
            phase, deleting = pod_phase(pod), bool(pod["metadata"].get("deletionTimestamp"))
            if phase == "Running" and not deleting:
                counts["active"] += 1
            elif phase == "Succeeded":
                counts["succeeded"] += 1
            elif phase == "Failed" and not deleting:
                counts["failed"] += 1
        return counts

    def _limits(self, job, status, pods, run_policy):
        """DeadlineExceeded / BackoffLimitExceeded, or None."""
        name = job["metadata"]["name"]
        deadline = run_policy.get("activeDeadlineSeconds")
        if deadline is not None:
            remaining = float(deadline) - (time.time() - parse_time(status["startTime"]))
            if remaining <= 0:
                return "DeadlineExceeded", f"TFJob {name} has failed because it was active longer than specified " \
                                           "deadline"
            self.requeue_after(job, remaining + 0.05)
        backoff = run_policy.get("backoffLimit")
        if backoff is not None:
            restarts = sum(int(cs.get("restartCount", 0)) for pod in pods
                           if (pod.get("spec") or {}).get("restartPolicy") in ("OnFailure", "Always")
                           for cs in (pod.get("status") or {}).get("containerStatuses") or [])
            if restarts > int(backoff):
                return "BackoffLimitExceeded", f"TFJob {name} has failed because it has reached the specified " \
                                               "backoff limit"
        return None

    def _progress(self, job, status, replicas, counts, pods):
        """(succeeded, failure outcome or None), as UpdateJobStatus decides them."""
        spec = job.get("spec") or {}
        name = f"{job['metadata'].get('namespace', 'default')}/{job['metadata']['name']}"
        chief = _chief_type(replicas)
        for rtype in self.order(replicas):
            count = counts[rtype]
            expected = int(replicas[rtype].get("replicas", 1)) - count["succeeded"]
            if chief is not None:
                if rtype == chief:
                    if count["active"]:
                        self.condition(status, "Running", "TFJobRunning", f"TFJob {name} is running.")
                    if expected == 0:
                        return True, None
            elif rtype == "Worker":
                worker0 = any(p["metadata"]["name"] == f"{job['metadata']['name']}-worker-0"
                              and pod_phase(p) == "Succeeded" for p in pods)
                if expected == 0 or (worker0 and spec.get("successPolicy") != "AllWorkers"):
                    return True, None
                if count["active"]:
                    self.condition(status, "Running", "TFJobRunning", f"TFJob {name} is running.")
            if count["failed"]:
                if rtype == "Worker" and spec.get("enableDynamicWorker"):
                    continue
                failed = count["failed"]
                if replicas[rtype].get("restartPolicy") == "ExitCode":
                    failed = sum(1 for p in pods if pod_phase(p) == "Failed" and (_exit_code(p) or 0) < 128
                                 and (p["metadata"].get("labels") or {}).get(REPLICA_TYPE) == _lower(rtype))
                    if not failed:
                        continue
                return False, ("TFJobFailed", f"TFJob {name} has failed because {failed} {rtype} replica(s) "
                                              "failed.")
        return False, None

    def pod_labels(self, job, rtype, index) -> dict:
        replicas = (job.get("spec") or {}).get("tfReplicaSpecs") or {}
        labels = {JOB_NAME: job["metadata"]["name"], OPERATOR_NAME: "tfjob-controller",
                  REPLICA_TYPE: _lower(rtype), REPLICA_INDEX: str(index)}
        chief = _chief_type(replicas)
        if rtype == chief or (chief is None and rtype == "Worker" and index == 0):
            labels[JOB_ROLE] = "master"
        return labels

    def tf_config(self, job, rtype: str, index: int) -> str | None:
        spec = job.get("spec") or {}
        replicas = {t: r or {} for t, r in (spec.get("tfReplicaSpecs") or {}).items()}
        if sum(int(r.get("replicas", 1)) for r in replicas.values()) == 1:
            return None  # a single replica trains alone (isDistributed)
        ports = self.memory(job).setdefault("ports", {})  # one per replica, kept for the job's life
        cluster: dict[str, list[str]] = {}
        for other, rspec in replicas.items():
            if other == "Evaluator":  # not part of the training cluster
                continue
            addresses = cluster.setdefault(_lower(other), [])
            for i in range(int(rspec.get("replicas", 1))):
                if (other, i) not in ports:
                    ports[(other, i)] = free_port()
                addresses.append(f"127.0.0.1:{ports[(other, i)]}")
        task = {"type": _lower(rtype), "index": index}
        if spec.get("enableDynamicWorker"):
            sparse: dict = {"worker": {}, "ps": []}
            if rtype == "PS":
                sparse["ps"] = [cluster["ps"][index]]
            elif rtype == "Worker":
                sparse["ps"] = cluster.get("ps", [])
                sparse["worker"] = {str(index): cluster["worker"][index]}
            return json.dumps({"sparseCluster": sparse, "task": task})
        return json.dumps({"cluster": cluster, "task": task, "environment": "cloud"})

    def pod_template(self, job, rtype, rspec, index) -> dict:
        template = copy.deepcopy(rspec.get("template") or {})
        pod_spec = template.setdefault("spec", {})
        restart = rspec.get("restartPolicy") or "Never"
        pod_spec["restartPolicy"] = "Never" if restart == "ExitCode" else restart
        config = self.tf_config(job, rtype, index)
        for container in pod_spec.get("containers") or []:
            if config is not None and container.get("name") == CONTAINER:
                set_env(container, {"TF_CONFIG": config})
            set_env(container, self.base_env(job), override=False)
        return template
