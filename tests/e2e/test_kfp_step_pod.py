"""A Kubeflow Pipelines step as the pod Kubernetes starts: the example pipeline's compiled container (its image,
command and arguments, placeholders filled as KFP fills them) on the process node, with a ServiceAccount bound
to the README's launcher Role and the in-cluster configuration. It submits an MSJob, prints its progress, writes
its outputs; deleting the pod (SIGTERM, as when a run is cancelled) deletes the job."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml
from kubernetes.client import RbacAuthorizationV1Api

from msjob_localcluster.processnode import NODE_SELECTOR, TOLERATION
from msjob_operator.sdk import MSJobClient, MSJobNotFoundError

from ..helpers import wait_for
from ..integration.msjobs import EXIT, RUN
from .conftest import unavailable

REPO = Path(__file__).parents[2]
PIPELINE = REPO / "examples" / "pipeline" / "msjob_pipeline.py"
OUTPUTS = "/tmp/outputs"  # where the step's output files go in the pod (KFP's launcher picks such paths)
SERVICE_ACCOUNT = "pipeline-runner"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """(the compiled pipeline spec, the example module)."""
    if importlib.util.find_spec("kfp") is None:
        unavailable("kfp is not installed (pip install -e '.[kfp]')")
    spec = importlib.util.spec_from_file_location("msjob_pipeline_example", PIPELINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path_factory.mktemp("pipeline") / "msjob_pipeline.yaml"
    module.compile_pipeline(str(path))
    return yaml.safe_load(path.read_text()), module


def rendered(value) -> str:
    """A parameter value as KFP puts it on a command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value)


def step_container(compiled: dict, task: str, pipeline_args: dict) -> dict:
    """The container of ``task`` as KFP's driver hands it to Kubernetes: the compiled image, command and args
    with every placeholder replaced (inputs from the task, the pipeline's arguments or the defaults)."""
    task_spec = compiled["root"]["dag"]["tasks"][task]
    component = compiled["components"][task_spec["componentRef"]["name"]]
    container = copy.deepcopy(compiled["deploymentSpec"]["executors"][component["executorLabel"]]["container"])
    pipeline_params = {k: pipeline_args.get(k, v.get("defaultValue"))
                       for k, v in compiled["root"]["inputDefinitions"]["parameters"].items()}
    values = {k: v.get("defaultValue") for k, v in component["inputDefinitions"]["parameters"].items()}
    for name, source in task_spec["inputs"]["parameters"].items():
        if "componentInputParameter" in source:
            values[name] = pipeline_params[source["componentInputParameter"]]
        else:
            values[name] = source["runtimeValue"]["constant"]

    def fill(arg: str) -> str:
        if match := re.fullmatch(r"\{\{\$\.inputs\.parameters\['(\w+)'\]\}\}", arg):
            return rendered(values[match[1]])
        output = r"\{\{\$\.outputs\.(?:parameters|artifacts)\['(\w+)'\]\.(?:output_file|path)\}\}"
        if match := re.fullmatch(output, arg):
            return f"{OUTPUTS}/{match[1]}/data"
        assert "{{" not in arg, f"a placeholder this test does not know: {arg}"
        return arg

    container["args"] = [fill(a) for a in container["args"]]
    return container


def launcher_role(namespace: str, rbac: RbacAuthorizationV1Api) -> None:
    """The README's Role for the step's service account, bound to ``SERVICE_ACCOUNT``."""
    section = (REPO / "README.md").read_text().split("## Kubeflow Pipelines", 1)[1]
    role = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert role["kind"] == "Role" and role["metadata"]["name"] == "msjob-launcher", role
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "msjob-launcher"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "msjob-launcher"},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}]})


def step_pod(name: str, container: dict, outputs: Path) -> dict:
    main = {"name": "main", **{k: container[k] for k in ("image", "command", "args")},
            "volumeMounts": [{"name": "outputs", "mountPath": OUTPUTS}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "kfp-step"}},
            "spec": {"serviceAccountName": SERVICE_ACCOUNT, "restartPolicy": "Never",
                     "nodeSelector": dict(NODE_SELECTOR), "tolerations": [TOLERATION],
                     "terminationGracePeriodSeconds": 30, "containers": [main],
                     "volumes": [{"name": "outputs", "hostPath": {"path": str(outputs), "type": "DirectoryOrCreate"}}]}}


