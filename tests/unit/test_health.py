"""The operator's side of health: stall detection, and the reporter's RBAC and sidecar (the
reporter itself and the progress format are msjob_runtime's: tests/unit/runtime/)."""

from __future__ import annotations

import datetime as dt

import pytest

from msjob_operator.api import naming
from msjob_operator.api.template_rules import REPORTER_CONTAINER
from msjob_operator.builders import rbac
from msjob_operator.builders import reporter as sidecar
from msjob_operator.builders.reporter import VOLUME_NAME
from msjob_operator.reconcile import stall_clock as status
from msjob_runtime.progress import PERF_DIR, PROGRESS_FILE, RUN_DIR, format_time

from .jobs import job

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# status.py: stall_check


def at(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def progress_at(seconds: float, step: int = 1240) -> dict:
    return {"step": step, "heartbeat": format_time(at(seconds))}


def test_stall_slow_start_is_not_a_stall():
    stalled, wait, msg = status.stall_check(None, running_since=NOW, now=at(100), timeout_s=600)
    assert (stalled, wait) == (False, 500) and "no training step yet" in msg
    stalled, wait, msg = status.stall_check(None, running_since=NOW, now=at(601), timeout_s=600)
    assert stalled and wait is None and msg == "no training step 601 s after all pods were running"


def test_stall_not_running_yet():
    assert status.stall_check(None, running_since=None, now=NOW, timeout_s=600) == (False, None, "not running yet")


def test_stall_after_the_heartbeat_stops():
    p = progress_at(3)
    stalled, wait, msg = status.stall_check(p, running_since=at(-1000), now=at(100), timeout_s=600)
    assert (stalled, wait) == (False, pytest.approx(503)) and msg == "last step 1240 at 12:00:03Z"
    stalled, wait, msg = status.stall_check(p, running_since=at(-1000), now=at(615), timeout_s=600)
    assert stalled and wait is None
    assert msg == "no training step for 612 s (last step 1240 at 12:00:03Z)"
    # Exactly at the timeout: not yet.
    assert status.stall_check(p, running_since=None, now=at(603), timeout_s=600)[0] is False


def test_stall_clock_starts_at_running_since_when_the_heartbeat_is_older():
    p = progress_at(-5000)  # e.g. skewed node clock, or a heartbeat from before a gang restart
    stalled, wait, _ = status.stall_check(p, running_since=NOW, now=at(10), timeout_s=600)
    assert not stalled and wait == pytest.approx(590)
    stalled, _, msg = status.stall_check(p, running_since=NOW, now=at(700), timeout_s=600)
    assert stalled and msg.startswith("no training step for 5700 s")


def test_stall_heartbeat_in_the_future_counts_as_now():
    stalled, wait, _ = status.stall_check(progress_at(30), running_since=NOW, now=at(0), timeout_s=60)
    assert not stalled and wait == 60


def test_stall_detection_off():
    assert status.stall_check(None, running_since=NOW, now=at(10**6), timeout_s=0)[:2] == (False, None)
    assert status.stall_check(progress_at(0), running_since=NOW, now=at(10**6), timeout_s=None)[:2] == (False, None)


def test_stall_startup_grace_replaces_the_timeout_before_the_first_step_only():
    stalled, wait, _ = status.stall_check(None, running_since=NOW, now=at(100), timeout_s=60, startup_s=300)
    assert not stalled and wait == 200  # compiling for 100 s is fine with 300 s of grace
    assert status.stall_check(None, running_since=NOW, now=at(301), timeout_s=60, startup_s=300)[0] is True
    # Once steps come, the stall timeout applies again.
    assert status.stall_check(progress_at(200), running_since=NOW, now=at(261), timeout_s=60, startup_s=300)[0] is True


# ---------------------------------------------------------------------------------------------
# builders/rbac.py and builders/reporter.py


def test_rbac_objects():
    j = job("demo")
    sa, role, binding = rbac.service_account(j), rbac.role(j, ["demo-worker-0"]), rbac.role_binding(j)
    for obj in (sa, role, binding):
        meta = obj["metadata"]
        assert meta["name"] == "demo-reporter" and meta["namespace"] == j["metadata"]["namespace"]
        assert meta["labels"] == naming.job_labels("demo")
        assert meta["ownerReferences"] == [naming.owner_reference(j)]
    assert sa["kind"] == "ServiceAccount" and sa["apiVersion"] == "v1"
    assert role["apiVersion"] == "rbac.authorization.k8s.io/v1" and role["kind"] == "Role"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"],
                              "resourceNames": ["demo-worker-0"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "demo-reporter"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-reporter",
                                    "namespace": j["metadata"]["namespace"]}]
    assert rbac.role_binding(j, ["users-sa"])["subjects"][0]["name"] == "users-sa"
    with pytest.raises(ValueError):
        rbac.role(j, [])  # an empty resourceNames would allow every pod


