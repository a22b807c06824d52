"""How the tier reaches a cluster and a store: a kubeconfig context other than the current one, the in-cluster
service account, and the object-store URI schemes besides s3:// (which every remote test uses).

The context test talks to the API server double (see ``kube_double``). The in-cluster test runs kubernetes_asyncio's
real in-cluster loader on a service-account token and CA written where a pod has them (the paths patched into the
loader's module), and checks the client it configures; no pod of the double runs in-cluster, since the double speaks
plain HTTP and the in-cluster loader only HTTPS."""

from __future__ import annotations

import asyncio

import pytest
import yaml
from _k8s_testkit import REAL_CLUSTER

from flyte import _objstore
from flyte._k8s.client import ApiError, Kube
from flyte._k8s.settings import parse

pytestmark = pytest.mark.k8s


@pytest.mark.parametrize(("uri", "store", "config", "key"), [
    ("gs://models/runs/r1/outputs.pb", "GCSStore", {"bucket": "models"}, "runs/r1/outputs.pb"),
    ("gcs://models/x", "GCSStore", {"bucket": "models"}, "x"),
    ("abfs://runs@acct.dfs.core.windows.net/r1/in.pb", "AzureStore",
     {"container_name": "runs", "account_name": "acct"}, "r1/in.pb"),
    ("s3://bucket/p/q", "S3Store", {"bucket": "bucket"}, "p/q"),
])
def test_object_store_uris_make_the_clouds_stores(uri, store, config, key, monkeypatch):
    monkeypatch.setattr(_objstore, "_stores", {})
    made, object_key = _objstore._split(uri)
    assert type(made).__name__ == store and object_key == key
    assert {k: v for k, v in made.config.items() if k in config} == config


def test_azure_account_from_the_environment_and_bad_schemes_named(monkeypatch):
    monkeypatch.setattr(_objstore, "_stores", {})
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
    made, key = _objstore._split("az://runs/r1/in.pb")
    assert type(made).__name__ == "AzureStore" and key == "r1/in.pb"
    with pytest.raises(ValueError, match=r"'ftp://h/x'.*allowed schemes: .*abfs.*gs.*s3"):
        _objstore._split("ftp://h/x")
    for storage in ("gs://bucket/prefix", "abfs://c@a.dfs.core.windows.net/p", "file:///mnt/shared/flyte"):
        assert parse({"storage": storage}).storage_uri == storage


@pytest.mark.slow  # the unreachable context is retried with backoff before it fails
@pytest.mark.skipif(REAL_CLUSTER, reason="rewrites the double's kubeconfig")
def test_a_named_context_is_used_instead_of_the_current_one(kube, tmp_path):
    config = yaml.safe_load(open(kube.kubeconfig))
    double = config["contexts"][0]
    config["clusters"].append({"name": "elsewhere", "cluster": {"server": "http://127.0.0.1:9"}})  # nothing listens
    config["contexts"].append({"name": "elsewhere", "context": {**double["context"], "cluster": "elsewhere"}})
    config["current-context"] = "elsewhere"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))

    async def namespaces(context: str | None) -> list[str]:
        kube_client = await Kube.connect(parse({"kubeconfig": str(path), "context": context}))
        try:
            listed = await kube_client.request("GET", "/api/v1/namespaces", request_timeout=5)
            return [item["metadata"]["name"] for item in listed["items"]]
        finally:
            await kube_client.close()

    assert "default" in asyncio.run(namespaces(double["name"]))
    with pytest.raises(ApiError, match="Unreachable"):
        asyncio.run(asyncio.wait_for(namespaces(None), 120))  # the current context: nothing there


def _self_signed_ca() -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_in_cluster_uses_the_pods_service_account(tmp_path, monkeypatch):
    from kubernetes_asyncio.config import incluster_config

    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("service-account-token")
    ca.write_bytes(_self_signed_ca())
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)

    async def configured(settings: dict) -> tuple[str, str, str | None]:
        kube_client = await Kube.connect(parse(settings))
        try:
            configuration = kube_client._api.configuration
            return configuration.host, configuration.api_key.get("BearerToken", ""), configuration.ssl_ca_cert
        finally:
            await kube_client.close()

    # Explicitly, and by default in a pod that has a service account but no kubeconfig.
    for settings in ({"in_cluster": True}, {}):
        host, bearer, ca_file = asyncio.run(configured(settings))
        assert host == "https://10.96.0.1:443"
        assert bearer == "Bearer service-account-token" and ca_file == str(ca)
