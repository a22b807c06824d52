"""Pid markers of lifecycle tests, imported by name (``from _marker_kit import ...``): each worker, rank or replica
of a job writes its pid to ``started-<n>`` in a folder the test watches, to know that all of them run and which
processes must be gone afterwards."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for_started(directory: Path, count: int, timeout: float = 120) -> list[int]:
    """The pids in the first ``count`` markers, once all are written (``write_text`` creates a file before it
    writes it, so an empty marker is not read yet)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        markers = sorted(directory.glob("started-*"))
        if len(markers) >= count and all(m.read_text() for m in markers):
            return [int(m.read_text()) for m in markers]
        time.sleep(0.05)
    started = len(list(directory.glob("started-*")))
    raise AssertionError(f"{count} processes did not start within {timeout}s ({started} did)")
