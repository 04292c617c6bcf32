"""`msjob-operator run --namespace NS` reconciles jobs in NS only."""

import uuid

import pytest

from msjob_localcluster.operator_process import OperatorProcess

from .msjobs import MSJobs, msjob

pytestmark = pytest.mark.cluster


def test_namespaced_operator_leaves_other_namespaces_alone(kube, core, namespace, running_operator, cluster, tmp_path):
    other = f"elsewhere-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": other}})
    running_operator.stop()  # only the namespaced operator may act during this test
    scoped = OperatorProcess(cluster.kubeconfig, tmp_path, extra_args=["--namespace", namespace])
    try:
        scoped.start()
        mine, theirs = MSJobs(kube, namespace), MSJobs(kube, other)
        theirs.create(msjob("outside", workers=1))
        mine.create(msjob("inside", workers=1))
        mine.wait_pods("inside", 2)
        mine.wait_condition("inside", "Running")
        assert not theirs.pods("outside") and not theirs.get("outside").get("status")
    finally:
        scoped.stop()
        core.delete_namespace(other)
        running_operator.start()
