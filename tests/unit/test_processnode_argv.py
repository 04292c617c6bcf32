"""What a process node container runs: command, args and the image's ENTRYPOINT/CMD, as the kubelet combines them."""

from msjob_localcluster.processnode import container_argv, image_name

ENV = {"EPOCHS": "3"}


def test_image_names_without_registry_tag_or_digest():
    assert image_name("msjob-operator:0.1.0") == "msjob-operator"
    assert image_name("registry.example:5000/team/msjob-operator:1.2@sha256:abc") == "msjob-operator"
    assert image_name("mindspore/mindspore") == "mindspore"


def test_command_replaces_the_entrypoint_and_drops_cmd():
    image = "msjob-operator:0.1.0"
    assert container_argv({"image": image, "command": ["python", "-m", "x"]}, ENV) == ["python", "-m", "x"]
    assert container_argv({"image": image, "command": ["python", "t.py"], "args": ["--epochs", "$(EPOCHS)"]},
                          ENV) == ["python", "t.py", "--epochs", "3"]


def test_args_replace_cmd_and_keep_the_entrypoint():
    # The chart's Deployment: args only.
    assert container_argv({"image": "reg.example/msjob-operator:0.1.0", "args": ["run", "--workers=16"]}, ENV) == [
        "msjob-operator", "run", "--workers=16"]
    assert container_argv({"image": "msjob-operator:latest"}, ENV) == ["msjob-operator", "run"]


def test_an_unknown_image_without_command_runs_its_args_only():
    assert container_argv({"image": "python:3", "args": ["echo", "$(EPOCHS)"]}, ENV) == ["echo", "3"]
    assert container_argv({"image": "python:3"}, ENV) == []
