"""builders/runtime.py: the init container that copies msjob_runtime into a pod, and what the
main container gets (not wired into the operator's pods yet)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from msjob_operator.builders import runtime as rb

from .jobs import template


def pod_spec(env=None) -> dict:
    spec = template(env=env)["spec"]
    spec["containers"].insert(0, {"name": "logger", "image": "busybox"})
    spec["initContainers"] = [{"name": "msjob-reporter", "image": "op", "restartPolicy": "Always"}]
    return spec


def test_with_runtime_gives_the_main_container_the_package():
    spec = pod_spec()
    out = rb.with_runtime(spec, "msjob-operator:0.1.0", run_as_user=1000)
    assert spec == pod_spec()  # a copy: the input is left alone
    assert out["volumes"] == [{"name": "msjob-runtime", "emptyDir": {}}]
    install = out["initContainers"][0]  # first: a regular init container, done before the others start
    assert [c["name"] for c in out["initContainers"]] == ["msjob-runtime", "msjob-reporter"]
    assert install["image"] == "msjob-operator:0.1.0" and "restartPolicy" not in install
    assert install["command"] == ["python", "-m", "msjob_runtime.install", "/opt/msjob/runtime"]
    assert install["volumeMounts"] == [{"name": "msjob-runtime", "mountPath": "/opt/msjob/runtime"}]
    sc = install["securityContext"]
    assert sc["runAsUser"] == 1000 and sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    main = out["containers"][1]
    assert main["name"] == "mindspore" and "volumeMounts" not in out["containers"][0]
    assert main["volumeMounts"] == [{"name": "msjob-runtime", "mountPath": "/opt/msjob/runtime", "readOnly": True}]
    assert main["env"] == [{"name": "MSJOB_RUNTIME_PATH", "value": "/opt/msjob/runtime"},
                           {"name": "PYTHONPATH", "value": "/opt/msjob/runtime"}]
    assert rb.with_runtime(out, "other-image") == out  # idempotent


def test_pythonpath_is_appended_to_never_replaced():
    env = [{"name": "PYTHONPATH", "value": "/app:/lib"}, {"name": "X", "value": "1"}]
    main = rb.with_runtime(pod_spec(env=env), "op")["containers"][1]
    assert main["env"] == [{"name": "MSJOB_RUNTIME_PATH", "value": "/opt/msjob/runtime"},
                           {"name": "PYTHONPATH", "value": "/app:/lib:/opt/msjob/runtime"}, {"name": "X", "value": "1"}]
    from_config = [{"name": "PYTHONPATH", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]
    main = rb.with_runtime(pod_spec(env=from_config), "op")["containers"][1]
    assert main["env"][1] == from_config[0]  # not ours to rewrite: $(MSJOB_RUNTIME_PATH) is there to use


def test_a_pod_without_containers_is_refused():
    with pytest.raises(ValueError):
        rb.with_runtime({"containers": []}, "op")


def test_the_install_command_and_env_work_as_built(tmp_path):
    """The init container's command, run here with the volume at a temporary path, then the main
    container's PYTHONPATH (the same rewrite) imports the copy on a Python without site-packages."""
    volume = str(tmp_path / "volume")
    command = rb.install_container("op")["command"]
    command = [sys.executable, *command[1:-1], volume]
    assert subprocess.run(command, capture_output=True, text=True, timeout=60).returncode == 0
    env = {e["name"]: e["value"].replace(rb.RUNTIME_DIR, volume)
           for e in rb.runtime_env({"env": [{"name": "PYTHONPATH", "value": "/nonexistent"}]})}
    done = subprocess.run([sys.executable, "-S", "-c", "import msjob_runtime.callback as c; print(c.__file__)"],
                          env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == os.path.join(volume, "msjob_runtime", "callback.py")
