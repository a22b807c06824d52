"""A fake SparkApplication operator: imitates kubeflow/spark-operator v2.x (``sparkoperator.k8s.io/v1beta2``).

What it does (as the operator and the Spark driver pod it submits do):

* a new SparkApplication is "submitted": ``status.applicationState.state: SUBMITTED``, ``submissionAttempts: 1``,
  ``lastSubmissionAttemptTime``, ``executionAttempts: 1``, ``sparkApplicationId`` (``spark-<32 hex>``, also passed
  as ``spark.app.id``), ``submissionID`` and ``driverInfo.podName``;
* the driver pod ``<name>-driver`` is created (restartPolicy Never), starting from ``spec.driver.template`` when
  given (its container named ``spark-kubernetes-driver``, else its first container, gets the command), with the
  labels ``spec.driver.labels`` + ``spark-role: driver``, ``spark-app-name: <name>``, ``spark-app-selector: <app
  id>``, ``sparkoperator.k8s.io/app-name: <name>``, ``sparkoperator.k8s.io/launched-by-spark-operator: "true"``,
  ``sparkoperator.k8s.io/submission-id``; the annotations ``spec.driver.annotations``; the container named
  ``spark-kubernetes-driver`` (image ``driver.image`` or ``spec.image``); env ``spec.driver.env`` and
  ``envFrom``; ``serviceAccountName: spec.driver.serviceAccount``; a cpu request of ``driver.coreRequest`` (else
  sparkConf's ``spark.kubernetes.driver.request.cores``, else ``driver.cores``) and a cpu limit of
  ``driver.coreLimit`` (else ``spark.kubernetes.driver.limit.cores``), as spark-submit sizes the driver pod (a value
  the API server rejects, e.g. a cpu request that is not a quantity, fails the pod's creation: SUBMISSION_FAILED);
* the driver container runs a real ``spark-submit`` (the installed pyspark's ``bin/spark-submit``) in client deploy
  mode, like the real driver pod's entrypoint does: ``--master local[N] --deploy-mode client --name <name>``
  ``--conf k=v`` for ``spec.sparkConf`` (but ``spark.master``/``spark.submit.deployMode``), ``--conf
  spark.hadoop.k=v`` for ``spec.hadoopConf``, ``--conf spark.executor.instances/cores/memory`` and
  ``spark.driver.cores/memory`` from the spec, then for ``type: Python`` the main file and ``spec.arguments``, for
  Java/Scala ``--class <mainClass> <jar> <arguments>`` (a real JVM application: the jar is run by spark-submit on
  the local master, and a main class that cannot be loaded fails the driver with spark-submit's message). ``mainApplicationFile`` loses its ``local://`` (or
  ``file://``) scheme; a path that does not exist here is looked up by its basename on ``PATH`` (e.g.
  ``local:///usr/local/bin/flyte-runtime.py`` -> the first ``flyte-runtime.py`` on ``PATH``); otherwise the
  submission fails.
  ``PYSPARK_PYTHON``/``PYSPARK_DRIVER_PYTHON`` are this environment's Python, ``SPARK_LOCAL_IP=127.0.0.1``;
* the driver pod's phase drives the state: Running -> ``RUNNING``; Succeeded -> ``COMPLETED``; Failed ->
  ``FAILED`` with ``errorMessage: "driver container failed with ExitCode: <code>, Reason: <reason>"``; a vanished
  driver pod -> ``FAILED`` (``driver pod not found``); ``terminationTime`` on the terminal states; events
  SparkApplicationSubmitted/SparkDriverRunning/SparkDriverCompleted/SparkDriverFailed/...;
* a submission that cannot be made (driver pod not created, main file not resolvable) -> ``SUBMISSION_FAILED``
  with ``errorMessage``, and (as with ``restartPolicy: Never`` there is no retry) ``FAILED`` a second later;
* ``spec.timeToLiveSeconds``: the SparkApplication is deleted that long after ``terminationTime``.

Simplified: no executor pods -- ``local[N]`` runs the executors as threads of the driver JVM, N =
``executor.instances`` x ``executor.cores`` (2 when neither is given; at most 4), so ``executorState`` stays empty;
SUBMITTED -> RUNNING -> COMPLETED/FAILED skips the SUCCEEDING/FAILING steps; ``restartPolicy`` is always treated as
``Never`` (OnFailure/Always are not retried); no webhook (volumes, tolerations... of driver/executor specs other
than the template are ignored), no driver UI Service/Ingress (``spark.ui.enabled=false`` unless sparkConf sets it),
no ``deps`` download (jars/files/pyFiles are passed to spark-submit as ``--jars``/``--files``/``--py-files`` when
they are local paths), no memory requests or limits (``memory``, ``memoryOverhead``, ``memoryLimit``) and no
``gpu`` on the driver pod (this machine's kubelet has neither to enforce), no dynamicAllocation, suspend, or R. The driver's
scratch (``spark.local.dir``, ``java.io.tmpdir``, ``TMPDIR``) is a per-application folder of the double, removed
with the application.
"""

