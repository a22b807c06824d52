"""The run's watches recover by themselves, and the periodic GET catches what a watch never delivers: against the
Kubernetes API server double (a test double of the API server, Job controller and kubelet whose pods are local
processes; see ``kube_double``), which records every watch stream it serves (``KubeDouble.watches``: the version
it was asked to start from, the last version it sent, how it ended).

- A watch stream cut (dropped) or gone silent (stalled) once it delivered a newer version (by an event or a bookmark)
  is resumed from that version, without listing again; with the backstop GET switched off the call still ends, so
  the watches alone carried it.
- A watch event that is lost while the stream stays open (later bookmarks move past it) is never delivered; the
  periodic GET of the call's object still ends the call.
- A call whose pod the pod watch never showed (the object's stream told the end first) still shows the pod's log.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time

import aiohttp
import cloudpickle
import pytest
from _k8s_testkit import wait_clean
from kube_double.testing import create, http

import flyte

# The task below travels to the pod by value, as a script's do: the pod never imports this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.k8s,
              pytest.mark.skipif(__import__("_k8s_testkit").REAL_CLUSTER, reason="drives the double's fault injection")]

env = flyte.TaskEnvironment(name="recovery")
JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"


@env.task
async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"


@env.task
async def wait_for_marker(path: str) -> str:
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return "no marker within 60 s"
        await asyncio.sleep(0.1)
    return "rested"


@env.task
async def say(words: str) -> str:
    print(words, flush=True)
    return words


def _run(seconds: float = 1.0):
    return flyte.with_runcontext(mode="remote").run.aio(nap, seconds=seconds)


def test_the_double_records_watch_streams_and_can_swallow_an_event():
    from kube_double import KubeDouble

    configmaps = "/api/v1/namespaces/default/configmaps"

    async def scenario(double):
        async with aiohttp.ClientSession() as session:
            for name in ("c1", "c2", "c3"):
                async with session.post(double.url + configmaps, json={"metadata": {"name": name}}) as response:
                    assert response.status == 201
            double.faults.swallow_watch_events("configmaps", when=lambda _, obj: obj["metadata"]["name"] == "c2")
            params = {"watch": "true", "timeoutSeconds": "1", "allowWatchBookmarks": "true"}
            async with session.get(double.url + configmaps, params=params) as response:
                return [json.loads(line) async for line in response.content]

    with KubeDouble(bookmark_interval_s=0.2) as double:
        events = asyncio.run(scenario(double))
        assert [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"] == ["c1", "c3"]
        assert double.faults.swallowed == 1
        record = double.watches[-1]
        assert record["resource"] == "configmaps" and record["since"] == "" and record["ended"] == "timeout"
        assert record["last_sent"] == events[-1]["object"]["metadata"]["resourceVersion"]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["drop", "stall"])
def test_a_broken_watch_resumes_from_its_last_version_without_the_backstop(k8s_settings, kube, monkeypatch, fault,
                                                                          tmp_path):
    # No periodic GET: if a watch did not come back by itself, the call would never learn that its Job finished.
    monkeypatch.setattr("flyte._k8s.session.BACKSTOP_S", 3600.0)
    first_watch, first_query = len(kube.watches), len(kube.queries)
    ended = "dropped" if fault == "drop" else "stalled"
    for resource in ("jobs", "pods"):
        if fault == "drop":
            kube.faults.drop_watches(n=1, after_versions=1, resource=resource)
        else:  # silent past the client's watch_stall_timeout (3 s)
            kube.faults.stall_watches(n=1, seconds=30, after_versions=1, resource=resource)

    def streams(resource: str) -> list[dict]:
        return [w for w in list(kube.watches[first_watch:]) if w["resource"] == resource]

    def resumed(resource: str) -> bool:
        seen = streams(resource)
        return any(w["ended"] == ended for w in seen[:-1])

    # The task waits until both broken streams were resumed, and the store's version keeps moving meanwhile (one
    # ConfigMap changing), so each fault strikes at a bookmark of its quiet stream while the call still waits on the
    # watches: never at an event sent after the call ended, whenever the first list happened.
    marker, stop = tmp_path / "resumed", threading.Event()

    def conduct() -> None:
        churn = "/api/v1/namespaces/default/configmaps"
        create(kube, churn, {"metadata": {"name": "churn"}, "data": {"n": "0"}})
        n = 0
        while not stop.wait(0.3):
            n += 1
            http(kube, "PATCH", f"{churn}/churn", {"data": {"n": str(n)}}, content_type="application/merge-patch+json")
            if resumed("jobs") and resumed("pods"):
                marker.touch()
        http(kube, "DELETE", f"{churn}/churn")

    conductor = threading.Thread(target=conduct, daemon=True)
    conductor.start()
    try:
        result = asyncio.run(asyncio.wait_for(
            flyte.with_runcontext(mode="remote").run.aio(wait_for_marker, path=str(marker)), 90))
        assert kube.faults.pending() == 0, "the run ended before meeting every armed fault"
    finally:
        stop.set()
        conductor.join(30)
        kube.faults.clear()
    assert result.outputs()[0] == "rested"
    for resource, path in (("jobs", JOBS), ("pods", PODS)):
        seen = streams(resource)
        broken = next(i for i, w in enumerate(seen) if w["ended"] == ended)
        before, after = seen[broken], seen[broken + 1]
        assert before["last_sent"] is not None and int(before["last_sent"]) > int(before["since"]), seen
        assert after["since"] == before["last_sent"], seen  # resumed where the broken stream left off
        lists = [q for m, q in kube.queries[first_query:] if m == "GET" and q.startswith(f"{path}?")
                 and "watch=" not in q]
        assert len(lists) == 1, lists  # the first sync only: no re-list
    assert wait_clean(kube) == []


@pytest.mark.slow
def test_a_lost_watch_event_is_caught_by_the_periodic_get(k8s_settings, kube, monkeypatch):
    monkeypatch.setattr("flyte._k8s.session.BACKSTOP_S", 3.0)
    start = len(kube.requests)

    def pod_done(_, pod):
        return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")

    def job_done(_, job):
        return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                   for c in (job.get("status") or {}).get("conditions") or [])

    # Every event that says the call ended is lost; the streams stay open and their bookmarks move past them.
    kube.faults.swallow_watch_events("pods", n=1000, when=pod_done)
    kube.faults.swallow_watch_events("jobs", n=1000, when=job_done)
    swallowed = kube.faults.swallowed
    try:
        result = asyncio.run(asyncio.wait_for(_run(), 90))
    finally:
        kube.faults.clear()
    assert result.outputs()[0] == "rested"
    assert kube.faults.swallowed - swallowed >= 2  # at least the Job's completion and the pod's
    gets = [p for m, p in kube.requests[start:] if m == "GET" and p.startswith(f"{JOBS}/")]
    assert gets, "the call ended without the periodic GET"
    assert wait_clean(kube) == []


def test_a_call_whose_pod_the_watch_never_showed_still_shows_its_log(k8s_settings, kube, capsys):
    def primary(_, pod):
        return (pod["metadata"].get("labels") or {}).get("flyte.org/primary") == "true"

    # Every event of the call's pod is lost: only the Job's stream says that the call ended.
    kube.faults.swallow_watch_events("pods", n=1000, when=primary)
    swallowed = kube.faults.swallowed
    try:
        result = asyncio.run(asyncio.wait_for(
            flyte.with_runcontext(mode="remote").run.aio(say, words="heard without the pod's events"), 90))
    finally:
        kube.faults.clear()
    assert result.outputs()[0] == "heard without the pod's events"
    # The fault was live (the pod's creation at least; under load the call can end and stop watching before its
    # pod's later events are sent, and then they count as nothing).
    assert kube.faults.swallowed - swallowed >= 1
    assert "recovery.say] heard without the pod's events" in capsys.readouterr().err
    assert wait_clean(kube) == []
