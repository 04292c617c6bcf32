"""The Ascend rank table (``hccl.json``) of a job in rank-table launch mode: pure functions.

Ascend's device plugin records which NPUs it gave a pod in the pod annotation ``ANNOTATION``;
the operator gathers those annotations into HCCL's rank table, keeps it in the ConfigMap
``<job>-ranktable`` (owned by the job) and mounts it into every pod at ``MOUNT_DIR``.  The table says
``"status": "initializing"`` until every expected pod has reported, then ``"completed"``; a pod's
entrypoint waits for ``completed`` before starting MindSpore (standard library only, so any image
with ``msjob_runtime`` runs it; the file's constants are that module's)::

    python -m msjob_runtime.ranktable_wait [--file F] [--timeout S]

(ConfigMap volumes are updated in place by the kubelet, which is why the mount must not use subPath.)

Formats followed (those MindSpore and HCCL read):

* v1.0: MindSpore's / CANN's documented rank table (``status``, ``version``, ``server_count``,
  ``server_list[].server_id``, ``server_list[].device[]`` of ``device_id``, ``device_ip``, ``rank_id``,
  every value a string; ``host_nic_ip: "reserve"``).
* v1.2 (SuperPoD, Atlas A3): devices additionally carry ``super_device_id`` and the table a top-level
  ``super_pod_list: [{"super_pod_id": "0", "server_list": [{"server_id": ...}]}]``.  Followed: the
  CANN HCCL user guide, "ranktable文件配置资源信息" (hiascend.com, canncommercial 8.2.RC1,
  hccl/hcclug/hcclug_000014: ``"version": "1.2"``, ``super_device_id`` per device) and MindCluster's
  "hccl.json File Description" / "global-ranktable Description" (hiascend.com, mindcluster 7.3.0,
  schedulingug mxdlug_appendices_009 and dl_bestpractice_010: the ``super_pod_list`` shape above).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

# The rank table's file format and places, shared with the in-pod wait (re-exported for the operator's use).
from msjob_runtime.ranktable_wait import ANNOTATION as ANNOTATION
from msjob_runtime.ranktable_wait import FILE_NAME as FILE_NAME
from msjob_runtime.ranktable_wait import MOUNT_DIR as MOUNT_DIR
from msjob_runtime.ranktable_wait import RANK_TABLE_FILE as RANK_TABLE_FILE
from msjob_runtime.ranktable_wait import STATUS_COMPLETED as STATUS_COMPLETED
from msjob_runtime.ranktable_wait import STATUS_INITIALIZING as STATUS_INITIALIZING
from msjob_runtime.ranktable_wait import rank_count as rank_count

from ..api import naming

VOLUME_NAME = "msjob-ranktable"
HOST_NIC_IP = "reserve"

VERSION_1_0 = "1.0"
VERSION_1_2 = "1.2"


class RankTableError(ValueError):
    """An annotation or a set of annotations that cannot make a rank table."""


@dataclass(frozen=True)
class Device:
    device_id: str
    device_ip: str
    super_device_id: Optional[str] = None
    super_pod_id: Optional[str] = None  # when the plugin puts it on the device rather than the server


@dataclass(frozen=True)
class Allocation:
    """What the device plugin gave one pod."""

    pod_name: str
    server_id: str
    devices: tuple[Device, ...]
    super_pod_id: Optional[str] = None

    @property
    def superpod(self) -> bool:
        return any(d.super_device_id is not None for d in self.devices)

    def pod_super_pod_id(self) -> Optional[str]:
        if self.super_pod_id is not None:
            return self.super_pod_id
        return next((d.super_pod_id for d in self.devices if d.super_pod_id is not None), None)


def _required_id(value: Any, what: str) -> str:
    found = _id(value, what)
    assert found is not None  # _id raises for a missing required id
    return found


def _id(value: Any, what: str, *, optional: bool = False) -> Optional[str]:
    """An id as the rank table spells it: a decimal string (ints and strings accepted)."""
    if value is None or value == "":
        if optional:
            return None
        raise RankTableError(f"{what} is missing")
    if isinstance(value, bool):
        raise RankTableError(f"{what} must be an integer or a string, not {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    raise RankTableError(f"{what} must be an integer or a string, not {value!r}")


def _super_pod_id(value: Any, what: str) -> Optional[str]:
    """Plugins that know no SuperPoD may write -1 (or nothing): both mean 'none'."""
    sp = _id(value, what, optional=True)
    if sp is None or sp.lstrip("-").isdigit() and int(sp) < 0:
        return None
    return sp


def parse_annotation(value: str | Mapping[str, Any]) -> Allocation:
    """Parse the device plugin's annotation (``ANNOTATION``) of one pod.

    The format assumed is the one Ascend's device plugin writes (JSON; ids may be ints or strings;
    the SuperPoD fields of Atlas A3 are optional, ``super_pod_id`` on the pod or on each device)::

        {"pod_name": "job-worker-0", "server_id": "10.0.0.5",
         "super_pod_id": 0,
         "devices": [{"device_id": "0", "device_ip": "192.168.100.101", "super_device_id": "0"},
                     {"device_id": 1, "device_ip": "192.168.100.102"}]}

    ``server_id`` is the host's IP.  Raises ``RankTableError`` when it is not usable.
    """
    if isinstance(value, (str, bytes)):
        try:
            data = json.loads(value)
        except ValueError as e:
            raise RankTableError(f"annotation {ANNOTATION} is not JSON: {e}") from None
    else:
        data = value
    if not isinstance(data, Mapping):
        raise RankTableError(f"annotation {ANNOTATION} must be a JSON object, not {type(data).__name__}")
    devices_raw = data.get("devices")
    if not isinstance(devices_raw, list) or not devices_raw:
        raise RankTableError(f"annotation {ANNOTATION} has no devices")
    devices = []
    for i, d in enumerate(devices_raw):
        if not isinstance(d, Mapping):
            raise RankTableError(f"annotation {ANNOTATION}: devices[{i}] must be an object")
        devices.append(Device(
            device_id=_required_id(d.get("device_id"), f"devices[{i}].device_id"),
            device_ip=_id(d.get("device_ip"), f"devices[{i}].device_ip", optional=True) or "",
            super_device_id=_id(d.get("super_device_id"), f"devices[{i}].super_device_id", optional=True),
            super_pod_id=_super_pod_id(d.get("super_pod_id"), f"devices[{i}].super_pod_id"),
        ))
    ids = [d.device_id for d in devices]
    if len(set(ids)) != len(ids):
        raise RankTableError(f"annotation {ANNOTATION} lists a device twice: {ids}")
    return Allocation(
        pod_name=str(data.get("pod_name") or ""),
        server_id=_required_id(data.get("server_id"), "server_id"),
        devices=tuple(sorted(devices, key=lambda d: _sort_key(d.device_id))),
        super_pod_id=_super_pod_id(data.get("super_pod_id"), "super_pod_id"),
    )


def _sort_key(text: str) -> tuple[int, int, str]:
    """Numbers in numeric order ("2" before "10"), then anything else by text."""
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _pod_index(pod: Mapping[str, Any]) -> tuple[int, int, str]:
    meta = pod.get("metadata") or {}
    name = meta.get("name") or ""
    label = (meta.get("labels") or {}).get(naming.REPLICA_INDEX_LABEL)
    if label is not None and str(label).isdigit():
        return (0, int(label), name)
    m = re.search(r"-(\d+)$", name)  # <job>-<type>-<index>
    return (0, int(m.group(1)), name) if m else (1, 0, name)


def pod_allocation(pod: Mapping[str, Any]) -> Optional[Allocation]:
    """The pod's allocation, or None while the device plugin has not annotated it."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not value:
        return None
    name = (pod.get("metadata") or {}).get("name") or "?"
    try:
        alloc = parse_annotation(value)
    except RankTableError as e:
        raise RankTableError(f"pod {name}: {e}") from None
    return alloc if alloc.pod_name else Allocation(name, alloc.server_id, alloc.devices, alloc.super_pod_id)


