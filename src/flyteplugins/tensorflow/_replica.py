"""One replica of an embedded TensorFlow job: ``python -m flyteplugins.tensorflow._replica <flyte.runtime args>``.

It is our runtime (``flyte.runtime``: the task through the controller, outputs or ``error.json`` under
``--outputs``), as a TFJob's pod runs it, plus one thing a pod gets from Kubernetes: it dies with the process that
started it (SIGKILL when the task process goes), so no replica outlives its job.
"""

from __future__ import annotations

import signal
import sys


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except Exception:
        pass


if __name__ == "__main__":
    _die_with_parent()
    from flyte.runtime import main

    sys.exit(main(sys.argv[1:]))
