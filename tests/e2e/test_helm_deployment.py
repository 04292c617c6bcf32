"""`helm install` that runs: the chart's Deployment pod itself, scheduled on the process node through the chart's
nodeSelector and tolerations values (the machine's Python standing in for the image, whose entrypoint it runs),
is the operator: with the chart's ServiceAccount and the in-cluster configuration it reconciles a real MindSpore
job to success. `helm uninstall` then removes the operator and leaves the job and its pods, which go with the job
through the garbage collector (docs/admin-guide.md, "Uninstall")."""

from __future__ import annotations

import uuid

import pytest
import yaml
from kubernetes.client import AppsV1Api

from msjob_localcluster.processnode import NODE_SELECTOR, TOLERATION

from ..helpers import wait_for
from ..integration import helmchart
from .support import msjob
from .test_mindspore import JOB_TIMEOUT


@pytest.fixture
def only_the_charts_operator(e2e_operator):
    """No other operator may act while the chart's runs: the test package's own is stopped meanwhile."""
    if e2e_operator is None:
        pytest.fail("another operator process watches this cluster: the chart's operator must be the only one")
    e2e_operator.stop()
    yield
    e2e_operator.start()


def operator_pod(core, namespace: str, release: str):
    pods = core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={release}").items
    return pods[0] if len(pods) == 1 else None


def test_the_charts_deployment_runs_the_operator_that_trains_a_job(helm, cluster, kube, jobs, only_the_charts_operator,
                                                                  tmp_path, figures):
    ns, core = jobs.ns, jobs.core
    release = f"r{uuid.uuid4().hex[:6]}"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"nodeSelector": dict(NODE_SELECTOR), "tolerations": [TOLERATION]}))
    helmchart.run(helm, "install", release, str(helmchart.CHART), "--namespace", ns, "--values", str(values),
                  kubeconfig=cluster.kubeconfig)
    uninstalled = False
    try:
        pod = wait_for(lambda: (p := operator_pod(core, ns, release)) and p.status.phase == "Running" and p,
                       timeout=120, message="the chart's operator pod Running",
                       describe=lambda: [(p.metadata.name, p.spec.node_name, p.status.phase)
                                         for p in core.list_namespaced_pod(ns).items])
        assert pod.spec.node_name == jobs.node.name and pod.spec.service_account_name == f"{release}-msjob-operator"
        main = pod.spec.containers[0]
        assert main.command is None and main.args[0] == "run"  # the image's entrypoint
        name = pod.metadata.name
        wait_for(lambda: "serving metrics on port 8080" in jobs.node.log(ns, name), timeout=60,
                 message="the operator in the pod started", describe=lambda: jobs.node.log(ns, name)[-3000:])

        jobs.create(msjob("helm-dp", workers=2, worker_args=["--epochs", "2"]))
        status = jobs.wait_finished("helm-dp", JOB_TIMEOUT)
        log = jobs.node.log(ns, name)
        assert status["state"] == "Succeeded", (jobs.state("helm-dp"), log[-4000:])
        assert f"[{ns}/helm-dp]" in log, log[-4000:]  # this operator, in the chart's pod, did it
        assert f"system:serviceaccount:{ns}:{release}-msjob-operator" not in log and "Not enough permissions" not in log
        assert any("training finished" in run for run in jobs.logs("helm-dp-worker-0"))
        figures("helm_deployment", restarts=status.get("restartCount", 0))
        # Once the operator's clean-up is done (cleanPodPolicy Running), the finished pods stay.
        wait_for(lambda: all(p.status.phase in ("Succeeded", "Failed") and p.metadata.deletion_timestamp is None
                             for p in jobs.pods("helm-dp")), timeout=60, message="only finished pods of helm-dp left",
                 describe=lambda: jobs.state("helm-dp"))
        left = {p.metadata.name for p in jobs.pods("helm-dp")}
        assert "helm-dp-worker-0" in left

        helmchart.run(helm, "uninstall", release, "-n", ns, "--wait", kubeconfig=cluster.kubeconfig)
        uninstalled = True
        wait_for(lambda: operator_pod(core, ns, release) is None, timeout=60, message="the operator pod gone")
        assert jobs.node.record(ns, name)["containers"]["operator"]["exit_code"] is not None
        assert not AppsV1Api(kube).list_namespaced_deployment(ns).items
        # What the uninstall leaves: the job, its pods and Services, to go with the job.
        assert jobs.exists("helm-dp") and {p.metadata.name for p in jobs.pods("helm-dp")} == left
        jobs.delete("helm-dp")
        wait_for(lambda: not jobs.pods("helm-dp") and not jobs.services("helm-dp"), timeout=90,
                 message="the job's pods and Services garbage-collected with no operator running",
                 describe=lambda: [p.metadata.name for p in jobs.pods("helm-dp")])
    finally:
        if not uninstalled:
            helmchart.run(helm, "uninstall", release, "-n", ns, kubeconfig=cluster.kubeconfig, check=False)
