"""A test double of the Databricks Jobs API, following the documented Jobs API 2.1 (REST reference "Jobs": Submit a
one-time run, Get a single job run, Get the output for a single run, Cancel a run) and the shapes of the official
``databricks-sdk`` (``databricks.sdk.service.jobs``): every response it sends is read back with the SDK's data class
(``SubmitRunResponse``, ``Run``, ``RunOutput``) and must come out identical (:mod:`.shapes`); a response that would
not is recorded in ``violations`` and answered 500, so the double cannot drift from the real shapes unnoticed.

Endpoints, on ``http://127.0.0.1:<port>`` (``JobsDouble.url``, a workspace's ``https://<instance>``):

- ``POST /api/2.1/jobs/runs/submit``: the request must have the documented shape (known fields; each of ``tasks``
  a ``SubmitTask``), exactly one task with a ``spark_python_task``, and ``new_cluster`` (with ``spark_version``
  and ``num_workers`` or ``autoscale``) or the ``existing_cluster_id`` of a cluster in ``clusters``; otherwise
  400 ``INVALID_PARAMETER_VALUE``. Answers ``{"run_id": N}``. ``idempotency_token`` (at most 64 characters): a
  token seen before answers the run it started, so one run per token.
- ``GET /api/2.1/jobs/runs/get?run_id=N``: the run (``state``: ``life_cycle_state``, ``result_state`` once
  TERMINATED, ``state_message``, ``user_cancelled_or_timedout``; ``status`` with ``termination_details``;
  timings; ``run_page_url`` ``<url>/?o=...#job/<job_id>/run/<run_id>``; ``tasks`` with the one task run and its
  own ``run_id``). A task run's id gives that task run.
- ``GET /api/2.1/jobs/runs/get-output?run_id=N`` of a task run: ``metadata``, ``logs`` (the driver's stdout, last
  5 MB, ``logs_truncated``), and for a failed run ``error`` (the last exception line of its stderr) and
  ``error_trace`` (the end of its stderr). For the parent run of a multi-task-format submission (what a ``tasks``
  list makes) it answers 400, as the service does.
- ``POST /api/2.1/jobs/runs/cancel`` ``{"run_id": N}``: a run not ended goes TERMINATING then TERMINATED/CANCELED
  (its driver killed); an ended run is left as it is. Answers ``{}``.
- Unknown run ids: 400 ``INVALID_PARAMETER_VALUE`` "Run N does not exist.". No ``Authorization`` header: 401
  ``UNAUTHENTICATED``; another token than the double's: 403 ``PERMISSION_DENIED`` "Invalid access token.".

Files API 2.0 (:mod:`.files`) over Unity Catalog volumes (``/Volumes/main/flyte/data`` exists): files (PUT, GET,
HEAD, DELETE) and directories (PUT ``mkdir -p``, GET listing with pages, HEAD, DELETE when empty), kept under the
double's ``root``, where a run's driver finds them: its ``/Volumes/...`` parameters are given as those local paths
(the double's stand-in for the cluster's volume mount).

Life cycle (:mod:`.runs`): QUEUED (``queue_s``) -> PENDING (``setup_s``, the cluster starting) -> RUNNING -> TERMINATING
(``cleanup_s``) -> TERMINATED with SUCCESS (exit code 0), FAILED (non-zero), CANCELED (runs/cancel) or TIMEDOUT
(``timeout_seconds`` of the run or its task passed: the driver is killed). RUNNING really executes the task: the
``python_file`` (``s3://``/``gs://``/``abfs://`` read with this environment's credentials; ``file://`` or a local
path; ``dbfs:/``, ``/Workspace/...``, ``/Volumes/...`` under the double's ``root``) is run by pyspark's
``spark-submit`` (client mode, ``local[N]``), the parameters as its arguments, with ``DATABRICKS_RUNTIME_VERSION``
(from ``spark_version``) and the cluster's ``spark_env_vars`` and ``spark_conf``, in a process group that cancel,
timeout and ``stop()`` kill. A missing ``python_file`` fails the run (FAILED, ``FileNotFoundError``).

Faults: ``fail(endpoint, status, times, retry_after, after_apply)`` answers the next requests 429 (with
``Retry-After``) or 5xx, before or after doing their work (an answer lost on the way back: a runs/submit whose run
was started); ``doom_next_run("INTERNAL_ERROR" | "SKIPPED", message)`` ends the next run in that life-cycle state
from PENDING.

Simplified: one task per run; only ``spark_python_task`` on classic compute (no serverless, notebooks, jars, Git
sources); ``libraries`` are checked for shape, not installed (this environment is the cluster's); no
``max_retries`` (runs/submit runs are not retried by the service either), no job clusters, no queue limits, no
pagination, permissions or run-as. Requests are recorded in ``requests`` without their headers.
"""

from .server import DEFAULT_CLUSTER, JobsDouble

__all__ = ["DEFAULT_CLUSTER", "JobsDouble"]
