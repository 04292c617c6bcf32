"""Finishes the deletion of pods on fake (kwok) nodes, as a kubelet does: once, for that pod's UID.

kwok 0.8's own delete stage deletes by name without a UID precondition; when it acts late on a
pod whose successor already has the name (a gang restart reuses names), it deletes the successor.
A kubelet's final delete carries the UID, so this reaper does too.

Run: ``python -m msjob_localcluster.podreaper --kubeconfig K`` (the local cluster starts it).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("podreaper")
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# Kubelets finish deletions on many nodes at once; so does the reaper, a few at a time.
PARALLEL_DELETES = 32


class PodReaper:
    def __init__(self, kubeconfig: str):
        self.api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.stop = threading.Event()
        self._fake_nodes: set[str] = set()
        self._pool = ThreadPoolExecutor(PARALLEL_DELETES, thread_name_prefix="reap")
        self._reaping: set[str] = set()  # UIDs with a delete in flight (each pod update re-reports them)
        self._lock = threading.Lock()

    def _is_fake(self, node: str | None) -> bool:
        if not node:
            return False
        if node not in self._fake_nodes:
            try:
                annotations = self.api.read_node(node).metadata.annotations or {}
            except ApiException:
                return False
            if annotations.get(FAKE_NODE_ANNOTATION[0]) == FAKE_NODE_ANNOTATION[1]:
                self._fake_nodes.add(node)
        return node in self._fake_nodes

    def reap(self, pod: dict[str, Any]) -> None:
        """`pod` is the API's JSON (a dict): building model objects for every pod event costs more CPU
        than anything else the reaper does when thousands of pods exist."""
        meta = pod["metadata"]
        if not meta.get("deletionTimestamp") or not self._is_fake((pod.get("spec") or {}).get("nodeName")):
            return
        with self._lock:
            if meta["uid"] in self._reaping:
                return
            self._reaping.add(meta["uid"])
        self._pool.submit(self._delete, meta["namespace"], meta["name"], meta["uid"])

    def _delete(self, namespace: str, name: str, uid: str) -> None:
        options = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid))
        try:
            self.api.delete_namespaced_pod(name, namespace, body=options, _preload_content=False)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or the name belongs to a successor
                log.warning("could not delete %s/%s: %s", namespace, name, exc.reason)
        finally:
            with self._lock:
                self._reaping.discard(uid)

    def _list(self) -> str:
        response = self.api.list_pod_for_all_namespaces(_preload_content=False)
        pods = json.loads(response.data)
        for pod in pods["items"]:
            self.reap(pod)
        return str(pods["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> str:
        """Watch from resource_version until the server ends the stream; returns where it stopped."""
        def list_pods(**kwargs: Any) -> Any:  # no ":return:" in this docstring-less wrapper: the watch yields dicts
            return self.api.list_pod_for_all_namespaces(**kwargs)

        stream = watch.Watch()
        for event in stream.stream(list_pods, timeout_seconds=5, resource_version=resource_version):
            pod = event["object"]
            if event["type"] in ("ADDED", "MODIFIED"):
                self.reap(pod)
            if event["type"] != "ERROR":
                resource_version = pod["metadata"].get("resourceVersion", resource_version)
            if self.stop.is_set():
                stream.stop()
        return resource_version

    def run(self) -> None:
        resource_version = None
        while not self.stop.is_set():
            try:
                # List once, then watch on from where the last watch ended (a relist of thousands of
                # pods every few seconds would cost more than all the reaping).
                if resource_version is None:
                    resource_version = self._list()
                resource_version = self._watch(resource_version)
            except ApiException as exc:  # 410 Gone or the API server restarting: list again
                log.info("listing again after %s", exc.reason)
                resource_version = None
                self.stop.wait(0.5)
            except Exception as exc:  # connection refused while the API server restarts
                log.warning("watch failed: %s", exc)
                resource_version = None
                self.stop.wait(1.0)
        self._pool.shutdown(wait=False, cancel_futures=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    reaper = PodReaper(args.kubeconfig)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: reaper.stop.set())
    reaper.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
