"""The Kubernetes tier: a run's calls as objects on a cluster, with no Flyte control plane in between.

``settings`` (where runs go), ``client`` (REST with retries), ``informer`` (list-then-watch caches), ``names``,
``pods`` (the pod of a call), ``resources`` (a call's object: a Job, or a plugin's custom resource), ``session`` (one
attempt: store, create, supervise, read, delete), ``logs``, ``failures`` (why a pod failed), ``controller`` (the
remote controller), ``dryrun`` and ``gc``. kubernetes_asyncio and obstore load only when a remote run starts.
"""
