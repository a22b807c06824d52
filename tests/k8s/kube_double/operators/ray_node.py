"""``ray`` CLI for the fake RayJob operator's pods: ``python ray_node.py start ...`` is ``ray start ...`` with the
node's address kept on 127.0.0.1.

Ray replaces a loopback ``--node-ip-address`` with this machine's outward address (``resolve_ip_for_localhost``,
``node_ip_address_from_perspective``); on the double every pod is 127.0.0.1, so both are made to answer 127.0.0.1
before the real CLI runs. (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` does the same for a head and a driver, but makes
``ray start --address=...`` refuse to start a worker node.)
"""

import os
import sys

# this file's folder holds the operator module ray.py: it must not shadow the ray package
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import ray._private.services as services  # noqa: E402


def _loopback(*args, **kwargs):
    return "127.0.0.1"


services.node_ip_address_from_perspective = _loopback
services.resolve_ip_for_localhost = lambda host: "127.0.0.1" if services.is_localhost(host) else host

if __name__ == "__main__":
    from ray.scripts.scripts import main

    sys.argv[0] = "ray"
    sys.exit(main())
