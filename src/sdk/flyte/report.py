"""HTML reports of tasks, flyte-sdk style: ``@env.task(report=True)``, then in the task ``flyte.report.log(html)``
(``await flyte.report.log.aio(html)`` in async code), ``replace``, ``get_tab(name)`` and ``flush``.

A report is one page per action with one tab per name ("main" first). It is written when the task ends, and at
each ``flush``, to the run's record directory (``reports/<action>.html``); the run's summary page (``run.url``)
links it and the progress shows its path. In a task without ``report=True`` the calls do nothing, as in flyte-sdk.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._context import current_context
from ._syncify import sync_and_aio

__all__ = ["Report", "Tab", "Timeline", "abbreviate", "current_report", "duration_ms", "flush", "get_tab", "log",
           "replace"]


@dataclass
class Tab:
    """One tab of a report: HTML fragments in the order they were logged."""

    name: str
    content: list[str] = field(default_factory=list)

    def log(self, content: str) -> None:
        self.content.append(str(content))

    def replace(self, content: str) -> None:
        self.content = [str(content)]

    def get_html(self) -> str:
        return "\n".join(self.content)


@dataclass
class Report:
    """A task's report: its tabs by name. ``enabled`` is False for tasks without ``report=True``."""

    name: str
    tabs: dict[str, Tab] = field(default_factory=dict)
    template_path: str | None = None
    enabled: bool = False

    def get_tab(self, name: str, create_if_missing: bool = True) -> Tab:
        if name not in self.tabs:
            if not create_if_missing:
                raise KeyError(f"report {self.name!r} has no tab {name!r}")
            self.tabs[name] = Tab(name)
        return self.tabs[name]

    def has_content(self) -> bool:
        return any(tab.content for tab in self.tabs.values())

    def get_final_report(self) -> str:
        tabs = [tab for tab in self.tabs.values() if tab.content] or [Tab("main", ["<p>(no content)</p>"])]
        buttons = "".join(f"<button onclick=\"show('{i}')\">{html.escape(t.name)}</button>" for i, t in enumerate(tabs))
        panes = "".join(f"<section id='tab{i}' style='display:{'block' if i == 0 else 'none'}'>{t.get_html()}"
                        "</section>" for i, t in enumerate(tabs))
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.name)}</title>"
                "<script>function show(i){document.querySelectorAll('section').forEach("
                "s=>s.style.display='none');document.getElementById('tab'+i).style.display='block'}</script>"
                f"</head><body><h1>{html.escape(self.name)}</h1>{buttons if len(tabs) > 1 else ''}{panes}</body></html>")


_detached = Report("outside a task")


def current_report() -> Report:
    """The running task's report (outside a task: a report that is never written)."""
    context = current_context.get()
    if context is None:
        return _detached
    reports: dict[str, Report] = context.run.reports
    report = reports.get(context.action.name)
    if report is None:
        report = reports[context.action.name] = Report(context.task_name)
    return report


def start_report(run: Any, action: Any, task_name: str) -> Report:
    """Called by the controller when a ``report=True`` task starts."""
    reports: dict[str, Report] = run.reports
    report = reports.get(action.name) or Report(task_name)
    report.enabled = True
    reports[action.name] = report
    return report


def write_report(run: Any, action: Any) -> None:
    """Write ``action``'s report page if its task has ``report=True`` (called at flush and at the task's end)."""
    from . import _records

    report = run.reports.get(action.name)
    if report is None or not report.enabled:
        return
    action.report_path = _records.write_report(run, action, report.get_final_report())


def get_tab(name: str, /, create_if_missing: bool = True) -> Tab:
    """The current report's tab ``name`` (created unless ``create_if_missing=False``)."""
    return current_report().get_tab(name, create_if_missing)


@sync_and_aio
def log(content: str, do_flush: bool = False) -> None:
    """Append HTML to the current report's main tab."""
    current_report().get_tab("main").log(content)
    if do_flush:
        flush()


@sync_and_aio
def replace(content: str, do_flush: bool = False) -> None:
    """Replace the main tab's content."""
    current_report().get_tab("main").replace(content)
    if do_flush:
        flush()


@sync_and_aio
def flush() -> None:
    """Write the current report now (it is also written when the task ends)."""
    context = current_context.get()
    if context is not None:
        write_report(context.run, context.action)


class Timeline:
    """A list of timestamped rows in a tab: ``heading(text)``, ``row(label=..., meta=..., detail=...)``."""

    def __init__(self, tab_name: str = "main") -> None:
        self._tab = get_tab(tab_name)

    def heading(self, text: str) -> None:
        self._tab.log(f"<h3>{html.escape(text)}</h3>")

    def row(self, *, icon: str = "•", label: str = "", meta: str = "", detail: str = "",
            error: str | None = None) -> None:
        error_html = f" <span style='color:#b00'>{html.escape(error)}</span>" if error else ""
        self._tab.log(f"<div>{html.escape(icon)} <b>{html.escape(label)}</b> <i>{html.escape(meta)}</i> "
                      f"{html.escape(detail)}{error_html}</div>")


def abbreviate(value: Any, limit: int = 300) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration_ms(start_iso: str, end_iso: str) -> float:
    """Milliseconds between two ISO-8601 timestamps."""
    return (datetime.fromisoformat(end_iso) - datetime.fromisoformat(start_iso)).total_seconds() * 1000
