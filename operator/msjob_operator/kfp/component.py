"""The Kubeflow Pipelines v2 component that runs an MSJob as a pipeline step (needs ``kfp`` 2.x to import).

    from kfp import dsl
    from msjob_operator.kfp.component import msjob_op

    @dsl.pipeline(name="train")
    def train(job_yaml: str):
        step = msjob_op(msjob_yaml=job_yaml, delete_after_done=True)
        step.set_caching_options(False)          # a training run should not be skipped as "cached"
        report(status=step.outputs["status"])    # the final status as a JSON string

The step runs ``python -m msjob_operator.kfp.launcher`` (``msjob_operator.kfp.launcher``) in the operator's
image, so its behaviour is exactly the launcher's: submit, print progress, fail the step when the job fails
(with the job's reason and message), delete the job when the run is cancelled, and output the final status as
the ``status`` parameter and the ``status_artifact`` artifact. ``make_msjob_op(image=...)`` builds the same
component on another image; it needs this package and the ``kubernetes`` client in it.
"""

# No ``from __future__ import annotations``: kfp reads the parameter annotations as objects.

from typing import Any

from kfp import dsl

DEFAULT_IMAGE = "msjob-operator:latest"
LAUNCHER_COMMAND = ["python", "-m", "msjob_operator.kfp.launcher"]


def make_msjob_op(image: str = DEFAULT_IMAGE) -> Any:
    """The ``msjob-launcher`` component (a kfp ``ContainerComponent``) running the launcher in ``image``."""
    _image = image  # the component's own ``image`` input (the training image) shadows the name below

    # kfp ships no type information (its decorator is untyped to mypy), and its output annotations are calls.
    @dsl.container_component
    def msjob_launcher(
        status: dsl.OutputPath(str),  # type: ignore[valid-type]
        status_artifact: dsl.Output[dsl.Artifact],
        msjob_yaml: str = "",
        name: str = "",
        generate_name: bool = True,
        image: str = "",
        command: str = "",
        args: str = "",
        workers: int = 1,
        scheduler: bool = True,
        ps: int = 0,
        resources: str = "",
        env: str = "",
        node_selector: str = "",
        tolerations: str = "",
        namespace: str = "",
        timeout_seconds: int = 86400,
        delete_after_done: bool = False,
    ) -> dsl.ContainerSpec:
        """Submit an MSJob (from ``msjob_yaml``, or from ``image``/``command``/``workers``...), wait for it while
        printing progress, fail when it fails, delete it when the run is cancelled; outputs its final status.

        ``generate_name`` (default true) makes the job's name a prefix completed by the API server, so running
        the pipeline again never collides with the previous run's job. ``command``/``args`` are a JSON list or a
        shell-like string; ``resources`` (workers' container resources), ``env``, ``node_selector`` and
        ``tolerations`` are JSON. ``namespace`` defaults to the step's own namespace.
        """
        return dsl.ContainerSpec(
            image=_image,
            command=LAUNCHER_COMMAND,
            args=[
                "--msjob-yaml", msjob_yaml,
                "--name", name,
                "--generate-name", generate_name,
                "--image", image,
                "--command", command,
                "--args", args,
                "--workers", workers,
                "--scheduler", scheduler,
                "--ps", ps,
                "--resources", resources,
                "--env", env,
                "--node-selector", node_selector,
                "--tolerations", tolerations,
                "--namespace", namespace,
                "--timeout", timeout_seconds,
                "--delete-after-done", delete_after_done,
                "--status-output", status,
                "--status-artifact", status_artifact.path,
            ],
        )

    return msjob_launcher


msjob_op = make_msjob_op()
