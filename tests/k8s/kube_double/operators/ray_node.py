"""``ray`` CLI for the fake RayJob operator's pods: ``python ray_node.py start ...`` is ``ray start ...`` with the
node's address kept on 127.0.0.1; ``python ray_node.py job -- ENTRYPOINT`` starts a job's driver as Ray's job
supervisor does (see :func:`run_job`).

Ray replaces a loopback ``--node-ip-address`` with this machine's outward address (``resolve_ip_for_localhost``,
``node_ip_address_from_perspective``); on the double every pod is 127.0.0.1, so both are made to answer 127.0.0.1
before the real CLI runs. (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` does the same for a head and a driver, but makes
``ray start --address=...`` refuse to start a worker node.)
"""

import os
import sys

# this file's folder holds the operator module ray.py: it must not shadow the ray package
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import ray._private.node as ray_node  # noqa: E402
import ray._private.services as services  # noqa: E402


def _loopback(*args, **kwargs):
    return "127.0.0.1"


services.node_ip_address_from_perspective = _loopback
services.resolve_ip_for_localhost = lambda host: "127.0.0.1" if services.is_localhost(host) else host

_prepare_socket_file = ray_node.Node._prepare_socket_file


def _own_socket_file(self, socket_path, default_prefix):
    """Every node of a cluster on the double shares the head's session folder, where Ray names a node's raylet and
    plasma sockets ``raylet.N`` with the first N no file has yet: two worker pods starting together took the same
    N, and the second raylet died on bind ("Address already in use"). On a real cluster each node is its own
    machine; here each node process names its sockets after its pid."""
    if socket_path is None:
        socket_path = os.path.join(self._sockets_dir, f"{default_prefix}.{os.getpid()}")
    return _prepare_socket_file(self, socket_path, default_prefix)


ray_node.Node._prepare_socket_file = _own_socket_file


def run_job(entrypoint: str) -> None:
    """Start a RayJob's driver as KubeRay's submitter (``ray job submit --runtime-env-json ...``) and Ray's job
    supervisor on the head do: the job's runtime env (``RAY_RUNTIME_ENV_YAML``, the RayJob's ``runtimeEnvYAML``) is
    set up first, with a remote ``working_dir`` (``s3://...zip``) downloaded and unpacked by Ray's own packaging
    code (smart_open and boto3, so the pod's store endpoint and credentials are used); the entrypoint then runs
    there (its working directory, first on ``PYTHONPATH``), with the runtime env's ``env_vars`` and the job config
    in ``RAY_JOB_CONFIG_JSON_ENV_VAR``, so the driver's ``ray.init()`` gives the job's runtime env (and its
    ``working_dir`` URI, which each node's runtime-env agent fetches from the store) to its workers. As in Ray, a
    driver whose ``ray.init(runtime_env=...)`` repeats a field of the job's fails."""
    import asyncio
    import json
    import tempfile

    import yaml
    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

    runtime_env = yaml.safe_load(os.environ.get("RAY_RUNTIME_ENV_YAML") or "") or {}
    env = dict(os.environ)
    working_dir = runtime_env.get("working_dir")
    folder = None
    if working_dir:
        if "://" in working_dir:
            from ray._private.runtime_env.packaging import download_and_unpack_package

            base = os.path.join(os.environ.get("TMPDIR") or tempfile.gettempdir(), "runtime_resources",
                                "working_dir_files")
            folder = asyncio.run(download_and_unpack_package(working_dir, base))
        elif os.path.isdir(working_dir):
            folder = working_dir
        else:
            sys.exit(f"runtime_env working_dir {working_dir!r} is not a directory or a remote URI")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH")) if p)
    env.update({k: str(v) for k, v in (runtime_env.get("env_vars") or {}).items()})
    env[RAY_JOB_CONFIG_JSON_ENV_VAR] = json.dumps({
        "runtime_env": runtime_env, "metadata": {"job_submission_id": env.get("RAY_JOB_SUBMISSION_ID", "")}})
    env["PYTHONUNBUFFERED"] = "1"
    if folder:
        os.chdir(folder)
    os.execvpe("/bin/bash", ["/bin/bash", "-lc", "--", entrypoint], env)


if __name__ == "__main__":
    if sys.argv[1:2] == ["job"]:
        run_job(sys.argv[-1])
    from ray.scripts.scripts import main

    sys.argv[0] = "ray"
    sys.exit(main())
