"""A fake TrainJob operator: imitates Kubeflow Trainer v2 (v2.3, ``trainer.kubeflow.org/v1alpha1``) with the JobSet
controller and the Job controller it relies on.

What it does (as Trainer's TrainJob controller and its Torch and JobSet plugins, then JobSet and the Job controller,
do for a TrainJob on a ClusterTrainingRuntime with ``mlPolicy.torch``):

* installs the runtimes shipped with Trainer (``clustertrainingruntime-*.yaml`` found under the double's CRD folder,
  e.g. ``torch-distributed``) when it starts, as Trainer's ``manifests/overlays/runtimes`` do;
* reads ``spec.runtimeRef`` (a ClusterTrainingRuntime; a missing one leaves the TrainJob as it is with a Warning
  event ``TrainJobResourcesCreationFailed``, as the controller does when it cannot build the JobSet);
* the runtime's ``node`` replicatedJob (the trainer step) becomes one Indexed Job ``<trainjob>-node-0`` of
  ``trainer.numNodes`` (else ``mlPolicy.numNodes``, else 1) completions: its pod template, patched by every
  ``spec.runtimePatches[].trainingRuntimeSpec.template.spec.replicatedJobs[]`` entry of that name (pod labels and
  annotations; pod spec fields, containers merged by name with env and volumeMounts merged by name), then the
  ``trainer`` fields on the container named ``node`` (image, command, args, env upserted, ``resourcesPerNode``),
  then the Torch plugin's variables upserted after the user's env (``PET_NNODES``, ``PET_NPROC_PER_NODE`` --
  ``numProcPerNode``, else the CPU count of the node's resources when it has no GPU, else ``auto`` --,
  ``PET_NODE_RANK`` from the ``batch.kubernetes.io/job-completion-index`` annotation through a fieldRef,
  ``PET_MASTER_ADDR``, ``PET_MASTER_PORT``);
* one pod per completion index (highest first: the Job controller makes them in parallel), named
  ``<trainjob>-node-0-<index>-<5 chars>`` with hostname ``<trainjob>-node-0-<index>`` and subdomain ``<trainjob>``, carrying JobSet's labels and annotations
  (``jobset.sigs.k8s.io/jobset-name``, ``replicatedjob-name``, ``replicatedjob-replicas``, ``job-index``,
  ``job-global-index``, ``job-key``, ``restart-attempt``...) and the Job controller's (``batch.kubernetes.io/
  job-name``, ``job-name``, ``batch.kubernetes.io/job-completion-index`` as a label and an annotation); the pod's
  ``restartPolicy`` is the template's, ``OnFailure`` when it has none (JobSet's default);
* the Job's ``backoffLimit`` (the template's, default 6): a failed pod of an index is replaced while failed pods
  do not exceed it (``restartPolicy: Never``), container restarts count against it (``OnFailure``); past it the
  Job fails and its running pods are deleted;
* ``status.jobsStatus`` (the JobSet's replicatedJobsStatus: ``name``, ``active``, ``ready``, ``succeeded``,
  ``failed``, ``suspended``, counting Jobs) from the first pods on; the JobSet's end copied as the TrainJob's
  condition: ``Complete`` (AllJobsCompleted, "jobset completed successfully") once every index succeeded,
  ``Failed`` (FailedJobs, "jobset failed due to one or more job failures"), or ``Failed``/``DeadlineExceeded``
  ("TrainJob exceeded its active deadline") after ``spec.activeDeadlineSeconds`` from creation, when the pods
  are deleted.

Simplified: no JobSet or Job objects (the pods are owned by the TrainJob directly), no headless Service:
``PET_MASTER_ADDR`` is ``127.0.0.1`` instead of ``<trainjob>-node-0-0.<trainjob>`` and ``PET_MASTER_PORT`` a free
port picked per TrainJob instead of 29500; only the trainer step runs (no dataset/model initializer jobs), with
one Job replica; no suspend, TrainingRuntime (namespaced), torchtune, MPI or validating webhook.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import math
import os
import time

import yaml

from ..quantities import parse_quantity
from .base import Operator, free_port, parse_time, pod_phase, set_env

GROUP = "trainer.kubeflow.org"
RUNTIMES_KEY = f"{GROUP}/clustertrainingruntimes"
NODE = "node"  # the trainer's replicatedJob and container name in Trainer's runtimes
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
JOB_INDEX = "jobset.sigs.k8s.io/job-index"
DEFAULT_BACKOFF = 6  # batch/v1 Job's default backoffLimit


class TrainJobOperator(Operator):
    key = f"{GROUP}/trainjobs"
    component = "trainer-controller-manager"

    async def run(self):
        self.install_runtimes()
        await super().run()

    def install_runtimes(self) -> None:
        """The ClusterTrainingRuntimes Trainer ships, from the double's CRD folder (validated like any create)."""
        if not self.double.crd_dir:
            return
        try:
            rt = self.registry.by_key(RUNTIMES_KEY)
        except KeyError:
            return
        pattern = os.path.join(self.double.crd_dir, "**", "clustertrainingruntime-*.yaml")
        for path in sorted(glob.glob(pattern, recursive=True)):
            with open(path, encoding="utf-8") as handle:
                for doc in yaml.safe_load_all(handle):
                    if not doc or doc.get("kind") != "ClusterTrainingRuntime":
                        continue
                    if self.store.get(RUNTIMES_KEY, "", doc["metadata"]["name"]) is None:
                        self.double._api.create(rt, doc["apiVersion"].split("/")[1], None, doc)

    # ----- reconcile
    def reconcile(self, job):
        meta = job["metadata"]
        if meta.get("deletionTimestamp"):
            return
        status = copy.deepcopy(job.get("status") or {})
        if any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in status.get("conditions") or []):
            return
        spec = job.get("spec") or {}
        runtime = self.runtime(job)
        if runtime is None:
            return
        deadline = spec.get("activeDeadlineSeconds")
        if deadline:
            remaining = float(deadline) - (time.time() - parse_time(meta["creationTimestamp"]))
            if remaining <= 0:
                self.condition(status, "Failed", "DeadlineExceeded", "TrainJob exceeded its active deadline")
                self.write_status(job, status)
                self.delete_objects(job, self.owned(job))
                self.event(job, "Warning", "DeadlineExceeded", "TrainJob exceeded its active deadline")
                return
            self.requeue_after(job, remaining + 0.05)
        node_job = _node_job(runtime)
        job_spec = node_job.get("template", {}).get("spec") or {}
        nodes = int((spec.get("trainer") or {}).get("numNodes")
                    or ((runtime.get("spec") or {}).get("mlPolicy") or {}).get("numNodes") or 1)
        backoff = int(job_spec.get("backoffLimit", DEFAULT_BACKOFF))
        template = self.pod_template(job, job_spec.get("template") or {}, nodes)
        restart = template["spec"]["restartPolicy"]

        pods = [p for p in self.owned(job) if not p["metadata"].get("deletionTimestamp")]
        failed = [p for p in pods if pod_phase(p) == "Failed"]
        restarts = sum(int(cs.get("restartCount", 0)) for p in pods
                       for cs in (p.get("status") or {}).get("containerStatuses") or [])
        if restart == "OnFailure":
            job_failed = restarts > 0 if backoff == 0 else restarts >= backoff
        else:
            job_failed = len(failed) > backoff
        done = {_index(p) for p in pods if pod_phase(p) == "Succeeded"}
        active = [p for p in pods if pod_phase(p) in (None, "Pending", "Running")]
        if not job_failed:
            busy = done | {_index(p) for p in active}
            # The Job controller makes an Indexed Job's pods in parallel, in no particular order: here the
            # highest index first, so that node 0 is never simply the oldest pod.
            for index in reversed(range(nodes)):
                if str(index) not in busy:
                    try:
                        self.create_node(job, template, index)
                    except Exception as exc:
                        self.event(job, "Warning", "FailedCreate", f"Error creating: {exc}")
                        self.requeue_after(job, 1.0)
        complete = len(done) >= nodes
        ready = all(pod_phase(p) in ("Running", "Succeeded") for p in pods) and len(active) + len(done) >= nodes
        status["jobsStatus"] = [{"name": NODE, "active": int(bool(active) and not (job_failed or complete)),
                                 "ready": int(ready and not (job_failed or complete)), "succeeded": int(complete),
                                 "failed": int(job_failed), "suspended": 0}]
        if complete:
            self.condition(status, "Complete", "AllJobsCompleted", "jobset completed successfully")
            self.event(job, "Normal", "Completed", f"TrainJob {meta['name']} completed")
        elif job_failed:
            self.condition(status, "Failed", "FailedJobs", "jobset failed due to one or more job failures")
        self.write_status(job, status)
        if job_failed:  # the Job controller removes the failed Job's running pods
            self.delete_objects(job, active)

    def runtime(self, job) -> dict | None:
        ref = (job.get("spec") or {}).get("runtimeRef") or {}
        name = ref.get("name", "")
        found = None
        if ref.get("kind", "ClusterTrainingRuntime") == "ClusterTrainingRuntime" and \
                ref.get("apiGroup", GROUP) == GROUP:
            found = self.store.get(RUNTIMES_KEY, "", name)
        if found is None:
            self.event(job, "Warning", "TrainJobResourcesCreationFailed",
                       f'TrainJob resources reconciliation failed: clustertrainingruntimes.{GROUP} "{name}" not found')
            self.requeue_after(job, 2.0)
        return found

    @staticmethod
    def condition(status, type_, reason, message) -> None:
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != type_]
        conditions.append({"type": type_, "status": "True", "reason": reason, "message": message,
                           "lastTransitionTime": Operator.now()})
        status["conditions"] = conditions

    # ----- pods
    def pod_template(self, job, base: dict, nodes: int) -> dict:
        """The node pods' template: the runtime's, patched, with the trainer's fields and Torch's variables."""
        spec = job.get("spec") or {}
        template = copy.deepcopy(base)
        template.setdefault("metadata", {})
        pod_spec = template.setdefault("spec", {})
        for patch in spec.get("runtimePatches") or []:
            replicated = ((((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {})
                          .get("replicatedJobs") or [])
            for entry in replicated:
                if entry.get("name") == NODE:
                    _patch_pod(template, ((entry.get("template") or {}).get("spec") or {}).get("template") or {})
        pod_spec.setdefault("restartPolicy", "OnFailure")
        trainer = spec.get("trainer") or {}
        container = next((c for c in pod_spec.get("containers") or [] if c.get("name") == NODE), None)
        if container is None:
            return template
        for field in ("image", "command", "args"):
            if field in trainer:
                container[field] = copy.deepcopy(trainer[field])
        if trainer.get("resourcesPerNode"):
            container["resources"] = copy.deepcopy(trainer["resourcesPerNode"])
        _upsert_env(container, trainer.get("env") or [])
        mem = self.memory(job)
        mem.setdefault("master_port", free_port())
        _upsert_env(container, [
            {"name": "PET_NNODES", "value": str(nodes)},
            {"name": "PET_NPROC_PER_NODE", "value": _nproc_per_node(trainer, container.get("resources") or {})},
            {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {
                "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}},
            {"name": "PET_MASTER_ADDR", "value": "127.0.0.1"},
            {"name": "PET_MASTER_PORT", "value": str(mem["master_port"])},
        ])
        set_env(container, {"PYTHONUNBUFFERED": "1"}, override=False)
        set_env(container, self.base_env(job), override=False)
        return template

    def create_node(self, job, template: dict, index: int) -> dict:
        name = job["metadata"]["name"]
        namespace = job["metadata"].get("namespace", "default")
        job_name = f"{name}-{NODE}-0"
        node = copy.deepcopy(template)
        node["spec"]["hostname"] = f"{job_name}-{index}"
        node["spec"]["subdomain"] = name
        jobset = {JOBSET_NAME: name, "jobset.sigs.k8s.io/jobset-uid": job["metadata"]["uid"],
                  "jobset.sigs.k8s.io/replicatedjob-name": NODE, "jobset.sigs.k8s.io/replicatedjob-replicas": "1",
                  "jobset.sigs.k8s.io/global-replicas": "1", JOB_INDEX: "0",
                  "jobset.sigs.k8s.io/job-global-index": "0", "jobset.sigs.k8s.io/restart-attempt": "0",
                  "jobset.sigs.k8s.io/job-key": hashlib.sha1(f"{namespace}/{job_name}".encode()).hexdigest()}
        labels = {**jobset, "batch.kubernetes.io/job-name": job_name, "job-name": job_name,
                  COMPLETION_INDEX: str(index)}
        annotations = {**jobset, COMPLETION_INDEX: str(index)}
        return self.create_pod(job, f"{job_name}-{index}-{self.suffix()}", node, labels, annotations)


def _node_job(runtime: dict) -> dict:
    jobs = (((runtime.get("spec") or {}).get("template") or {}).get("spec") or {}).get("replicatedJobs") or []
    return next((j for j in jobs if j.get("name") == NODE), {})


def _index(pod: dict) -> str:
    return ((pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)) or ""


def _nproc_per_node(trainer: dict, resources: dict) -> str:
    if trainer.get("numProcPerNode") is not None:
        return str(trainer["numProcPerNode"])
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if any(parse_quantity(side.get("nvidia.com/gpu", 0)) for side in (limits, requests)):
        return "auto"
    cpu = requests.get("cpu") or limits.get("cpu")
    return str(max(1, math.ceil(parse_quantity(cpu)) if cpu else 1))


def _upsert_env(container: dict, entries: list[dict]) -> None:
    """Trainer's ``apply.UpsertEnvVars``: replace a same-named variable where it is, else append."""
    env = list(container.get("env") or [])
    for entry in entries:
        at = next((i for i, e in enumerate(env) if e.get("name") == entry.get("name")), None)
        if at is None:
            env.append(copy.deepcopy(entry))
        else:
            env[at] = copy.deepcopy(entry)
    container["env"] = env


def _merge_named(into: list, extra: list, merge) -> list:
    out = [copy.deepcopy(item) for item in into]
    for item in extra:
        at = next((i for i, e in enumerate(out) if e.get("name") == item.get("name")), None)
        if at is None:
            out.append(copy.deepcopy(item))
        else:
            out[at] = merge(out[at], item)
    return out


def _patch_container(base: dict, patch: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if key in ("env", "volumeMounts"):
            merged[key] = _merge_named(merged.get(key) or [], value or [], lambda _old, new: copy.deepcopy(new))
        elif key != "name":
            merged[key] = copy.deepcopy(value)
    return merged


def _patch_pod(template: dict, patch: dict) -> None:
    """A runtime patch on the pod template (a strategic merge: lists of named items merged by name)."""
    meta = template.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        if (patch.get("metadata") or {}).get(key):
            meta[key] = {**(meta.get(key) or {}), **patch["metadata"][key]}
    spec = template.setdefault("spec", {})
    for key, value in (patch.get("spec") or {}).items():
        if key in ("containers", "initContainers"):
            spec[key] = _merge_named(spec.get(key) or [], value or [], _patch_container)
        elif key in ("volumes", "imagePullSecrets"):
            spec[key] = _merge_named(spec.get(key) or [], value or [], lambda _old, new: copy.deepcopy(new))
        elif key == "nodeSelector":
            spec[key] = {**(spec.get(key) or {}), **value}
        elif key == "tolerations":
            spec[key] = [*(spec.get(key) or []), *copy.deepcopy(value)]
        else:
            spec[key] = copy.deepcopy(value)
