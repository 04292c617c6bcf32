"""The Kubeflow Pipelines component and the example pipeline compile with kfp, and fit the launcher."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from msjob_operator.api.models import MSJob
from msjob_operator.kfp import launcher

try:
    import kfp  # noqa: F401
except ImportError:  # fail (never skip): the component is part of the product
    kfp = None

EXAMPLE = Path(__file__).parents[2] / "examples" / "pipeline" / "msjob_pipeline.py"
COMPONENT_INPUTS = {"msjob_yaml", "name", "generate_name", "image", "command", "args", "workers", "scheduler", "ps",
                    "resources", "env", "node_selector", "tolerations", "namespace", "timeout_seconds",
                    "delete_after_done"}


@pytest.fixture(autouse=True)
def needs_kfp():
    if kfp is None:
        pytest.fail("kfp is not installed: pip install 'msjob-operator[kfp]'")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("msjob_pipeline_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compiled(example, tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("pipeline") / "msjob_pipeline.yaml"
    assert example.compile_pipeline(str(path)) == str(path)
    return yaml.safe_load(path.read_text())


def test_the_component_and_its_interface(compiled):
    comp = compiled["components"]["comp-msjob-launcher"]
    inputs = comp["inputDefinitions"]["parameters"]
    assert set(inputs) == COMPONENT_INPUTS
    assert inputs["msjob_yaml"]["parameterType"] == "STRING" and inputs["workers"]["parameterType"] == "NUMBER_INTEGER"
    assert inputs["delete_after_done"]["parameterType"] == "BOOLEAN"
    assert inputs["delete_after_done"]["defaultValue"] is False
    assert inputs["generate_name"]["defaultValue"] is True
    assert all(p.get("isOptional") for p in inputs.values())
    assert comp["outputDefinitions"]["parameters"]["status"]["parameterType"] == "STRING"
    assert comp["outputDefinitions"]["artifacts"]["status_artifact"]["artifactType"]["schemaTitle"] == "system.Artifact"

    container = compiled["deploymentSpec"]["executors"][comp["executorLabel"]]["container"]
    assert container["image"] == "msjob-operator:latest"
    assert container["command"] == ["python", "-m", "msjob_operator.kfp.launcher"]
    args = container["args"]
    assert args[args.index("--msjob-yaml") + 1] == "{{$.inputs.parameters['msjob_yaml']}}"
    assert args[args.index("--status-output") + 1] == "{{$.outputs.parameters['status'].output_file}}"
    assert args[args.index("--status-artifact") + 1] == "{{$.outputs.artifacts['status_artifact'].path}}"


def test_the_component_arguments_are_the_launchers(compiled):
    """Every flag the component passes is one the launcher accepts, with values as KFP renders them."""
    comp = compiled["components"]["comp-msjob-launcher"]
    args = compiled["deploymentSpec"]["executors"][comp["executorLabel"]]["container"]["args"]
    rendered = {"msjob_yaml": "", "name": "", "generate_name": "true", "image": "img", "command": '["python", "t.py"]',
                "args": "", "workers": "2", "scheduler": "true", "ps": "0", "resources": "", "env": "",
                "node_selector": "", "tolerations": "", "namespace": "ns", "timeout_seconds": "3600",
                "delete_after_done": "false"}
    values = []
    for arg in args:
        if arg.startswith("{{$.inputs.parameters['"):
            values.append(rendered[arg.split("'")[1]])
        elif arg.startswith("{{$.outputs."):
            values.append("/tmp/out")
        else:
            values.append(arg)
    parsed = launcher.build_parser().parse_args(values)
    assert parsed.workers == 2 and parsed.generate_name is True and parsed.delete_after_done is False
    assert parsed.timeout == 3600 and parsed.namespace == "ns"


def test_the_example_pipeline_wires_the_steps(compiled):
    assert compiled["pipelineInfo"]["name"] == "msjob-training"
    tasks = compiled["root"]["dag"]["tasks"]
    smoke, train, report = tasks["msjob-launcher"], tasks["msjob-launcher-2"], tasks["report"]
    assert smoke["taskInfo"]["name"] == "smoke-test" and train["taskInfo"]["name"] == "train"
    assert train["dependentTasks"] == ["msjob-launcher"]
    assert train["inputs"]["parameters"]["msjob_yaml"] == {"componentInputParameter": "job_yaml"}
    assert smoke["inputs"]["parameters"]["name"]["runtimeValue"]["constant"] == "mnist-smoke-test"
    assert smoke["inputs"]["parameters"]["image"] == {"componentInputParameter": "smoke_image"}
    assert not smoke["cachingOptions"].get("enableCache") and not train["cachingOptions"].get("enableCache")
    assert report["inputs"]["parameters"]["status"]["taskOutputParameter"] == {
        "outputParameterKey": "status", "producerTask": "msjob-launcher-2"}

    # The default job is a valid MSJob that the launcher would submit as it is.
    default_yaml = compiled["root"]["inputDefinitions"]["parameters"]["job_yaml"]["defaultValue"]
    job = launcher.build_job(default_yaml)
    assert MSJob.model_validate(job).spec.ms_replica_specs.worker.replicas == 2
    assert job["metadata"]["name"] == "mnist-data-parallel"


def test_the_image_is_a_parameter(tmp_path):
    from kfp import compiler, dsl

    from msjob_operator.kfp.component import make_msjob_op

    op = make_msjob_op("registry.example/msjob-operator:1.2")

    @dsl.pipeline(name="one-step")
    def one_step(job_yaml: str):
        op(msjob_yaml=job_yaml, delete_after_done=True)

    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(one_step, str(path))
    spec = yaml.safe_load(path.read_text())
    (executor,) = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == "registry.example/msjob-operator:1.2"
    task = spec["root"]["dag"]["tasks"]["msjob-launcher"]
    assert task["inputs"]["parameters"]["delete_after_done"]["runtimeValue"]["constant"] is True


def test_build_job_from_yaml_and_parameters():
    text = yaml.safe_dump({"apiVersion": "mindspore.gitee.com/v1", "kind": "MSJob", "metadata": {"name": "a"},
                           "spec": {"msReplicaSpecs": {"Worker": {"replicas": 1, "template": {}}}}})
    assert launcher.build_job(text, name="b")["metadata"] == {"name": "b"}
    assert launcher.build_job(text, generate_name=True)["metadata"] == {"generateName": "a-"}
    job = launcher.build_job(None, name="p", image="img", command='["python", "t.py"]', workers=3, ps=1,
                             resources='{"limits": {"huawei.com/Ascend910": 8}}', env='{"A": "1"}')
    specs = job["spec"]["msReplicaSpecs"]
    assert job["metadata"] == {"name": "p"} and specs["Worker"]["replicas"] == 3 and specs["PS"]["replicas"] == 1
    worker = specs["Worker"]["template"]["spec"]["containers"][0]
    assert worker["command"] == ["python", "t.py"] and worker["resources"]["limits"]["huawei.com/Ascend910"] == 8
    assert "resources" not in specs["Scheduler"]["template"]["spec"]["containers"][0]
    assert MSJob.model_validate(job).spec.ms_replica_specs.ps.replicas == 1
    with pytest.raises(launcher.LaunchError, match="exactly one"):
        launcher.build_job(text + "---\n" + text)
    with pytest.raises(launcher.LaunchError, match="env must be JSON"):
        launcher.build_job(None, image="img", env="A=1")
