"""The local cluster is a real one: RBAC, scheduling, kwok stages, GC, Volcano gangs."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import config
from kubernetes.client import CoordinationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from msjob_localcluster.cluster import NODE_LEASE_SECONDS, POOL_LABEL

from ..helpers import wait_for

pytestmark = pytest.mark.cluster

NPU = "huawei.com/Ascend910"


def pod(name: str, annotations: dict | None = None, npus: int = 0, **spec) -> dict:
    container = {"name": "main", "image": "mindspore/mindspore:2.10"}
    if npus:
        container["resources"] = {"limits": {NPU: str(npus)}}  # requests default to limits
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"containers": [container], "restartPolicy": "Never",
                 "nodeSelector": {"type": "kwok"}, **spec},
    }


def wait_phase(core, ns: str, name: str, phase: str, timeout: float = 30):
    return wait_for(lambda: (p := core.read_namespaced_pod(name, ns)).status.phase == phase and p,
                    timeout=timeout, message=f"pod {name} {phase}",
                    describe=lambda: core.read_namespaced_pod(name, ns).status)


def gone(read) -> bool:
    try:
        read()
    except ApiException as e:
        return e.status == 404
    return False


def test_rbac_denies_an_identity_without_bindings(cluster, namespace):
    client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    client.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:nobody")
    with client, pytest.raises(ApiException) as denied:
        CoreV1Api(client).list_namespaced_pod(namespace)
    assert denied.value.status == 403

    out = cluster.kubectl("auth", "can-i", "create", "pods", "-n", namespace, "--as", "someone", check=False)
    assert out.stdout.strip() == "no"
    assert cluster.kubectl("auth", "can-i", "create", "pods", "-n", namespace).stdout.strip() == "yes"


def test_scheduler_counts_extended_resources(core, namespace):
    core.create_namespaced_pod(namespace, pod("too-big", npus=16))

    def unschedulable():
        conds = core.read_namespaced_pod("too-big", namespace).status.conditions or []
        return next((c for c in conds if c.type == "PodScheduled" and c.reason == "Unschedulable"), None)
    cond = wait_for(unschedulable, message="PodScheduled=False/Unschedulable")
    assert f"Insufficient {NPU}" in cond.message
    assert core.read_namespaced_pod("too-big", namespace).spec.node_name is None


def test_pod_runs_on_a_fake_node_and_deleted_pods_go_away(core, namespace):
    core.create_namespaced_pod(namespace, pod("runner", npus=8))
    p = wait_phase(core, namespace, "runner", "Running")
    assert core.read_node(p.spec.node_name).metadata.labels["type"] == "kwok"
    assert p.status.pod_ip and p.status.container_statuses[0].ready
    assert {c.type: c.status for c in p.status.conditions}["Ready"] == "True"

    core.delete_namespaced_pod("runner", namespace)  # graceful: only kwok can finish it
    wait_for(lambda: gone(lambda: core.read_namespaced_pod("runner", namespace)), message="pod deleted")


def test_an_ordinary_pod_runs_on_a_fake_node(core, namespace):
    """No toleration, no node selector: a pod written for a real cluster lands on a fake node."""
    body = pod("ordinary")
    del body["spec"]["nodeSelector"]
    core.create_namespaced_pod(namespace, body)
    running = wait_phase(core, namespace, "ordinary", "Running")
    node = core.read_node(running.spec.node_name)
    assert node.metadata.annotations.get("kwok.x-k8s.io/node") == "fake" and not node.spec.taints


@pytest.mark.parametrize("code, phase, reason", [(0, "Succeeded", "Completed"), (3, "Failed", "Error")])
def test_exit_code_annotation(core, namespace, code, phase, reason):
    core.create_namespaced_pod(namespace, pod("exits", {"kwok.msjob.test/exit-code": str(code),
                                                        "kwok.msjob.test/run-seconds": "2"}))
    p = wait_phase(core, namespace, "exits", phase)
    term = p.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (code, reason)
    assert (term.finished_at - p.status.start_time).total_seconds() >= 2  # ran for run-seconds


def test_evict_annotation(core, namespace):
    core.create_namespaced_pod(namespace, pod("evicted", {"kwok.msjob.test/evict": "true"}))
    p = wait_phase(core, namespace, "evicted", "Failed")
    assert p.status.reason == "Evicted"
    target = next(c for c in p.status.conditions if c.type == "DisruptionTarget")
    assert (target.status, target.reason) == ("True", "TerminationByKubelet")


def test_annotations_patched_onto_a_running_pod(core, namespace):
    core.create_namespaced_pod(namespace, pod("victim"))
    wait_phase(core, namespace, "victim", "Running")
    core.patch_namespaced_pod("victim", namespace, {"metadata": {"annotations": {"kwok.msjob.test/exit-code": "137"}}})
    p = wait_phase(core, namespace, "victim", "Failed")
    assert p.status.container_statuses[0].state.terminated.exit_code == 137


def test_pending_annotation_holds_the_pod_in_image_pull_backoff(core, namespace):
    core.create_namespaced_pod(namespace, pod("stuck", {"kwok.msjob.test/pending": "true"}))

    def backing_off():
        p = core.read_namespaced_pod("stuck", namespace)
        waiting = p.status.container_statuses and p.status.container_statuses[0].state.waiting
        return p if waiting and waiting.reason == "ImagePullBackOff" else None
    p = wait_for(backing_off, message="ImagePullBackOff")
    assert p.status.phase == "Pending" and p.spec.node_name

    # Lifting the annotation is "the image arrived".
    core.patch_namespaced_pod("stuck", namespace, {"metadata": {"annotations": {"kwok.msjob.test/pending": None}}})
    wait_phase(core, namespace, "stuck", "Running")


def test_garbage_collector_deletes_dependents(core, namespace):
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    body = pod("dependent")
    body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                            "uid": owner.metadata.uid}]
    core.create_namespaced_pod(namespace, body)
    core.delete_namespaced_config_map("owner", namespace)
    wait_for(lambda: gone(lambda: core.read_namespaced_pod("dependent", namespace)), timeout=30,
             message="dependent pod garbage-collected")


def test_volcano_schedules_gangs_whole_or_not_at_all(cluster, core, custom, namespace):
    pool = f"gang{uuid.uuid4().hex[:5]}"  # two nodes of our own: other tests' pods cannot take them
    taint = {"key": POOL_LABEL, "value": pool, "effect": "NoSchedule"}
    nodes = cluster.add_nodes(2, prefix=pool, taints=[taint])
    try:
        def gang(group: str, size: int) -> None:
            custom.create_namespaced_custom_object("scheduling.volcano.sh", "v1beta1", namespace, "podgroups", {
                "apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup",
                "metadata": {"name": group}, "spec": {"minMember": size, "queue": "default"}})
            for i in range(size):
                body = pod(f"{group}-{i}", {"scheduling.k8s.io/group-name": group}, npus=8,
                           schedulerName="volcano", nodeSelector={POOL_LABEL: pool},
                           tolerations=[{**taint, "operator": "Equal"}])
                core.create_namespaced_pod(namespace, body)

        def podgroup(group: str) -> dict:
            return custom.get_namespaced_custom_object("scheduling.volcano.sh", "v1beta1", namespace,
                                                       "podgroups", group).get("status") or {}

        def bound(group: str, size: int) -> list:
            return [core.read_namespaced_pod(f"{group}-{i}", namespace).spec.node_name for i in range(size)]

        gang("big", 3)  # 3 x 8 NPUs on two 8-NPU nodes
        wait_for(lambda: any(c.get("type") == "Unschedulable" and c.get("status") == "True"
                             for c in podgroup("big").get("conditions") or []),
                 timeout=60, message="PodGroup big Unschedulable", describe=lambda: podgroup("big"))
        assert bound("big", 3) == [None] * 3  # not even partly bound

        gang("small", 2)
        wait_for(lambda: podgroup("small").get("phase") == "Running", timeout=60,
                 message="PodGroup small Running", describe=lambda: (podgroup("small"), bound("small", 2)))
        assert sorted(bound("small", 2)) == sorted(nodes)
        assert bound("big", 3) == [None] * 3
    finally:
        for n in nodes:
            cluster.delete_node(n)


def test_restarts_keep_the_data(cluster, core, namespace):
    if cluster.external:
        pytest.skip("restarts need a cluster started by this harness")
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "kept"}, "data": {"k": "v"}})
    cluster.restart_etcd()
    assert core.read_namespaced_config_map("kept", namespace).data == {"k": "v"}
    cluster.restart_apiserver()
    assert core.read_namespaced_config_map("kept", namespace).data == {"k": "v"}
    assert all(cluster.running().values())


def test_fake_nodes_renew_their_leases(kube, core):
    """A fake node must look alive to the controller-manager the way a kubelet does, by its Lease:
    a node judged by a stale status heartbeat goes NotReady after the grace period (~50 s), and
    every pod on it is marked NotReady, which jobs that run for minutes would see."""
    coordination = CoordinationV1Api(kube)
    names = [n.metadata.name for n in core.list_node(label_selector="type=kwok").items]
    assert names

    def leases():
        return {name: coordination.read_namespaced_lease(name, "kube-node-lease").spec for name in names}
    first = wait_for(leases, timeout=30, message="a Lease for every fake node")
    assert {spec.lease_duration_seconds for spec in first.values()} == {NODE_LEASE_SECONDS}
    wait_for(lambda: all(spec.renew_time != first[n].renew_time for n, spec in leases().items()),
             timeout=NODE_LEASE_SECONDS, message="every fake node's Lease renewed",
             describe=lambda: {n: spec.renew_time for n, spec in leases().items()})
