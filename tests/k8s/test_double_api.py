"""REST semantics of the Kubernetes API server test double, through kubernetes_asyncio and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import time

import aiohttp
import pytest
from kube_double import KubeDouble
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

pytestmark = pytest.mark.k8s

CRD_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "k8s-crds")


@pytest.fixture(scope="module")
def double():
    with KubeDouble(crd_dir=CRD_DIR if os.path.isdir(CRD_DIR) else None, bookmark_interval_s=0.2) as double:
        yield double


@pytest.fixture
async def api(double):
    configuration = client.Configuration()
    await config.load_kube_config(config_file=double.kubeconfig, client_configuration=configuration)
    async with client.ApiClient(configuration) as api_client:
        yield api_client


def cm(name, labels=None, owner=None, finalizers=None, data=None):
    meta = {"name": name, "labels": labels or {}}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
        ]
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


async def raw(double, method, path, body=None, content_type="application/json"):
    async with aiohttp.ClientSession() as session:
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        async with session.request(
            method, double.url + path, data=data, headers={"Content-Type": content_type}
        ) as response:
            return response.status, await response.json(content_type=None)


async def test_list_then_watch_with_bookmarks(double, api):
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", cm("w-first"))
    listing = await core.list_namespaced_config_map("default")
    rv = listing.metadata.resource_version
    await core.create_namespaced_config_map("default", cm("w-second"))
    seen = []
    w = watch.Watch()
    async with w:
        async for event in w.stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=3,
        ):
            name = None if event["type"] == "BOOKMARK" else event["object"].metadata.name
            seen.append((event["type"], name))
            if event["type"] == "BOOKMARK":
                break
    assert seen[0] == ("ADDED", "w-second")  # strictly after the listed version: w-first is not replayed
    assert ("BOOKMARK", None) in seen
    assert int(w.resource_version) >= int(rv)


async def test_watch_from_zero_and_timeout(double, api):
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", cm("z-one", {"app": "z"}))
    events = []
    w = watch.Watch()
    async with w:
        async for event in w.stream(
            core.list_namespaced_config_map, "default", label_selector="app=z", timeout_seconds=1
        ):
            events.append((event["type"], event["object"].metadata.name))
    assert events == [("ADDED", "z-one")]  # synthetic ADDED, then the stream ended after timeoutSeconds


async def test_events_queued_while_a_bookmark_is_due_are_all_sent(double, api):
    """A burst of writes that lands while the stream's bookmark is overdue goes out at once: the stream must not
    wait for the bookmark (or its own timeout) to send what is queued."""
    core = client.CoreV1Api(api)
    listing = await core.list_namespaced_config_map("default")
    names = [f"burst-{i}" for i in range(20)]

    async def burst():  # on the double's loop: block it past the bookmark interval, then queue the writes at once
        time.sleep(2 * double.bookmark_interval_s)
        for name in names:
            obj = cm(name)
            obj["metadata"]["namespace"] = "default"
            double._store.create("/configmaps", obj)

    seen: list[str] = []
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{double.url}/api/v1/namespaces/default/configmaps", params={
            "watch": "true", "resourceVersion": listing.metadata.resource_version,
            "allowWatchBookmarks": "true", "timeoutSeconds": "10"}) as response:
            await asyncio.sleep(0.3)  # the stream waits on its queue
            asyncio.run_coroutine_threadsafe(burst(), double._loop)
            async for line in response.content:
                event = json.loads(line)
                if event["type"] == "ADDED" and event["object"]["metadata"]["name"].startswith("burst-"):
                    seen.append(event["object"]["metadata"]["name"])
                if len(seen) == len(names):
                    break
    assert seen == names
    assert time.monotonic() - started < 5, "the events waited for the stream's timeout"


async def test_410_after_compact(double, api):
    core = client.CoreV1Api(api)
    listing = await core.list_namespaced_config_map("default")
    old = listing.metadata.resource_version
    await core.create_namespaced_config_map("default", cm("c-after"))
    double.faults.compact()
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{double.url}/api/v1/namespaces/default/configmaps", params={"watch": "true", "resourceVersion": old}
        ) as response:
            assert response.status == 200
            lines = [json.loads(line) async for line in response.content if line.strip()]
    assert len(lines) == 1 and lines[0]["type"] == "ERROR"
    assert lines[0]["object"]["code"] == 410 and lines[0]["object"]["reason"] == "Expired"
    w = watch.Watch()
    with pytest.raises(ApiException) as info:
        async with w:
            async for _ in w.stream(core.list_namespaced_config_map, "default", resource_version=old):
                pass
    assert info.value.status == 410


async def test_owner_reference_garbage_collection_and_orphan(double, api):
    core = client.CoreV1Api(api)
    owner = api.sanitize_for_serialization(await core.create_namespaced_config_map("default", cm("gc-owner")))
    await core.create_namespaced_config_map("default", cm("gc-dep", owner=owner))
    await core.delete_namespaced_config_map("gc-owner", "default")
    for _ in range(100):
        if not [o for o in double.objects("configmaps") if o["metadata"]["name"] == "gc-dep"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("dependent not collected")
    owner = api.sanitize_for_serialization(await core.create_namespaced_config_map("default", cm("or-owner")))
    await core.create_namespaced_config_map("default", cm("or-dep", owner=owner))
    await core.delete_namespaced_config_map("or-owner", "default", propagation_policy="Orphan")
    await asyncio.sleep(0.3)
    dep = await core.read_namespaced_config_map("or-dep", "default")
    assert not dep.metadata.owner_references


async def test_finalizer_keeps_object(double, api):
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", cm("fin", finalizers=["example.com/hold"]))
    await core.delete_namespaced_config_map("fin", "default")
    held = await core.read_namespaced_config_map("fin", "default")
    assert held.metadata.deletion_timestamp is not None
    await core.patch_namespaced_config_map("fin", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_config_map("fin", "default")
    assert info.value.status == 404


async def test_foreground_deletion_order(double, api):
    core = client.CoreV1Api(api)
    owner = api.sanitize_for_serialization(await core.create_namespaced_config_map("default", cm("fg-owner")))
    await core.create_namespaced_config_map("default", cm("fg-dep", owner=owner, finalizers=["example.com/slow"]))
    rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
    await core.delete_namespaced_config_map("fg-owner", "default", propagation_policy="Foreground")
    owner_now = await core.read_namespaced_config_map("fg-owner", "default")
    assert owner_now.metadata.deletion_timestamp and "foregroundDeletion" in owner_now.metadata.finalizers
    for _ in range(100):
        dep = await core.read_namespaced_config_map("fg-dep", "default")
        if dep.metadata.deletion_timestamp:
            break
        await asyncio.sleep(0.05)
    assert dep.metadata.deletion_timestamp
    await core.read_namespaced_config_map("fg-owner", "default")  # still waiting for its dependent
    await core.patch_namespaced_config_map("fg-dep", "default", {"metadata": {"finalizers": None}})
    deleted = []
    w = watch.Watch()
    async with w:
        async for event in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5):
            if event["type"] == "DELETED":
                deleted.append(event["object"].metadata.name)
                if "fg-owner" in deleted:
                    break
    assert deleted == ["fg-dep", "fg-owner"]


async def test_selectors(double, api):
    core = client.CoreV1Api(api)
    for name, labels in (
        ("sel-a", {"tier": "web", "env": "prod"}),
        ("sel-b", {"tier": "db", "env": "prod"}),
        ("sel-c", {"tier": "web"}),
    ):
        await core.create_namespaced_config_map("default", cm(name, labels))

    async def names(**kwargs):
        items = (await core.list_namespaced_config_map("default", **kwargs)).items
        return sorted(i.metadata.name for i in items if i.metadata.name.startswith("sel-"))

    assert await names(label_selector="tier=web") == ["sel-a", "sel-c"]
    assert await names(label_selector="tier==web,env=prod") == ["sel-a"]
    assert await names(label_selector="tier!=web,tier") == ["sel-b"]
    assert await names(label_selector="tier in (db, web),env") == ["sel-a", "sel-b"]
    assert await names(label_selector="tier notin (web),tier") == ["sel-b"]
    assert await names(label_selector="tier,!env") == ["sel-c"]
    assert await names(field_selector="metadata.name=sel-b") == ["sel-b"]
    assert await names(field_selector="metadata.name!=sel-b,metadata.namespace=default") == ["sel-a", "sel-c"]
    all_ns = await core.list_config_map_for_all_namespaces(label_selector="tier=db")
    assert [i.metadata.name for i in all_ns.items] == ["sel-b"]
    status, body = await raw(double, "GET", "/api/v1/namespaces/default/configmaps?fieldSelector=spec.nope%3Dx")
    assert status == 400 and body["reason"] == "BadRequest"


async def test_conflicts_and_validation(double, api):
    core = client.CoreV1Api(api)
    created = await core.create_namespaced_config_map("default", cm("dup"))
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_config_map("default", cm("dup"))
    assert info.value.status == 409 and json.loads(info.value.body)["reason"] == "AlreadyExists"
    created.data = {"k": "v1"}
    updated = await core.replace_namespaced_config_map("dup", "default", created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"k": "stale"}
    with pytest.raises(ApiException) as info:
        await core.replace_namespaced_config_map("dup", "default", created)
    assert info.value.status == 409 and json.loads(info.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_config_map("default", cm("Bad_Name"))
    assert info.value.status == 422 and "metadata.name" in json.loads(info.value.body)["message"]
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_config_map("missing-ns", cm("x"))
    assert info.value.status == 404 and 'namespaces "missing-ns" not found' in json.loads(info.value.body)["message"]
    generated = await core.create_namespaced_config_map(
        "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    )
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == 9
    batch = client.BatchV1Api(api)
    long_name = "j" * 64
    with pytest.raises(ApiException) as info:
        await batch.create_namespaced_job(
            "default",
            {
                "metadata": {"name": long_name},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
            },
        )
    assert info.value.status == 422


async def test_patch_kinds_and_status_subresource(double, api):
    core = client.CoreV1Api(api)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "patchme"},
        "spec": {
            "nodeName": "elsewhere",
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
                {"name": "b", "image": "y"},
            ],
        },
    }
    # a pod bound to another node is not the fake kubelet's: it stays Pending as it is
    if True:
        await core.create_namespaced_pod("default", pod)
        patched = await core.patch_namespaced_pod(
            "patchme", "default", {"spec": {"containers": [{"name": "a", "env": [{"name": "B", "value": "2"}]}]}}
        )  # strategic merge by name
        containers = {c.name: c for c in patched.spec.containers}
        assert set(containers) == {"a", "b"}
        assert [(e.name, e.value) for e in containers["a"].env] == [("A", "1"), ("B", "2")]
        status, body = await raw(
            double,
            "PATCH",
            "/api/v1/namespaces/default/pods/patchme",
            [{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}],
            "application/json-patch+json",
        )
        assert status == 200 and body["metadata"]["labels"] == {"x": "y"}
        # main-resource writes ignore status; /status writes change only status
        status, body = await raw(
            double,
            "PATCH",
            "/api/v1/namespaces/default/pods/patchme",
            {"status": {"phase": "Bogus"}, "metadata": {"labels": {"m": "1"}}},
            "application/merge-patch+json",
        )
        assert body["status"]["phase"] != "Bogus" and body["metadata"]["labels"]["m"] == "1"
        status, body = await raw(
            double,
            "PATCH",
            "/api/v1/namespaces/default/pods/patchme/status",
            {"status": {"message": "hi"}, "metadata": {"labels": {"n": "2"}}},
            "application/merge-patch+json",
        )
        assert body["status"]["message"] == "hi" and "n" not in body["metadata"]["labels"]
        assert body["status"]["phase"] == "Pending"
        await core.delete_namespaced_pod("patchme", "default", grace_period_seconds=0)


@pytest.mark.skipif(not os.path.isdir(CRD_DIR), reason="no CRDs")
async def test_custom_resources(double, api):
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "cr-one"},
        "spec": {"entrypoint": "python x.py"},
    }
    created = await custom.create_namespaced_custom_object("ray.io", "v1", "default", "rayjobs", body)
    assert created["metadata"]["uid"] and created["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as info:
        await custom.create_namespaced_custom_object(
            "ray.io",
            "v1",
            "default",
            "rayjobs",
            {**body, "metadata": {"name": "cr-two"}, "spec": {"entrypoint": "x", "foo": 1}},
        )
    assert info.value.status == 422 and 'unknown field "spec.foo"' in json.loads(info.value.body)["message"]
    with pytest.raises(ApiException) as info:
        await custom.create_namespaced_custom_object(
            "ray.io", "v1", "default", "rayjobs", {**body, "metadata": {"name": "cr-three"}, "spec": {"entrypoint": 5}}
        )
    assert info.value.status == 422 and "spec.entrypoint" in json.loads(info.value.body)["message"]
    status, reply = await raw(
        double,
        "PATCH",
        "/apis/ray.io/v1/namespaces/default/rayjobs/cr-one",
        {"spec": {"entrypoint": "y"}},
        "application/strategic-merge-patch+json",
    )
    assert status == 415
    status, reply = await raw(
        double,
        "PATCH",
        "/apis/ray.io/v1/namespaces/default/rayjobs/cr-one",
        {"spec": {"entrypoint": "y"}, "status": {"jobStatus": "RUNNING"}},
        "application/merge-patch+json",
    )
    assert status == 200 and reply["spec"]["entrypoint"] == "y" and reply["metadata"]["generation"] == 2
    assert "jobStatus" not in (reply.get("status") or {})  # status subresource: main writes ignore status
    status, reply = await raw(
        double,
        "PATCH",
        "/apis/ray.io/v1/namespaces/default/rayjobs/cr-one/status",
        {"status": {"jobStatus": "RUNNING"}},
        "application/merge-patch+json",
    )
    assert status == 200 and reply["status"]["jobStatus"] == "RUNNING" and reply["metadata"]["generation"] == 2
    assert double.objects("rayjobs")[0]["status"]["jobStatus"] == "RUNNING"
    await custom.delete_namespaced_custom_object("ray.io", "v1", "default", "rayjobs", "cr-one")
    assert double.objects("rayjobs") == []
