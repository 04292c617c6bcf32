"""The stand-in Ascend device plugin annotates NPU pods on fake nodes the way the real one does,
and those annotations make a complete HCCL rank table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
from kubernetes.client.exceptions import ApiException

from msjob_localcluster import fake_device_plugin as fdp
from msjob_localcluster.cluster import POOL_LABEL
from msjob_operator.api import naming
from msjob_operator.builders import ranktable as rt

from ..helpers import wait_for

NPU = "huawei.com/Ascend910"


@pytest.fixture
def plugin(cluster):
    p = fdp.FakeAscendDevicePlugin(cluster.kubeconfig).start()
    yield p
    thread = p._thread
    p.stop()
    assert thread is not None and not thread.is_alive(), "the plugin's watch thread did not end"


def npu_pod(name: str, pool_name: str, npus: int, index: int | None = None, job: str = "rt") -> dict:
    container = {"name": "mindspore", "image": "mindspore/mindspore:2.10"}
    if npus:
        container["resources"] = {"limits": {NPU: str(npus)}}
    labels = {}
    if index is not None:
        labels = {**naming.replica_labels(job, "Worker"), naming.REPLICA_INDEX_LABEL: str(index)}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [container], "restartPolicy": "Never",
                 "nodeSelector": {"type": "kwok", POOL_LABEL: pool_name},
                 "tolerations": [{"key": POOL_LABEL, "operator": "Equal", "value": pool_name, "effect": "NoSchedule"}]},
    }


def annotated(kube, core, namespace: str, names: list[str]) -> list[dict] | None:
    pods = [kube.sanitize_for_serialization(core.read_namespaced_pod(n, namespace)) for n in names]
    return pods if all(rt.ANNOTATION in (p["metadata"].get("annotations") or {}) for p in pods) else None


def devices(p: dict) -> list[str]:
    return [d["device_id"] for d in json.loads(p["metadata"]["annotations"][rt.ANNOTATION])["devices"]]


def gone(core, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except ApiException as e:
        return e.status == 404
    return False


@pytest.mark.cluster
def test_two_pods_make_a_completed_16_rank_table(plugin, pool, kube, core, namespace):
    nodes = pool(2)
    names = [naming.pod_name("rt", "Worker", i) for i in range(2)]
    for i, name in reversed(list(enumerate(names))):  # created out of order on purpose
        core.create_namespaced_pod(namespace, npu_pod(name, pool.name, 8, index=i))
    core.create_namespaced_pod(namespace, npu_pod("cpu-only", pool.name, 0))

    pods = wait_for(lambda: annotated(kube, core, namespace, names), timeout=60, message="both pods annotated",
                    describe=lambda: [(p.metadata.name, p.spec.node_name, p.metadata.annotations)
                                      for p in core.list_namespaced_pod(namespace).items])
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(nodes)
    for p in pods:
        value = json.loads(p["metadata"]["annotations"][rt.ANNOTATION])
        assert value["pod_name"] == p["metadata"]["name"]
        assert devices(p) == [str(d) for d in range(8)]

    table = rt.build_rank_table(pods, expected_pods=2)
    assert table["status"] == "completed" and table["version"] == "1.0"
    assert table["server_count"] == "2" and len(table["server_list"]) == 2
    all_devices = [d for s in table["server_list"] for d in s["device"]]
    assert [d["rank_id"] for d in all_devices] == [str(r) for r in range(16)]
    assert len({d["device_ip"] for d in all_devices}) == 16
    assert len({s["server_id"] for s in table["server_list"]}) == 2  # kwok's shared node IP is not used
    # Server order follows the replica index, not the order of creation or of the list.
    pod0 = next(p for p in pods if p["metadata"]["name"] == names[0])
    first_node, first = pod0["spec"]["nodeName"], json.loads(pod0["metadata"]["annotations"][rt.ANNOTATION])
    assert table["server_list"][0]["server_id"] == first["server_id"]
    assert first["devices"][0]["device_ip"] == fdp.device_ip(first_node, 0)
    assert rt.build_rank_table(list(reversed(pods)), 2) == table
    # The ConfigMap of a job holding the table is valid in the cluster (server-side dry run).
    job = {"metadata": {"name": "rt", "namespace": namespace, "uid": str(uuid.uuid4())}}
    cm = rt.configmap(job, table)
    core.create_namespaced_config_map(namespace, cm, dry_run="All")

    cpu = wait_for(lambda: (p := core.read_namespaced_pod("cpu-only", namespace)).status.phase == "Running" and p,
                   timeout=60, message="cpu-only pod Running")
    assert rt.ANNOTATION not in (cpu.metadata.annotations or {})  # no NPUs asked: nothing to record


@pytest.mark.cluster
def test_pods_sharing_a_node_get_disjoint_devices(plugin, pool, kube, core, namespace):
    pool(1)
    for name in ("a", "b"):
        core.create_namespaced_pod(namespace, npu_pod(name, pool.name, 4))
    a, b = wait_for(lambda: annotated(kube, core, namespace, ["a", "b"]), timeout=60, message="a and b annotated")
    assert sorted(devices(a) + devices(b), key=int) == [str(d) for d in range(8)]
    server = {json.loads(p["metadata"]["annotations"][rt.ANNOTATION])["server_id"] for p in (a, b)}
    assert len(server) == 1

    # Devices of a deleted pod are free again.
    core.delete_namespaced_pod("a", namespace)
    wait_for(lambda: gone(core, namespace, "a"), timeout=60, message="pod a deleted")
    core.create_namespaced_pod(namespace, npu_pod("c", pool.name, 4))
    (c,) = wait_for(lambda: annotated(kube, core, namespace, ["c"]), timeout=60, message="c annotated")
    assert devices(c) == devices(a)


@pytest.mark.cluster
def test_runs_as_a_process(cluster, pool, kube, core, namespace):
    pool(1)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "msjob_localcluster.fake_device_plugin",
                             "--kubeconfig", str(cluster.kubeconfig)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        core.create_namespaced_pod(namespace, npu_pod("solo", pool.name, 2))
        (solo,) = wait_for(lambda: annotated(kube, core, namespace, ["solo"]), timeout=60, message="solo annotated")
        assert devices(solo) == ["0", "1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=fdp.WATCH_SECONDS + 20)
    assert proc.returncode == 0, out
    assert f"{namespace}/solo on {pool.name}-0 gets NPUs [0, 1]" in out


def test_superpod_annotation_makes_a_1_2_table():
    """The SuperPoD flavour (no cluster needed): what the plugin writes gives a v1.2 table."""
    nodes = [{"metadata": {"name": f"sp-node-{i}", "labels": {fdp.SUPER_POD_LABEL: str(i // 2)}},
              "status": {"addresses": [{"type": "InternalIP", "address": "10.254.0.1"}]}} for i in range(3)]
    pods = [{"metadata": {"name": f"rt-worker-{i}", "labels": {naming.REPLICA_INDEX_LABEL: str(i)},
                          "annotations": {rt.ANNOTATION: fdp.annotation_value(f"rt-worker-{i}", n, nodes, [0, 1],
                                                                              superpod=True)}}}
            for i, n in enumerate(nodes)]
    table = rt.build_rank_table(pods, 3)
    assert table["version"] == "1.2" and table["status"] == "completed"
    servers = [s["server_id"] for s in table["server_list"]]
    assert len(set(servers)) == 3
    assert table["super_pod_list"] == [
        {"super_pod_id": "0", "server_list": [{"server_id": servers[0]}, {"server_id": servers[1]}]},
        {"super_pod_id": "1", "server_list": [{"server_id": servers[2]}]}]
    sdids = [d["super_device_id"] for s in table["server_list"] for d in s["device"]]
    assert len(set(sdids)) == 6
