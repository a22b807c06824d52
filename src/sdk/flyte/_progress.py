"""Run progress: a live tree of actions in a terminal, plain lines otherwise, nothing when quiet.

Rendering happens off the event loop (rich's refresh thread, or a write to stderr that drops output when the reader
went away), so printing never slows or blocks a run.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ._run import Action, RunState

_LIVE_AFTER_SECONDS = 1.0
_SLOW_SECONDS = 0.5  # plain mode reports children that take at least this long
_STATUS_STYLE = {"running": "yellow", "succeeded": "green", "failed": "red", "timed_out": "red", "aborted": "magenta",
                 "queued": "dim"}


def attach_progress(state: RunState) -> Callable[[], None]:
    """Show ``state``'s progress as its options ask; returns the function that stops showing it."""
    mode = state.options.progress
    if mode == "auto":
        if os.environ.get("FLYTE_PROGRESS") in ("quiet", "plain", "rich"):
            mode = os.environ["FLYTE_PROGRESS"]
        else:
            mode = "rich" if _is_tty(sys.stderr) else "plain"
    if mode == "quiet":
        return lambda: None
    if mode == "plain":
        return _PlainProgress(state).stop
    return _LiveProgress(state).stop


def _is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except Exception:
        return False


def _write(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the reader went away: progress is optional


class _PlainProgress:
    """One line when the run starts and ends, one per root or slow (>= 0.5 s) or failed action, with its links."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        state.listeners.append(self.on_event)
        _write(f"[flyte] run {state.name} started")

    def on_event(self, event: str, action: Action) -> None:
        if event == "retry":
            _write(f"[flyte] {action.name} {action.task_name} retrying (attempt {action.attempts + 1})")
            return
        if event != "done":
            return
        if (action.parent is None or action.status != "succeeded" or action.duration >= _SLOW_SECONDS
                or action.report_path):
            links = "".join(f" {label}: {url}" for label, url in action.links.items())
            if action.report_path:
                links += f" report: {action.report_path}"
            why = f" ({action.error})" if action.status == "aborted" and action.error else ""
            _write(f"[flyte] {action.name} {action.task_name} {action.status}{why} in {action.duration:.2f}s{links}")

    def stop(self) -> None:
        reason = self.state.interrupted_by
        why = f" (interrupted by {reason})" if reason else ""
        _write(f"[flyte] run {self.state.name} {self.state.status}{why} in "
               f"{time.monotonic() - self.state.started:.2f}s")


class _LiveProgress:
    """A rich live tree, shown only once the run has lasted a second (short runs print nothing extra)."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.live: Any = None
        self.lock = threading.Lock()
        self.timer = threading.Timer(_LIVE_AFTER_SECONDS, self.start)
        self.timer.daemon = True
        self.timer.start()

    def start(self) -> None:
        from rich.console import Console
        from rich.live import Live

        with self.lock:
            if self.state.status != "running":
                return
            self.live = Live(get_renderable=self.render, console=Console(stderr=True), refresh_per_second=4,
                             transient=False)
            self.live.start()

    def render(self):  # type: ignore[no-untyped-def]
        from rich.tree import Tree

        tree = Tree(f"run [bold]{self.state.name}[/] [{_STATUS_STYLE.get(self.state.status, '')}]{self.state.status}")
        for root in list(self.state.roots):
            self._add(tree, root, depth=0)
        return tree

    def _add(self, parent, action: Action, depth: int) -> None:  # type: ignore[no-untyped-def]
        style = _STATUS_STYLE.get(action.status, "")
        retries = f" retries={action.attempts - 1}" if action.attempts > 1 else ""
        cached = " (cached)" if action.cached else ""
        links = "".join(f"\n  [link={url}]{label}[/link]: {url}" for label, url in action.links.items())
        if action.report_path:
            links += f"\n  report: {action.report_path}"
        node = parent.add(f"{action.name} [bold]{action.task_name}[/] [{style}]{action.status}[/] "
                          f"{action.duration:.2f}s{retries}{cached}{links}")
        children = list(action.children)
        shown = children[:20] if depth < 3 else []
        for child in shown:
            self._add(node, child, depth + 1)
        if len(children) > len(shown):
            done = sum(1 for c in children if c.status == "succeeded")
            node.add(f"[dim]… {len(children) - len(shown)} more ({done}/{len(children)} succeeded)")

    def stop(self) -> None:
        self.timer.cancel()
        with self.lock:
            if self.live is not None:
                self.live.stop()
