"""A stand-in for Ascend's device plugin on the local cluster's fake (kwok) nodes.

The real plugin runs on every NPU node; when the kubelet allocates NPUs to a container it records
them in the pod annotation ``ascend.kubectl.kubernetes.io/ascend-910-configuration`` (and sets
``ASCEND_VISIBLE_DEVICES`` in the container, which a stand-in cannot do: a pod's env is fixed at
creation).  This one watches the pods bound to nodes that advertise an Ascend resource and writes
that annotation the same way::

    {"pod_name": "<pod>", "server_id": "<host IP>",
     "devices": [{"device_id": "0", "device_ip": "10.<a>.<b>.101"}, ...]}

* ``server_id``: the node's InternalIP, unless other nodes share it (kwok gives all its nodes one
  ``--node-ip``), then ``10.<a>.<b>.1`` with ``<a>.<b>`` a 16-bit hash of the node name;
* devices: the lowest ids ``0..capacity-1`` that no other live pod on the node holds, as many as the
  pod's containers ask for (``huawei.com/Ascend910``, ``huawei.com/npu``, ``huawei.com/Ascend910-*``);
* ``device_ip``: ``10.<a>.<b>.<101 + device_id>``: deterministic per node and device;
* with ``superpod=True`` also Atlas A3 data: ``super_pod_id`` (the node's label
  ``SUPER_POD_LABEL``, default 0) and per device ``super_device_id`` (unique in the SuperPoD).

Run it in-process (``FakeAscendDevicePlugin(kubeconfig).start()`` ... ``.stop()``) or as
``python -m msjob_localcluster.fake_device_plugin --kubeconfig K [--superpod]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from msjob_runtime.ranktable_wait import ANNOTATION

log = logging.getLogger("msjob_operator.fake_device_plugin")

RESOURCES = ("huawei.com/Ascend910", "huawei.com/npu")
RESOURCE_PREFIX = "huawei.com/Ascend910-"  # slices such as huawei.com/Ascend910-4c
SUPER_POD_LABEL = "fake.ascend.msjob.test/super-pod-id"
WATCH_SECONDS = 5  # server-side watch timeout: how long stop() may take


def is_npu_resource(name: str) -> bool:
    return name in RESOURCES or name.startswith(RESOURCE_PREFIX)


def _count(quantity: Any) -> int:
    try:
        return int(float(str(quantity)))
    except ValueError:
        return 0


def npus_requested(pod: Mapping[str, Any]) -> int:
    """NPUs the pod's containers ask for (limits, else requests; init containers by their max)."""
    spec = pod.get("spec") or {}

    def of(container: Mapping[str, Any]) -> int:
        res = container.get("resources") or {}
        amounts = res.get("limits") or res.get("requests") or {}
        return sum(_count(v) for k, v in amounts.items() if is_npu_resource(k))

    main = sum(of(c) for c in spec.get("containers") or [])
    init = max((of(c) for c in spec.get("initContainers") or []), default=0)
    return max(main, init)


def node_capacity(node: Mapping[str, Any]) -> int:
    cap = (node.get("status") or {}).get("capacity") or {}
    return sum(_count(v) for k, v in cap.items() if is_npu_resource(k))


def node_hash(name: str) -> tuple[int, int]:
    digest = hashlib.sha256(name.encode()).digest()
    return digest[0], digest[1]


def internal_ip(node: Mapping[str, Any]) -> Optional[str]:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP" and addr.get("address"):
            return str(addr["address"])
    return None


def server_id(node: Mapping[str, Any], all_nodes: Sequence[Mapping[str, Any]]) -> str:
    """The node's InternalIP when it is its own, else an IP derived from the node name."""
    name = node["metadata"]["name"]
    ip = internal_ip(node)
    if ip and not any(internal_ip(n) == ip for n in all_nodes if n["metadata"]["name"] != name):
        return ip
    a, b = node_hash(name)
    return f"10.{a}.{b}.1"


def device_ip(node_name: str, device: int) -> str:
    a, b = node_hash(node_name)
    return f"10.{a}.{b}.{101 + device}"


def annotation_value(pod_name: str, node: Mapping[str, Any], all_nodes: Sequence[Mapping[str, Any]], devices: list[int],
                     superpod: bool = False) -> str:
    """The annotation the real plugin would write for ``devices`` of ``node``."""
    name = node["metadata"]["name"]
    body: dict[str, Any] = {"pod_name": pod_name, "server_id": server_id(node, all_nodes)}
    devs: list[dict[str, Any]] = [{"device_id": str(d), "device_ip": device_ip(name, d)} for d in devices]
    if superpod:
        sp = str(((node.get("metadata") or {}).get("labels") or {}).get(SUPER_POD_LABEL, "0"))
        a, b = node_hash(name)
        for d, entry in zip(devices, devs, strict=True):
            # Unique within the SuperPoD, like the hardware's SDID: node part and device part.
            entry["super_device_id"] = str(((a << 8 | b) << 5) | d)
        body["super_pod_id"] = int(sp) if sp.isdigit() else sp
    body["devices"] = devs
    return json.dumps(body, separators=(",", ":"))


