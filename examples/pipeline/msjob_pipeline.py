"""A Kubeflow Pipelines (v2) pipeline that trains with MindSpore on an MSJob, then reports the job's final status.

    pip install 'msjob-operator[kfp]'
    python examples/pipeline/msjob_pipeline.py msjob_pipeline.yaml    # compile; upload the YAML to Kubeflow Pipelines

Step 1 (``smoke-test``) runs a small one-epoch MSJob built from parameters alone. Step 2 (``train``) submits the
MSJob of ``job_yaml`` (default: the YAML below), prints its progress and fails if the job fails, with the job's
reason. Step 3 (``report``) reads the training step's ``status`` output (JSON).
The pipeline's service account needs RBAC on ``msjobs`` (see the README, "Kubeflow Pipelines").
"""

import json
import sys

import yaml
from kfp import compiler, dsl

from msjob_operator.kfp.component import make_msjob_op

# The image holding msjob_operator (the operator's image); the training image is a separate parameter.
LAUNCHER_IMAGE = "msjob-operator:latest"
msjob_op = make_msjob_op(LAUNCHER_IMAGE)

JOB_YAML = """\
apiVersion: mindspore.gitee.com/v1
kind: MSJob
metadata:
  name: mnist-data-parallel
  labels: {app: mnist}
spec:
  runPolicy:
    backoffLimit: 2
    cleanPodPolicy: Running
  failurePolicy:
    startupDeadlineSeconds: 600
  mindspore:
    clusterTimeoutSeconds: 300
  msReplicaSpecs:
    Scheduler:
      replicas: 1
      template:
        spec:
          containers:
            - name: mindspore
              image: mindspore/mindspore:2.10.0
              command: ["python", "/workspace/train_data_parallel.py"]
    Worker:
      replicas: 2
      template:
        spec:
          containers:
            - name: mindspore
              image: mindspore/mindspore:2.10.0
              command: ["python", "/workspace/train_data_parallel.py", "--epochs", "4"]
              resources:
                requests: {cpu: "2", memory: 4Gi}
"""


# The pipeline parameter's default is the job as one-line JSON (JSON is YAML too): kfp copies defaults into the
# compiled file's header comment, where a multi-line string would break the YAML.
JOB_JSON = json.dumps(yaml.safe_load(JOB_YAML), separators=(",", ":"))


@dsl.component(base_image="python:3.11-slim")
def report(status: str) -> str:
    """Print the MSJob's outcome; returns its state."""
    import json

    result = json.loads(status)
    print(f"MSJob {result['namespace']}/{result['name']}: {result['state']} "
          f"after {result['restartCount']} restarts ({result.get('reason')})")
    return result["state"]


@dsl.pipeline(name="msjob-training", description="Distributed MindSpore training on an MSJob, then a report.")
def msjob_training(job_yaml: str = JOB_JSON, smoke_image: str = "mindspore/mindspore:2.10.0", smoke_workers: int = 2,
                   delete_after_done: bool = False):
    # A one-epoch job built from parameters alone, as a smoke test of the image and the cluster.
    smoke = msjob_op(
        name="mnist-smoke-test",
        image=smoke_image,
        command='["python", "/workspace/train_data_parallel.py", "--epochs", "1"]',
        workers=smoke_workers,
        resources='{"requests": {"cpu": "1", "memory": "2Gi"}}',
        delete_after_done=True,
        timeout_seconds=1800,
    )
    smoke.set_display_name("smoke-test")
    smoke.set_caching_options(False)  # a training run is never "already done"

    # The real training job, from YAML (a run can pass another job_yaml).
    train = msjob_op(msjob_yaml=job_yaml, delete_after_done=delete_after_done, timeout_seconds=6 * 3600).after(smoke)
    train.set_display_name("train")
    train.set_caching_options(False)

    summary = report(status=train.outputs["status"])
    summary.set_display_name("report")


def compile_pipeline(path: str) -> str:
    compiler.Compiler().compile(pipeline_func=msjob_training, package_path=path)
    return path


if __name__ == "__main__":
    print(compile_pipeline(sys.argv[1] if len(sys.argv) > 1 else "msjob_pipeline.yaml"))
