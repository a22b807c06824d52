"""One replica of an embedded TensorFlow job: ``python -m flyteplugins.tensorflow._replica <flyte.runtime args>``.

It is our runtime (``flyte.runtime``: the task through the controller, outputs or ``error.json`` under
``--outputs``), as a TFJob's pod runs it, plus one thing a pod gets from Kubernetes: it dies with the process that
started it (SIGKILL when the task process goes), so no replica outlives its job.
"""

from __future__ import annotations

import signal
import sys

from flyteplugins.kubeflow.local import die_with_parent

if __name__ == "__main__":
    die_with_parent(signal.SIGKILL)
    from flyte.runtime import main

    sys.exit(main(sys.argv[1:]))
