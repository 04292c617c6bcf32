"""Finishes the deletion of pods on fake (kwok) nodes, as a kubelet does: once, for that pod's UID.

kwok 0.8's own delete stage deletes by name without a UID precondition; when it acts late on a
pod whose successor already has the name (a gang restart reuses names), it deletes the successor.
A kubelet's final delete carries the UID, so this reaper does too.

Run: ``python -m msjob_operator.localcluster.podreaper --kubeconfig K`` (the local cluster starts it).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("podreaper")
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")


class PodReaper:
    def __init__(self, kubeconfig: str):
        self.api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.stop = threading.Event()
        self._fake_nodes: set[str] = set()

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

    def reap(self, pod) -> None:
        if pod.metadata.deletion_timestamp is None or not self._is_fake(pod.spec.node_name):
            return
        options = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.metadata.uid))
        try:
            self.api.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, body=options)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or the name belongs to a successor
                log.warning("could not delete %s/%s: %s", pod.metadata.namespace, pod.metadata.name, exc.reason)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pods = self.api.list_pod_for_all_namespaces()
                for pod in pods.items:
                    self.reap(pod)
                stream = watch.Watch()
                for event in stream.stream(self.api.list_pod_for_all_namespaces, timeout_seconds=5,
                                           resource_version=pods.metadata.resource_version):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.reap(event["object"])
                    if self.stop.is_set():
                        stream.stop()
            except ApiException as exc:  # 410 Gone or the API server restarting: list again
                log.info("listing again after %s", exc.reason)
                self.stop.wait(0.5)
            except Exception as exc:  # connection refused while the API server restarts
                log.warning("watch failed: %s", exc)
                self.stop.wait(1.0)


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