from __future__ import annotations

import copy
import os
import sys
import time
import uuid

from .base import Operator, pod_phase, set_env

TERMINAL = ("COMPLETED", "FAILED")


def spark_submit() -> str:
    import pyspark

    return os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")


def resolve_local(path: str) -> str | None:
    for scheme in ("local://", "file://"):
        if path.startswith(scheme):
            path = path[len(scheme):]
            break
    if "://" in path:
        return None
    if os.path.exists(path):
        return path
    # The image's /usr/local/bin is this environment's PATH; spark-submit reads the file, it need not be executable.
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, os.path.basename(path))
        if folder and os.path.isfile(candidate):
            return candidate
    return None


class SparkApplicationOperator(Operator):
    key = "sparkoperator.k8s.io/sparkapplications"
    component = "spark-operator"

    def reconcile(self, app):
        meta = app["metadata"]
        if meta.get("deletionTimestamp"):
            return
        status = copy.deepcopy(app.get("status") or {})
        state = (status.get("applicationState") or {}).get("state", "")
        if not state:
            self.submit(app, status)
            return
        if state == "SUBMISSION_FAILED":
            # restartPolicy Never: no retries left -> FAILED (after a short pause, so clients can see the step)
            waited = time.monotonic() - self.memory(app).setdefault("failed_at", time.monotonic())
            if waited < 1.0:
                self.requeue_after(app, 1.0 - waited)
                return
            status["applicationState"]["state"] = "FAILED"
            status.setdefault("terminationTime", self.now())
            self.write_status(app, status)
            return
        if state in TERMINAL:
            ttl = (app.get("spec") or {}).get("timeToLiveSeconds")
            if ttl is not None:
                self.delete_after(app, float(ttl), status.get("terminationTime"))
            return
        pod = self.store.get("/pods", meta.get("namespace", ""), f"{meta['name']}-driver")
        if pod is None or not any(r.get("uid") == meta["uid"] for r in pod["metadata"].get("ownerReferences") or []):
            status["applicationState"] = {"state": "FAILED", "errorMessage": "driver pod not found"}
            status["terminationTime"] = self.now()
            self.event(app, "Warning", "SparkDriverFailed", f"Driver {meta['name']}-driver not found")
        else:
            phase = pod_phase(pod)
            driver = status.setdefault("driverInfo", {})
            driver["podName"] = pod["metadata"]["name"]
            if phase == "Running" and state != "RUNNING":
                status["applicationState"] = {"state": "RUNNING"}
                self.event(app, "Normal", "SparkDriverRunning", f"Driver {driver['podName']} is running")
            elif phase == "Succeeded":
                status["applicationState"] = {"state": "COMPLETED"}
                status["terminationTime"] = self.now()
                self.event(app, "Normal", "SparkDriverCompleted", f"Driver {driver['podName']} completed")
            elif phase == "Failed":
                code, reason = _termination(pod)
                status["applicationState"] = {
                    "state": "FAILED",
                    "errorMessage": f"driver container failed with ExitCode: {code}, Reason: {reason}",
                }
                status["terminationTime"] = self.now()
                self.event(app, "Warning", "SparkDriverFailed", f"Driver {driver['podName']} failed")
        stored = self.write_status(app, status)
        if stored is not None and status["applicationState"]["state"] in TERMINAL:
            self.reconcile(stored)

    # ----- submission
    def submit(self, app, status):
        meta, spec = app["metadata"], app.get("spec") or {}
        name = meta["name"]
        now = self.now()
        app_id = f"spark-{uuid.uuid4().hex}"
        submission = str(uuid.uuid4())
        status.update(
            submissionAttempts=1,
            lastSubmissionAttemptTime=now,
            sparkApplicationId=app_id,
            submissionID=submission,
            executionAttempts=1,
            driverInfo={},
        )
        try:
            argv = self.command(app, app_id)
            pod = self.create_pod(app, f"{name}-driver", self.driver_template(app, argv),
                                  self.driver_labels(app, app_id, submission),
                                  (spec.get("driver") or {}).get("annotations"))
        except Exception as exc:
            status["applicationState"] = {
                "state": "SUBMISSION_FAILED",
                "errorMessage": f"failed to run spark-submit: {exc}",
            }
            self.event(app, "Warning", "SparkApplicationSubmissionFailed",
                       f"SparkApplication {name} failed submission: {exc}")
            stored = self.write_status(app, status)
            if stored is not None:
                self.requeue_after(stored, 0.01)
            return
        status["applicationState"] = {"state": "SUBMITTED"}
        status["driverInfo"] = {"podName": pod["metadata"]["name"]}
        self.event(app, "Normal", "SparkApplicationSubmitted",
                   f"SparkApplication {name} was submitted successfully")
        self.write_status(app, status)

    def command(self, app, app_id) -> list[str]:
        spec = app.get("spec") or {}
        driver, executor = spec.get("driver") or {}, spec.get("executor") or {}
        instances, cores = executor.get("instances"), executor.get("cores")
        n = 2 if instances is None and cores is None else int(instances or 1) * int(cores or 1)
        n = min(max(n, 1), 4)
        scratch = self.scratch(app)
        confs = {
            "spark.app.id": app_id,
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.local.dir": scratch,
        }
        for key, field in (("spark.executor.instances", "instances"), ("spark.executor.cores", "cores"),
                           ("spark.executor.memory", "memory")):
            if executor.get(field) is not None:
                confs[key] = str(executor[field])
        for key, field in (("spark.driver.cores", "cores"), ("spark.driver.memory", "memory")):
            if driver.get(field) is not None:
                confs[key] = str(driver[field])
        for key, value in (spec.get("sparkConf") or {}).items():
            if key in ("spark.master", "spark.submit.deployMode"):
                continue
            confs[key] = str(value)
        java_opts = f"-Djava.io.tmpdir={scratch}"
        confs["spark.driver.extraJavaOptions"] = (
            f"{confs['spark.driver.extraJavaOptions']} {java_opts}" if "spark.driver.extraJavaOptions" in confs
            else java_opts
        )
        for key, value in (spec.get("hadoopConf") or {}).items():
            confs[f"spark.hadoop.{key}"] = str(value)
        argv = [spark_submit(), "--master", f"local[{n}]", "--deploy-mode", "client", "--name", app["metadata"]["name"]]
        for key, value in confs.items():
            argv += ["--conf", f"{key}={value}"]
        deps = spec.get("deps") or {}
        for field, flag in (("jars", "--jars"), ("files", "--files"), ("pyFiles", "--py-files")):
            local = [resolve_local(p) for p in deps.get(field) or []]
            local = [p for p in local if p]
            if local:
                argv += [flag, ",".join(local)]
        main = spec.get("mainApplicationFile") or ""
        resolved = resolve_local(main) if main else None
        if resolved is None:
            raise FileNotFoundError(f"mainApplicationFile {main!r} cannot be resolved")
        app_type = spec.get("type", "Python")
        if app_type == "Python":
            argv.append(resolved)
        elif app_type in ("Java", "Scala"):
            if spec.get("mainClass"):
                argv += ["--class", spec["mainClass"]]
            argv.append(resolved)
        else:
            raise ValueError(f"application type {app_type} is not supported by the double")
        return argv + [str(a) for a in spec.get("arguments") or []]

    def driver_labels(self, app, app_id, submission) -> dict:
        name = app["metadata"]["name"]
        driver = (app.get("spec") or {}).get("driver") or {}
        return {
            **(driver.get("labels") or {}),
            "spark-role": "driver",
            "spark-app-name": name,
            "spark-app-selector": app_id,
            "sparkoperator.k8s.io/app-name": name,
            "sparkoperator.k8s.io/launched-by-spark-operator": "true",
            "sparkoperator.k8s.io/submission-id": submission,
        }

    def driver_template(self, app, argv) -> dict:
        spec = app.get("spec") or {}
        driver = spec.get("driver") or {}
        template = copy.deepcopy(driver.get("template") or {})
        pod_spec = template.setdefault("spec", {})
        containers = pod_spec.setdefault("containers", [])
        container = next((c for c in containers if c.get("name") == "spark-kubernetes-driver"), None)
        if container is None:
            if containers:
                container = containers[0]
            else:
                container = {}
                containers.append(container)
        container["name"] = "spark-kubernetes-driver"
        container["image"] = driver.get("image") or spec.get("image") or container.get("image") or "spark:local"
        container["command"] = argv
        container.pop("args", None)
        env = list(container.get("env") or []) + list(driver.get("env") or [])
        container["env"] = env
        if driver.get("envFrom"):
            container["envFrom"] = list(container.get("envFrom") or []) + list(driver["envFrom"])
        set_env(container, {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
                            "SPARK_LOCAL_IP": "127.0.0.1"})
        set_env(container, self.base_env(app), override=False)
        # As spark-submit sizes the driver pod (the operator's fields are passed as the same settings, after
        # sparkConf, so they win); a value the API server rejects fails the pod's creation, hence the submission.
        conf = spec.get("sparkConf") or {}
        cores = driver.get("coreRequest") or conf.get("spark.kubernetes.driver.request.cores") or driver.get("cores")
        limit = driver.get("coreLimit") or conf.get("spark.kubernetes.driver.limit.cores")
        resources = container.setdefault("resources", {})
        if cores is not None:
            resources.setdefault("requests", {}).setdefault("cpu", str(cores))
        if limit is not None:
            resources.setdefault("limits", {}).setdefault("cpu", str(limit))
        if not resources:
            container.pop("resources")
        if driver.get("serviceAccount"):
            pod_spec["serviceAccountName"] = driver["serviceAccount"]
        pod_spec["restartPolicy"] = "Never"
        return template


def _termination(pod) -> tuple[int, str]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == "spark-kubernetes-driver":
            terminated = (cs.get("state") or {}).get("terminated") or {}
            return terminated.get("exitCode", 1), terminated.get("reason", "Error")
    return 1, "Error"