def _live(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _held(pod: Mapping[str, Any]) -> set[int]:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not value:
        return set()
    try:
        return {int(d["device_id"]) for d in json.loads(value).get("devices") or []}
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()


class FakeAscendDevicePlugin:
    """Annotates NPU pods on the fake nodes; one watch thread, stopped by ``stop()``."""

    def __init__(self, kubeconfig: Path | str, *, superpod: bool = False):
        self.kubeconfig = Path(kubeconfig)
        self.superpod = superpod
        self.annotated = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        # kubernetes.client's ApiClient and CoreV1Api once started (that client has no type information).
        self._api: Any = None
        self._core: Any = None
        # Pod uid -> (node, devices) written by us: the next list may not show them yet.
        self._written: dict[str, tuple[str, set[int]]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeAscendDevicePlugin":
        from kubernetes import config
        from kubernetes.client import CoreV1Api

        if self._thread is not None:
            return self
        self._api = config.new_client_from_config(config_file=str(self.kubeconfig))
        self._core = CoreV1Api(self._api)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fake-ascend-device-plugin", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = WATCH_SECONDS + 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._api is not None:
            self._api.close()
            self._api = None

    def __enter__(self) -> "FakeAscendDevicePlugin":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self) -> None:
        """Block until stopped (the ``python -m`` entry)."""
        while not self._stop.wait(1.0):
            pass

    # -- the loop ------------------------------------------------------------------------------

    def _sanitize(self, obj: Any) -> dict[str, Any]:
        sanitized: dict[str, Any] = self._api.sanitize_for_serialization(obj)
        return sanitized

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        resource_version: Optional[str] = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    # (Re)list: annotate whatever the watch has not shown us, then watch from here.
                    listed = self._core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=")
                    for pod in listed.items:
                        self._consider(self._sanitize(pod))
                    resource_version = listed.metadata.resource_version
                w = watch.Watch()
                for event in w.stream(self._core.list_pod_for_all_namespaces, field_selector="spec.nodeName!=",
                                      resource_version=resource_version, timeout_seconds=WATCH_SECONDS,
                                      allow_watch_bookmarks=True, _request_timeout=WATCH_SECONDS + 30):
                    if self._stop.is_set():
                        w.stop()
                        break
                    obj = event.get("raw_object") or {}
                    resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._consider(obj)
                    elif event["type"] == "DELETED":
                        self._written.pop((obj.get("metadata") or {}).get("uid", ""), None)
            except ApiException as e:
                if e.status == 410:  # our resourceVersion is too old: list again
                    resource_version = None
                    continue
                log.warning("fake device plugin: API error %s, retrying", e.status)
                resource_version = None
                self._stop.wait(1.0)
            except Exception:  # noqa: BLE001 - keep serving; the cluster may be restarting
                if self._stop.is_set():
                    break
                log.exception("fake device plugin: watch failed, retrying")
                resource_version = None
                self._stop.wait(1.0)

    def _consider(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or not _live(pod) or meta.get("deletionTimestamp"):
            return
        if ANNOTATION in (meta.get("annotations") or {}) or meta.get("uid") in self._written:
            return
        wanted = npus_requested(pod)
        if wanted <= 0:
            return
        self._allocate(pod, node_name, wanted)

    def _allocate(self, pod: dict[str, Any], node_name: str, wanted: int) -> None:
        from kubernetes.client.exceptions import ApiException

        meta = pod["metadata"]
        nodes = [self._sanitize(n) for n in self._core.list_node().items]
        node = next((n for n in nodes if n["metadata"]["name"] == node_name), None)
        if node is None:
            return
        capacity = node_capacity(node)
        if capacity <= 0:
            return  # not an NPU node: the real plugin would not run here
        # A consistent (quorum) list: what the other live pods on this node hold.
        others = self._core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node_name}").items
        held: set[int] = set()
        live_uids = set()
        for other in map(self._sanitize, others):
            if other["metadata"].get("uid") == meta.get("uid") or not _live(other):
                continue
            live_uids.add(other["metadata"].get("uid"))
            held |= _held(other)
        for uid, (n, devs) in self._written.items():
            if n == node_name and uid in live_uids:
                held |= devs
        free = [d for d in range(capacity) if d not in held]
        if len(free) < wanted:
            log.warning("fake device plugin: pod %s/%s wants %d NPUs on %s, only %s free",
                        meta.get("namespace"), meta.get("name"), wanted, node_name, free)
            return
        devices = free[:wanted]
        value = annotation_value(meta["name"], node, nodes, devices, self.superpod)
        try:
            self._core.patch_namespaced_pod(meta["name"], meta["namespace"],
                                            {"metadata": {"annotations": {ANNOTATION: value}}})
        except ApiException as e:
            if e.status == 404:
                return
            raise
        self._written[meta["uid"]] = (node_name, set(devices))
        self.annotated += 1
        log.info("fake device plugin: %s/%s on %s gets NPUs %s", meta["namespace"], meta["name"], node_name, devices)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msjob_localcluster.fake_device_plugin",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--superpod", action="store_true", help="also write Atlas A3 SuperPoD data")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    plugin = FakeAscendDevicePlugin(args.kubeconfig, superpod=args.superpod)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: plugin._stop.set())
    plugin.start()
    plugin.wait()
    plugin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
