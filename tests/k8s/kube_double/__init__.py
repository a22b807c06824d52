"""kube_double: a test double of the Kubernetes API server, with a fake kubelet and Job controller.

It follows the documented Kubernetes API behaviour closely enough that ``kubectl`` and ``kubernetes_asyncio`` work
against it, so SDK code that drives Kubernetes can be tested on a machine without a cluster. It is NOT Kubernetes:

Implemented
    * REST over JSON: discovery (/version, /api, /api/v1, /apis, /apis/<group>/<version>), core/v1 namespaces,
      nodes, pods (+status, +log), events, configmaps, secrets, serviceaccounts, services; batch/v1 jobs (+status);
      every CRD found in ``crd_dir`` (all served versions, scope, status subresource, schema validation).
    * create (generateName, server-set metadata, 409 AlreadyExists, 422 Invalid names/schemas), get, list with label
      and field selectors (also across namespaces), update (409 Conflict on stale resourceVersion), merge /
      strategic-merge (built-in kinds only; 415 for custom resources) / JSON patch, delete with propagation
      policies, finalizers, ownerReference garbage collection, deletecollection, the status subresource split.
    * watch with resourceVersion resume, a bounded history (410 Expired when compacted), bookmarks, timeoutSeconds,
      selectors; kubectl's server-side table printing.
    * a Job controller (:mod:`kube_double.jobs`) and a fake kubelet that runs pod containers as local processes
      (:mod:`kube_double.kubelet`): scheduling against one node's allocatable, image-pull and config errors, env and
      volumes, phases, restarts, OOM kills, graceful deletion, logs (:mod:`kube_double.logs`).
    * fault injection for client resilience tests (:mod:`kube_double.faults`).
    * fake operators for the SparkApplication, RayJob, DaskJob and PyTorchJob CRDs (:mod:`kube_double.operators`,
      on by default, ``KubeDouble(operators=False)`` turns them off) that run the real engines in the pods.

Simplified / missing
    * no authentication or authorization (any bearer token works), no RBAC, no admission webhooks, no quotas (see
      ``faults.reject_create``), no protobuf (so kubectl's generator subcommands such as ``kubectl create
      namespace``/``create secret``, which send protobuf, get 415: use ``kubectl apply -f``/``create -f``), no OpenAPI documents, no server-side apply field management
      (apply-patch is treated as a strategic/merge patch), no pagination (lists are always complete);
    * no container images: containers run in this machine's Python environment (see kubelet docs);
    * one node; scheduling checks each pod against the node alone; no services/networking (podIP is 127.0.0.1);
    * immutability rules and most per-field validation of built-in kinds are not enforced.

Usage::

    from kube_double import KubeDouble
    with KubeDouble(crd_dir="../shared/k8s-crds") as double:
        os.environ["KUBECONFIG"] = double.kubeconfig
        ...
"""

from .double import KubeDouble

__all__ = ["KubeDouble"]
