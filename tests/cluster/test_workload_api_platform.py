"""Kubernetes' own gang scheduling on the local cluster (``workload_api=True``).

A Workload (scheduling.k8s.io/v1beta1) declares a pod group template with a gang
policy; a PodGroup made from it is what pods name in ``spec.schedulingGroup``; the
scheduler's GangScheduling plugin binds a group's pods only when minCount of them fit.
"""

from __future__ import annotations

import json

import pytest

from msjob_localcluster.cluster import POOL_LABEL, WORKLOAD_API_VERSION

from ..helpers import wait_for

pytestmark = pytest.mark.cluster

NPU = "huawei.com/Ascend910"


def workload(name: str, min_count: int) -> dict:
    return {"apiVersion": WORKLOAD_API_VERSION, "kind": "Workload", "metadata": {"name": name},
            "spec": {"podGroupTemplates": [{"name": "workers", "schedulingPolicy": {"gang": {"minCount": min_count}}}]}}


def pod_group(name: str, workload_name: str, min_count: int) -> dict:
    return {"apiVersion": WORKLOAD_API_VERSION, "kind": "PodGroup", "metadata": {"name": name},
            "spec": {"workloadRef": {"workloadName": workload_name, "templateName": "workers"},
                     "schedulingPolicy": {"gang": {"minCount": min_count}}}}


def pod(name: str, pool_name: str, group: str | None, npus: int = 8) -> dict:
    spec = {
        "containers": [{"name": "main", "image": "mindspore/mindspore:2.10",
                        "resources": {"limits": {NPU: str(npus)}}}],
        "restartPolicy": "Never", "nodeSelector": {POOL_LABEL: pool_name},
        "tolerations": [{"key": POOL_LABEL, "value": pool_name, "effect": "NoSchedule"}],
    }
    if group:
        spec["schedulingGroup"] = {"podGroupName": group}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def create(cluster, ns: str, *objs: dict) -> None:
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                      "items": list(objs)}))


def get(cluster, ns: str, kind: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "-n", ns, kind, name, "-o", "json").stdout)


def condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions") or [] if c["type"] == type_), None)


def test_api_is_served_at_the_version_the_scheduler_reads(gang_cluster):
    resources = gang_cluster.kubectl("api-resources", "--api-group", "scheduling.k8s.io", "-o", "name").stdout.split()
    assert {"workloads.scheduling.k8s.io", "podgroups.scheduling.k8s.io"} <= set(resources)
    versions = gang_cluster.kubectl("api-versions").stdout.split()
    assert WORKLOAD_API_VERSION in versions


def test_a_complete_gang_binds_together(gang_cluster, gang_namespace, gang_pool):
    cluster, ns = gang_cluster, gang_namespace
    nodes = gang_pool(2)  # 8 NPUs each
    create(cluster, ns, workload("job", 2), pod_group("job-workers", "job", 2),
           pod("worker-0", gang_pool.name, "job-workers"))
    # A later pod without a group binds while the gang's first member waits for its peer,
    # though a node is free for it: the gang holds it back, not a lack of room.
    create(cluster, ns, pod("loner", gang_pool.name, None))
    wait_for(lambda: get(cluster, ns, "pod", "loner")["spec"].get("nodeName"), message="loner bound")
    assert not get(cluster, ns, "pod", "worker-0")["spec"].get("nodeName")
    cluster.kubectl("delete", "pod", "-n", ns, "loner", "--wait=true", "--timeout=60s")

    create(cluster, ns, pod("worker-1", gang_pool.name, "job-workers"))
    bound = wait_for(lambda: all(n := [get(cluster, ns, "pod", f"worker-{i}")["spec"].get("nodeName")
                                       for i in range(2)]) and n,
                     message="both gang members bound", timeout=60)
    assert sorted(bound) == sorted(nodes)  # 8 + 8 NPUs: one per node
    scheduled = wait_for(lambda: condition(get(cluster, ns, "podgroup", "job-workers"), "PodGroupInitiallyScheduled"),
                         message="PodGroupInitiallyScheduled on the PodGroup")
    assert scheduled["status"] == "True"
    # The protection finalizer keeps a PodGroup while pods name it (the controller-manager drops it).
    finalizers = get(cluster, ns, "podgroup", "job-workers")["metadata"]["finalizers"]
    assert "scheduling.k8s.io/podgroup-protection" in finalizers


def test_a_gang_that_cannot_fit_binds_no_member(gang_cluster, gang_namespace, gang_pool):
    cluster, ns = gang_cluster, gang_namespace
    gang_pool(2)  # 16 NPUs in all; the gang needs 24
    create(cluster, ns, workload("big", 3), pod_group("big-workers", "big", 3),
           *[pod(f"worker-{i}", gang_pool.name, "big-workers") for i in range(3)])

    def verdict():
        cond = condition(get(cluster, ns, "podgroup", "big-workers"), "PodGroupInitiallyScheduled")
        return cond if cond and cond["status"] == "False" else None
    cond = wait_for(verdict, message="PodGroupInitiallyScheduled=False", timeout=60,
                    describe=lambda: get(cluster, ns, "podgroup", "big-workers").get("status"))
    assert cond["reason"] == "Unschedulable"
    pods = [get(cluster, ns, "pod", f"worker-{i}") for i in range(3)]
    assert [p["spec"].get("nodeName") for p in pods] == [None] * 3  # two would fit: none is bound
    assert {p["status"]["phase"] for p in pods} == {"Pending"}
    reasons = wait_for(lambda: all(c := [condition(p, "PodScheduled") for p in
                                         (get(cluster, ns, "pod", f"worker-{i}") for i in range(3))]) and c,
                       message="PodScheduled conditions on the members")
    assert {c["status"] for c in reasons} == {"False"}
    assert {c["reason"] for c in reasons} == {"Unschedulable"}
    print("PodGroup:", cond, "\npods:", [c["message"] for c in reasons])  # the facts, in -s output