def build_rank_table(pods: Iterable[Mapping[str, Any]], expected_pods: int) -> dict[str, Any]:
    """HCCL's rank table for the job whose pods (API objects as dicts) are ``pods``.

    Servers are ordered by the pods' replica index (label, else the name's ``-<index>`` suffix);
    devices within a pod by device id; ``rank_id`` is the device's global position in that order, so
    pod ``i`` with ``n`` devices per pod holds ranks ``i*n .. i*n+n-1`` (what ``rank_env`` tells it).
    Pods that share a host (same ``server_id``) share one server entry, their devices in pod order.

    Until ``expected_pods`` pods have reported, the table lists only those that have, with
    ``"status": "initializing"`` (its rank ids are provisional); then ``"completed"``.  Version
    "1.2" (with ``super_device_id`` and ``super_pod_list``) when the plugin reports SuperPoD data.
    """
    allocations = [(a, _pod_index(p)) for p in pods if (a := pod_allocation(p)) is not None]
    allocations.sort(key=lambda item: item[1])
    superpod = {a.superpod for a, _ in allocations}
    if len(superpod) > 1:
        without = [a.pod_name for a, _ in allocations if not a.superpod]
        raise RankTableError(f"some pods report SuperPoD devices (super_device_id) and some do not: {without}")
    v12 = superpod == {True}
    if v12:
        missing = [a.pod_name for a, _ in allocations if any(d.super_device_id is None for d in a.devices)]
        if missing:
            raise RankTableError(f"pods with SuperPoD devices lacking super_device_id: {missing}")

    servers: dict[str, dict[str, Any]] = {}
    server_pod: dict[str, Optional[str]] = {}
    rank = 0
    for alloc, _ in allocations:
        server = servers.get(alloc.server_id)
        if server is None:
            server = servers[alloc.server_id] = {"server_id": alloc.server_id, "device": [],
                                                 "host_nic_ip": HOST_NIC_IP}
            server_pod[alloc.server_id] = alloc.pod_super_pod_id()
        taken = {d["device_id"] for d in server["device"]}
        clash = taken.intersection(d.device_id for d in alloc.devices)
        if clash:
            raise RankTableError(f"pod {alloc.pod_name} reports devices {sorted(clash)} of server "
                                 f"{alloc.server_id} that another pod of the job reports too")
        for d in alloc.devices:
            entry: dict[str, Optional[str]] = {"device_id": d.device_id, "device_ip": d.device_ip, "rank_id": str(rank)}
            if v12:
                entry["super_device_id"] = d.super_device_id
            server["device"].append(entry)
            rank += 1

    complete = len(allocations) >= expected_pods
    table: dict[str, Any] = {
        "version": VERSION_1_2 if v12 else VERSION_1_0,
        "server_count": str(len(servers)),
        "server_list": list(servers.values()),
        "status": STATUS_COMPLETED if complete else STATUS_INITIALIZING,
    }
    if v12:
        pods_by_sp: dict[str, list[dict[str, Any]]] = {}
        for server_id, sp in server_pod.items():
            pods_by_sp.setdefault(sp if sp is not None else "0", []).append({"server_id": server_id})
        table["super_pod_list"] = [{"super_pod_id": sp, "server_list": lst} for sp, lst in pods_by_sp.items()]
    return table


