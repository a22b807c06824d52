"""Fault injection of the Kubernetes API server test double, seen by a raw aiohttp client."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest
from kube_double import KubeDouble
from kube_double.testing import async_wait_for, job_manifest

pytestmark = pytest.mark.k8s

CMS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def double():
    with KubeDouble(bookmark_interval_s=0.2) as double:
        yield double


async def post(session, double, path, body):
    async with session.post(double.url + path, json=body) as response:
        return response.status, await response.json()


async def test_drop_watch_cuts_stream(double):
    async with aiohttp.ClientSession() as session:
        for name in ("d1", "d2", "d3"):
            assert (await post(session, double, CMS, {"metadata": {"name": name}}))[0] == 201
        double.faults.drop_watches(n=1, after_events=2)
        received = []
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.get(double.url + CMS, params={"watch": "1"}) as response:
                async for line in response.content:
                    received.append(json.loads(line)["object"]["metadata"]["name"])
        assert received == ["d1", "d2"]
        # the fault cleared: the next watch sees everything and ends cleanly at timeoutSeconds
        async with session.get(double.url + CMS, params={"watch": "true", "timeoutSeconds": "1"}) as response:
            names = [json.loads(line)["object"]["metadata"]["name"] async for line in response.content]
        assert names == ["d1", "d2", "d3"]


async def test_stall_watch_sends_nothing(double):
    async with aiohttp.ClientSession() as session:
        await post(session, double, CMS, {"metadata": {"name": "s1"}})
        double.faults.stall_watches(n=1, seconds=1.0)
        started = time.monotonic()
        async with session.get(
            double.url + CMS, params={"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "3"}
        ) as response:
            assert response.status == 200
            first = json.loads(await response.content.readline())
        assert time.monotonic() - started >= 0.95
        assert first["type"] == "ADDED"
        async with session.get(
            double.url + CMS,
            params={
                "watch": "true",
                "allowWatchBookmarks": "true",
                "resourceVersion": first["object"]["metadata"]["resourceVersion"],
                "timeoutSeconds": "2",
            },
        ) as response:
            event = json.loads(await response.content.readline())
        assert event["type"] == "BOOKMARK" and int(event["object"]["metadata"]["resourceVersion"]) > 0


async def test_throttle_and_server_errors(double):
    async with aiohttp.ClientSession() as session:
        double.faults.throttle(n=2, retry_after=1, path_contains="configmaps")
        for _ in range(2):
            async with session.get(double.url + CMS) as response:
                assert response.status == 429 and response.headers["Retry-After"] == "1"
                assert (await response.json())["reason"] == "TooManyRequests"
        async with session.get(double.url + "/api/v1/namespaces/default/pods") as response:
            assert response.status == 200
        async with session.get(double.url + CMS) as response:
            assert response.status == 200
        double.faults.fail(n=1, status=503)
        async with session.get(double.url + CMS) as response:
            body = await response.json()
            assert response.status == 503 and body["reason"] == "ServiceUnavailable" and body["kind"] == "Status"
        double.faults.fail(n=1, status=500, method="POST")
        async with session.get(double.url + CMS) as response:
            assert response.status == 200
        status, body = await post(session, double, CMS, {"metadata": {"name": "e1"}})
        assert status == 500 and body["reason"] == "InternalError"
        assert (await post(session, double, CMS, {"metadata": {"name": "e1"}}))[0] == 201
    assert ("POST", CMS) in double.requests


async def test_reject_create_like_a_quota(double):
    async with aiohttp.ClientSession() as session:
        double.faults.reject_create("pods", n=1)
        status, body = await post(
            session,
            double,
            "/api/v1/namespaces/default/pods",
            {"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"]}]}},
        )
        assert status == 403 and body["reason"] == "Forbidden" and "exceeded quota" in body["message"]
        # the Job controller meets the same rejection, reports it and retries
        double.faults.reject_create("pods", n=1)
        status, _ = await post(
            session, double, "/apis/batch/v1/namespaces/default/jobs", job_manifest("quota-job", "print('hi')")
        )
        assert status == 201

        def complete():
            jobs = double.objects("jobs")
            return jobs and any(c["type"] == "Complete" for c in jobs[0]["status"].get("conditions", []))

        await async_wait_for(complete, 10)
        reasons = [e["reason"] for e in double.objects("events") if e["involvedObject"]["name"] == "quota-job"]
        assert "FailedCreate" in reasons and "SuccessfulCreate" in reasons
