"""What a finished local run leaves for people and for ``flyte.remote``: a directory per run with a summary page
(``index.html``, the run's ``url``), the action tree and outcome as JSON, the outputs (when they can be pickled) and
the HTML reports of ``report=True`` tasks.

Where: ``$FLYTE_RUNS_DIR``, else ``$XDG_DATA_HOME/flyte-sdk/runs`` (``~/.local/share/flyte-sdk/runs``). The newest
``KEEP_RUNS`` runs are kept. These are records a person asked for by running, not temporary files: the run's
scratch data is still removed when it ends.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._storage import write_bytes

if TYPE_CHECKING:
    from ._run import Action, RunState

KEEP_RUNS = 100
_MAX_PICKLED_OUTPUT = 32 * 1024 * 1024


def runs_dir() -> Path:
    if os.environ.get("FLYTE_RUNS_DIR"):
        return Path(os.environ["FLYTE_RUNS_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "flyte-sdk" / "runs"


def run_dir(name: str) -> Path:
    return runs_dir() / name


def run_url(name: str) -> str:
    return (run_dir(name) / "index.html").absolute().as_uri()


def write_report(state: RunState, action: Action, page: str) -> str:
    """Write an action's report page; returns its path."""
    path = str(run_dir(state.name) / "reports" / f"{action.name}.html")
    write_bytes(path, page.encode())  # makes the folders; atomic, so a reader never sees half a page
    return path


def write_run(state: RunState, outputs: Any, error: BaseException | None) -> None:
    """Record a finished run (best effort: a record that cannot be written must not fail the run)."""
    try:
        folder = run_dir(state.name)
        record = {
            "name": state.name,
            "status": state.status,
            "started_at": state.started_at,
            "duration": round(state.ended - state.started, 6),
            "error": f"{type(error).__name__}: {error}" if error is not None else None,
            "interrupted_by": state.interrupted_by,
            "actions": [_action_record(root) for root in state.roots],
            "outputs_file": None,
        }
        if error is None:
            record["outputs_file"] = _write_outputs(folder, outputs)
        write_bytes(str(folder / "run.json"), json.dumps(record, indent=1, default=str).encode())
        write_bytes(str(folder / "index.html"), _summary_page(record, repr(outputs) if error is None else None).encode())
        _prune()
    except Exception:  # noqa: BLE001 - the run's own outcome matters more than its record
        import logging

        logging.getLogger("flyte").debug("could not record run %s", state.name, exc_info=True)


def read_run(name: str) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir(name) / "run.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def read_outputs(name: str, record: dict[str, Any]) -> Any:
    import cloudpickle

    if not record.get("outputs_file"):
        raise LookupError(f"run {name}: its outputs were not recorded (they could not be pickled, or it failed)")
    with open(run_dir(name) / record["outputs_file"], "rb") as handle:
        return cloudpickle.load(handle)


def list_runs() -> list[str]:
    """Recorded run names, newest first."""
    folder = runs_dir()
    if not folder.is_dir():
        return []
    entries = [e for e in folder.iterdir() if (e / "run.json").is_file()]
    return [e.name for e in sorted(entries, key=lambda e: e.stat().st_mtime, reverse=True)]


def _write_outputs(folder: Path, outputs: Any) -> str | None:
    import cloudpickle

    try:
        data = cloudpickle.dumps(outputs)
    except Exception:  # noqa: BLE001 - a live engine object (a SparkSession...) cannot be kept
        return None
    if len(data) > _MAX_PICKLED_OUTPUT:
        return None
    write_bytes(str(folder / "outputs.pkl"), data)
    return "outputs.pkl"


def _action_record(action: Action) -> dict[str, Any]:
    return {
        "name": action.name, "task": action.task_name, "kind": action.kind, "status": action.status,
        "duration": round(action.duration, 6), "attempts": action.attempts, "cached": action.cached,
        "error": action.error, "links": dict(action.links), "detail": dict(action.detail),
        "report": action.report_path, "children": [_action_record(child) for child in action.children],
    }


def _summary_page(record: dict[str, Any], outputs: str | None) -> str:
    def tree(actions: list[dict[str, Any]]) -> str:
        items = []
        for a in actions:
            extra = "".join(f" <a href='{html.escape(u)}'>{html.escape(label)}</a>" for label, u in a["links"].items())
            if a["report"]:
                extra += f" <a href='{html.escape(Path(a['report']).as_uri())}'>report</a>"
            detail = "".join(f"<div class='detail'>{html.escape(k)}: <code>{html.escape(v)}</code></div>"
                             for k, v in a["detail"].items())
            error = f"<div class='error'>{html.escape(a['error'])}</div>" if a["error"] else ""
            items.append(f"<li><b>{html.escape(a['task'])}</b> <span class='{a['status']}'>{a['status']}</span> "
                         f"{a['duration']:.2f}s ({html.escape(a['kind'])} {a['name']}){extra}{detail}{error}"
                         f"{tree(a['children'])}</li>")
        return f"<ul>{''.join(items)}</ul>" if items else ""

    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started_at"]))
    result = (f"<h2>Outputs</h2><pre>{html.escape(outputs[:20000])}</pre>" if outputs is not None
              else f"<h2>Error</h2><pre>{html.escape(record['error'] or '')}</pre>")
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>run {html.escape(record['name'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} .succeeded{{color:green}} .failed,.timed_out{{color:#b00}}
.aborted{{color:#a0a}} .detail{{color:#555;font-size:90%}} .error{{color:#b00;white-space:pre-wrap}}</style></head>
<body><h1>run {html.escape(record['name'])}: <span class='{record['status']}'>{record['status']}</span></h1>
<p>started {started}, {record['duration']:.2f}s</p>{result}<h2>Actions</h2>{tree(record['actions'])}</body></html>
"""


def _prune() -> None:
    for name in list_runs()[KEEP_RUNS:]:
        shutil.rmtree(run_dir(name), ignore_errors=True)