def test_reporter_container():
    c = sidecar.reporter_container("msjob-operator:0.1.0", 15)
    assert c["name"] == REPORTER_CONTAINER and c["image"] == "msjob-operator:0.1.0"
    assert c["command"] == ["python", "-m", "msjob_runtime.reporter", "--perf-dir", PERF_DIR,
                            "--progress-file", PROGRESS_FILE, "--interval", "15"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert c["volumeMounts"] == [{"name": VOLUME_NAME, "mountPath": RUN_DIR, "readOnly": True}]
    assert set(c["resources"]["requests"]) == {"cpu", "memory"}
    assert c["restartPolicy"] == "Always"  # a native sidecar: goes into initContainers
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} and sc["readOnlyRootFilesystem"] is True
    assert "runAsUser" not in sc
    sc = sidecar.reporter_container("i", run_as_user=1000, run_as_group=100)["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"]) == (1000, 100, True)
    assert sidecar.reporter_container("i", run_as_user=0)["securityContext"]["runAsNonRoot"] is False
    with pytest.raises(ValueError):
        sidecar.reporter_container("i", 0)


def test_reporter_user_follows_the_training_container():
    def spec(pod_sc=None, sc=None):
        main = {"name": "mindspore", "image": "x", **({"securityContext": sc} if sc else {})}
        return {"containers": [{"name": "other", "image": "y", "securityContext": {"runAsUser": 5}}, main],
                **({"securityContext": pod_sc} if pod_sc else {})}

    assert sidecar.reporter_user(spec()) == (0, None)  # image's user, MindSpore's images: root
    assert sidecar.reporter_user(spec(pod_sc={"runAsUser": 1000, "runAsGroup": 100})) == (1000, 100)
    assert sidecar.reporter_user(spec(pod_sc={"runAsUser": 1000}, sc={"runAsUser": 2000})) == (2000, None)
    assert sidecar.reporter_user(spec(pod_sc={"runAsNonRoot": True})) == (None, None)


def test_run_volume_mount_and_env():
    assert sidecar.run_volume() == {"name": VOLUME_NAME, "emptyDir": {}}
    assert sidecar.run_mount() == {"name": VOLUME_NAME, "mountPath": RUN_DIR}
    env = {e["name"]: e["value"] for e in sidecar.perf_env()}
    assert env == {"PERF_DUMP_CONFIG": "enable:true,steptime:true,dtpGroup:false", "PERF_DUMP_PATH": PERF_DIR,
                   "MSJOB_PROGRESS_FILE": PROGRESS_FILE}
    assert PERF_DIR.startswith(RUN_DIR + "/") and PROGRESS_FILE.startswith(RUN_DIR + "/")


def test_the_health_builders_import_neither_kubernetes_nor_mindspore():
    import subprocess
    import sys

    code = ("import sys, msjob_operator.reconcile.stall_clock, msjob_operator.builders.reporter, "
            "msjob_operator.builders.rbac; "
            "print(sorted(m for m in ('kubernetes', 'mindspore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