def test_the_pipeline_step_runs_as_a_pod_and_a_deleted_pod_deletes_its_job(jobs, kube, pipeline, tmp_path):
    compiled, example = pipeline
    ns, core = jobs.ns, jobs.core
    core.create_namespaced_service_account(ns, {"metadata": {"name": SERVICE_ACCOUNT}})
    launcher_role(ns, RbacAuthorizationV1Api(kube))
    client = MSJobClient(api_client=kube, namespace=ns)

    # A run of the "train" step with the example's job, its workers finishing on the fake nodes after 5 s.
    job = yaml.safe_load(example.JOB_YAML)
    worker_template = job["spec"]["msReplicaSpecs"]["Worker"]["template"]
    worker_template.setdefault("metadata", {})["annotations"] = {EXIT: "0", RUN: "5"}
    container = step_container(compiled, "msjob-launcher-2", {"job_yaml": json.dumps(job)})
    assert container["image"] == example.LAUNCHER_IMAGE
    assert container["command"] == ["python", "-m", "msjob_operator.kfp.launcher"]
    core.create_namespaced_pod(ns, step_pod("train-step", container, tmp_path / "train"))
    wait_for(lambda: core.read_namespaced_pod("train-step", ns).status.phase in ("Succeeded", "Failed"), timeout=180,
             message="the step's pod finished", describe=lambda: jobs.node.log(ns, "train-step")[-3000:])
    log = jobs.node.log(ns, "train-step")
    assert core.read_namespaced_pod("train-step", ns).status.phase == "Succeeded", log
    name = re.search(rf"^submitted MSJob {ns}/(mnist-data-parallel-\w+)$", log, re.M)[1]  # generate_name: a new name
    assert re.search(rf"^\[ *[0-9.]+s\] {name}: Running workers 2/2 restarts 0$", log, re.M), log
    assert re.search(rf"^{name}: Succeeded: MSJobSucceeded: ", log, re.M), log
    status = json.loads((tmp_path / "train" / "status" / "data").read_text())
    assert (status["name"], status["namespace"], status["state"], status["succeeded"]) == (name, ns, "Succeeded", True)
    assert json.loads((tmp_path / "train" / "status_artifact" / "data").read_text()) == status
    assert client.is_succeeded(name)  # delete_after_done is false in the example

    # The example's job as it is (its pods run on until cancelled); deleting the step's pod cancels it.
    container = step_container(compiled, "msjob-launcher-2", {})
    core.create_namespaced_pod(ns, step_pod("cancelled-step", container, tmp_path / "cancelled"))
    match = wait_for(lambda: re.search(r"^\[ *[0-9.]+s\] (mnist-data-parallel-\w+): Running workers 2/2",
                                       jobs.node.log(ns, "cancelled-step"), re.M),
                     timeout=120, message="the step reporting its job running",
                     describe=lambda: jobs.node.log(ns, "cancelled-step")[-3000:])
    cancelled = match[1]
    assert client.is_running(cancelled)
    core.delete_namespaced_pod("cancelled-step", ns)
    wait_for(lambda: not [p for p in core.list_namespaced_pod(ns).items if p.metadata.name == "cancelled-step"],
             timeout=60, message="the step's pod gone")
    log = jobs.node.log(ns, "cancelled-step")
    assert f"cancelled by signal SIGTERM: deleting MSJob {ns}/{cancelled}" in log, log
    assert jobs.node.record(ns, "cancelled-step")["containers"]["main"]["exit_code"] == 143

    def deleted() -> bool:
        try:
            client.get(cancelled)
        except MSJobNotFoundError:
            return True
        return False
    wait_for(deleted, timeout=30, message="the cancelled step's MSJob deleted")
    wait_for(lambda: not client.get_pods(cancelled, include_terminating=False), timeout=60,
             message="its pods go with it")
    assert not (tmp_path / "cancelled" / "status" / "data").exists()  # no outputs from a cancelled step
    assert client.is_succeeded(name)  # the other run's job is untouched
