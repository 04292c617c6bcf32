"""The operator outlives its control plane: API server and etcd restarts, and a node that disappears.

These tests restart components, so they run on a cluster of their own (about 10 s to start),
never on the session's shared one, with an operator of their own that is never restarted.
"""

from __future__ import annotations

import pytest
from kubernetes import config

from msjob_localcluster.cluster import LocalCluster
from msjob_localcluster.operator_process import OperatorProcess
from msjob_operator.api import naming

from .msjobs import EXIT, MSJobs, msjob

pytestmark = pytest.mark.cluster
TIMEOUT = 120


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("restarts"), name="restarts", nodes=2)
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def own_operator(own_cluster, tmp_path_factory):
    proc = OperatorProcess(own_cluster.kubeconfig, tmp_path_factory.mktemp("restarts-operator")).start()
    yield proc
    proc.stop()


@pytest.fixture
def own_jobs(own_cluster, own_operator, request):
    api = config.new_client_from_config(config_file=str(own_cluster.kubeconfig))
    namespace = request.node.name.replace("_", "-")[:50].rstrip("-")
    jobs = MSJobs(api, namespace)
    jobs.core.create_namespace({"metadata": {"name": namespace}})
    yield jobs
    api.close()


@pytest.fixture(scope="module")
def lost_node(own_cluster, own_operator):
    """A running job one of whose nodes is deleted. The pod garbage collector takes its time
    (a 40 s quarantine), so this starts before the restart test and is checked after it."""
    api = config.new_client_from_config(config_file=str(own_cluster.kubeconfig))
    jobs = MSJobs(api, "lost-node")
    jobs.core.create_namespace({"metadata": {"name": jobs.ns}})
    jobs.create(msjob("lost", workers=2, runPolicy={"backoffLimit": 0}))
    pods = jobs.wait_pods("lost", 3, timeout=TIMEOUT, attempt=0)
    node = pods[0].spec.node_name
    own_cluster.delete_node(node)
    yield jobs, node
    api.close()


def test_watches_recover_after_apiserver_and_etcd_restarts(own_cluster, own_operator, own_jobs, lost_node):
    jobs, pid = own_jobs, own_operator.proc.pid
    jobs.create(msjob("before", workers=1))
    jobs.wait_pods("before", 2, timeout=TIMEOUT)

    own_cluster.restart_apiserver()
    # A job created after the restart is reconciled: the MSJob watch is back...
    jobs.create(msjob("after-apiserver", workers=1))
    jobs.wait_condition("after-apiserver", "Running", timeout=TIMEOUT)
    # ...and so is the pod watch: a member's exit is noticed.
    jobs.annotate_pod("before-worker-0", {EXIT: "0"})
    jobs.wait_condition("before", "Succeeded", timeout=TIMEOUT)

    own_cluster.restart_etcd()
    jobs.create(msjob("after-etcd", workers=1))
    jobs.wait_condition("after-etcd", "Running", timeout=TIMEOUT)
    jobs.annotate_pod("after-apiserver-worker-0", {EXIT: "0"})
    jobs.wait_condition("after-apiserver", "Succeeded", timeout=TIMEOUT)

    assert own_operator.proc.poll() is None and own_operator.proc.pid == pid  # never restarted


def test_deleted_node_restarts_the_gang_without_using_the_budget(lost_node):
    jobs, node = lost_node
    # The pod garbage collector marks the lost node's pods Failed with DisruptionTarget
    # (DeletionByPodGC): a disruption, so the gang restarts without counting against backoffLimit.
    new = jobs.wait_pods("lost", 3, timeout=TIMEOUT, attempt=1)
    assert all(p.spec.node_name != node for p in new)
    jobs.wait_condition("lost", "Running", timeout=TIMEOUT)
    status = jobs.get("lost")["status"]
    assert status["restartCount"] == 1 and not status.get("backoffCount"), status
    assert status["lastFailure"]["node"] == node
    assert jobs.condition("lost", "Restarting")["reason"] == "MSJobRestarted"
    assert any(e.reason == "MemberDisrupted" for e in jobs.events("lost")), [e.reason for e in jobs.events("lost")]
    assert all(p.metadata.labels[naming.ATTEMPT_LABEL] == "1" for p in jobs.pods("lost", include_terminating=False))