# ---------------------------------------------------------------------------------------------
# What the pods get: env, the ConfigMap and its mount.


def rank_env(pod_index: int, devices_per_pod: int, total: int) -> list[dict[str, Any]]:
    """Env of pod ``pod_index`` in rank-table mode (``total`` = ranks in the job = RANK_SIZE).

    With one device per pod the pod is one rank: ``RANK_ID`` and ``DEVICE_ID`` are set here
    (``DEVICE_ID`` 0: the plugin makes the pod's NPU its only visible one).  With several, the
    launcher gives its ``k``-th process ``per_process_env(RANK_START, k)``.
    """
    if devices_per_pod < 1 or pod_index < 0 or total < 1:
        raise ValueError(f"bad rank layout: pod {pod_index}, {devices_per_pod} per pod, {total} in all")
    start = pod_index * devices_per_pod
    env = [
        {"name": "RANK_TABLE_FILE", "value": RANK_TABLE_FILE},
        {"name": "RANK_SIZE", "value": str(total)},
        {"name": "RANK_START", "value": str(start)},
        {"name": "DEVICE_NUM", "value": str(devices_per_pod)},
    ]
    if devices_per_pod == 1:
        env += [{"name": "RANK_ID", "value": str(start)}, {"name": "DEVICE_ID", "value": "0"}]
    return env


def per_process_env(rank_start: int, local_index: int) -> dict[str, str]:
    """``RANK_ID``/``DEVICE_ID`` of a pod's ``local_index``-th process (one process per device)."""
    return {"RANK_ID": str(rank_start + local_index), "DEVICE_ID": str(local_index)}


def configmap_name(job_name: str) -> str:
    return f"{job_name}-ranktable"


def render(table: Mapping[str, Any]) -> str:
    return json.dumps(table, indent=2, sort_keys=True) + "\n"


def configmap(job: Mapping[str, Any], table: Mapping[str, Any]) -> dict[str, Any]:
    """The ConfigMap ``<job>-ranktable`` holding ``hccl.json``, owned by the job."""
    meta = job["metadata"]
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(meta["name"]),
            "labels": naming.job_labels(meta["name"]),
            "ownerReferences": [naming.owner_reference(dict(job))],
        },
        "data": {FILE_NAME: render(table)},
    }
    if meta.get("namespace"):
        body["metadata"]["namespace"] = meta["namespace"]
    return body


def volume(job_name: str) -> dict[str, Any]:
    return {"name": VOLUME_NAME, "configMap": {"name": configmap_name(job_name)}}


def volume_mount() -> dict[str, Any]:
    # A whole-directory mount (no subPath): the kubelet swaps the file in place when the ConfigMap changes.
    return {"name": VOLUME_NAME, "mountPath": MOUNT_DIR, "readOnly": True}
