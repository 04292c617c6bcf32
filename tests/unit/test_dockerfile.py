"""The operator image's Dockerfile follows the rules we care about (no container engine runs here;
tests/cluster/test_image_steps.py runs its install steps for real)."""

import re

from ..dockerfile import DOCKERFILE, parse

ARGS, STAGES = parse()
FINAL = STAGES[-1]


def test_multi_stage_with_the_final_stage_built_from_a_copy():
    assert len(STAGES) >= 2
    assert any(a.startswith("--from=") for a in FINAL.all("COPY"))
    assert not FINAL.all("RUN") or all("pip install" not in r for r in FINAL.all("RUN"))  # no build in the final stage


def test_base_images_are_pinned():
    for stage in STAGES:
        image = stage.image
        assert "$" not in image, f"unresolved ARG in FROM {image}"
        name, _, digest = image.partition("@")
        tag = name.rpartition(":")[2] if ":" in name else ""
        assert digest.startswith("sha256:") or re.match(r"^\d+\.\d+\.\d+", tag), f"{image} is not pinned"
        assert tag != "latest" and "latest" not in image


def test_runs_as_a_non_root_user():
    users = FINAL.all("USER")
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), "use a numeric non-root uid (runAsNonRoot can check it)"


def test_no_remote_add_and_no_curl_pipe():
    for stage in STAGES:
        for add in stage.all("ADD"):
            assert not re.search(r"https?://|git@", add), f"ADD of a URL: {add}"
        for run in stage.all("RUN"):
            assert not re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", run), f"piping a download into a shell: {run}"


def test_installs_only_runtime_dependencies():
    installs = [r for s in STAGES for r in s.all("RUN") if "pip install" in r]
    assert installs
    extras = set(re.findall(r"\.\[([\w,]+)\]", " ".join(installs)))
    used = {e for group in extras for e in group.split(",")}
    # kubernetes (the `sdk` extra) is the SDK's and the KFP launcher's client; the local platform, test, e2e
    # (MindSpore) and kfp stay out.
    assert used <= {"sdk"}, used
    assert all("--no-cache-dir" in r for r in installs), "pip's cache would stay in the image"


def test_entrypoint_runs_the_operator_and_exposes_its_ports():
    # args of a pod (the chart's `run --flags...`) replace CMD and keep ENTRYPOINT: `run` must be CMD.
    assert FINAL.all("ENTRYPOINT") == ['["msjob-operator"]'] and FINAL.all("CMD") == ['["run"]']
    assert set(" ".join(FINAL.all("EXPOSE")).split()) == {"8080", "8081"}


def test_the_process_node_runs_the_image_as_built():
    """The local cluster's process node stands in for this image: same ENTRYPOINT and CMD."""
    import json

    from msjob_localcluster.processnode import IMAGE_ENTRYPOINTS

    entrypoint, cmd = IMAGE_ENTRYPOINTS["msjob-operator"]
    assert (json.loads(FINAL.all("ENTRYPOINT")[0]), json.loads(FINAL.all("CMD")[0])) == (entrypoint, cmd)


def test_the_charts_args_make_a_valid_operator_command_line():
    """ENTRYPOINT + the Deployment's args, as the kubelet joins them, is a command line the CLI accepts."""
    import yaml

    from msjob_operator.cli import build_parser

    template = (DOCKERFILE.parent / "charts" / "msjob-operator" / "templates" / "deployment.yaml").read_text()
    assert "command:" not in template  # the image's ENTRYPOINT runs
    manifest_file = DOCKERFILE.parent / "manifests" / "msjob-operator.yaml"
    manifests = [d for d in yaml.safe_load_all(manifest_file.read_text()) if d]
    (deployment,) = [d for d in manifests if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    parsed = build_parser().parse_args(container["args"])  # argv after the ENTRYPOINT `msjob-operator`
    assert parsed.command == "run" and parsed.func.__name__ == "_run"


def test_reader_resolves_args_and_stages():
    assert ARGS["PYTHON_IMAGE"].startswith("python:3.11")
    assert STAGES[0].name == "build" and STAGES[0].image == ARGS["PYTHON_IMAGE"]
