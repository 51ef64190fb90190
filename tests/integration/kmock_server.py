"""``python tests/integration/kmock_server.py``: kmock's Kubernetes API emulator as a real HTTP server.

kmock (PyPI) is the Kubernetes API emulator available here; it is built to run inside a test's event
loop, so this script serves it on a free loopback port in its own process and prints ``ready PORT``.
Our client talks to it over HTTP exactly as to an API server. It is configured, not rewritten:

- the kinds our client lists are declared (kmock answers 404 for a kind it has never stored);
- one gap is filled, and named here: kmock treats every PATCH as an update of an existing object,
  while a real API server's server-side apply (``PATCH`` with ``application/apply-patch+yaml``) creates
  the object when it is missing. Such a request is stored as a create first, then handled as kmock
  handles it. Everything else (merge semantics, watch, status, delete) is kmock's own.

Gaps left as they are, and named in the tests that meet them: no controllers (a Job never makes a pod,
a Deployment never makes replicas), label and field selectors ignored, Namespace calls answered 500,
no kubelet (a pod's ``log`` subresource serves the pod object itself), no resourceVersion, no
managedFields (field ownership of server-side apply is not modelled).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import kmock
from kmock._internal import enums, rendering

_KINDS = (
    "v1/pods",
    "v1/services",
    "batch/v1/jobs",
    "apps/v1/deployments",
    "autoscaling/v2/horizontalpodautoscalers",
)


class ApplyCreatesEmulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus server-side apply creating a missing object as the API server does."""

    async def _handle(self, request: rendering.Request) -> Any:
        applying = "apply-patch" in request.headers.get("Content-Type", "")
        if applying and request.action == enums.action.UPDATE and request.resource is not None:
            key = (request.resource, request.namespace, request.name)
            async with self._lock:
                if key not in self.objects or self.objects[key].deleted:
                    if key in self.objects:
                        self.objects[key].create(request.data)
                    else:
                        self.objects[key] = request.data
        return await super()._handle(request)


async def main() -> None:
    emulator = ApplyCreatesEmulator()
    for kind in _KINDS:
        emulator.resources[kind] = {}
    async with emulator, kmock.Server(emulator) as server:
        print(f"ready {server.port}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
