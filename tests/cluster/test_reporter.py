"""The reporter sidecar against the real local cluster: it annotates its pod with the progress it
reads from step-time files, keeps the annotation current, survives API errors, exits 0 on
SIGTERM, and needs no more than the Role of rbac.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import yaml
from kubernetes import config as kconfig
from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from msjob_operator.health import PROGRESS_ANNOTATION, rbac, status
from msjob_operator.health.callback import write_progress

from ..helpers import wait_for

T0 = int(time.time() * 1000)
HEADER = "UUID:127.0.0.1_8888\nFRAMEWORK:MindSpore\nGLOBAL RANKID:0\n"


def steptimes(first: int, count: int) -> str:
    """STEPTIME lines of steps ``first`` .. ``first+count-1``: 100 ms apart, 80 ms long."""
    return "".join(f"STEPTIME:{T0 + i * 100},{T0 + i * 100 + 80}\n" for i in range(first, first + count))


def fake_pod(name: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "mindspore", "image": "mindspore/mindspore:2.10.0"}],
                 "restartPolicy": "Never", "nodeSelector": {"type": "kwok"}},
    }


class ReporterProcess:
    def __init__(self, kubeconfig, pod: str, namespace: str, tmp_path, interval: float = 0.5):
        self.perf_dir = tmp_path / "perf"
        self.perf_dir.mkdir(exist_ok=True)
        self.progress_file = tmp_path / "progress.json"
        self.log = tmp_path / "reporter.log"
        env = {**os.environ, "POD_NAME": pod, "POD_NAMESPACE": namespace}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "msjob_operator.health.reporter", "--perf-dir", str(self.perf_dir),
                 "--progress-file", str(self.progress_file), "--interval", str(interval),
                 "--kubeconfig", str(kubeconfig), "--log-level", "DEBUG"],
                env=env, stdout=out, stderr=subprocess.STDOUT)

    def append(self, text: str) -> None:
        with open(self.perf_dir / "perf_ms_4242_0.log", "a", encoding="utf-8") as f:
            f.write(text)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture
def reporters():
    started: list[ReporterProcess] = []

    def start(*args, **kwargs) -> ReporterProcess:
        r = ReporterProcess(*args, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()


def progress_of(core: CoreV1Api, namespace: str, name: str) -> dict | None:
    pod = core.read_namespaced_pod(name, namespace)
    return status.read_progress({"metadata": {"annotations": pod.metadata.annotations or {}}})


@pytest.mark.cluster
def test_reporter_annotates_its_pod(cluster, kube, namespace, tmp_path, reporters):
    core = CoreV1Api(kube)
    name = "trainer-0"
    r = reporters(cluster.kubeconfig, name, namespace, tmp_path)
    r.append(HEADER + steptimes(0, 3) + "STEPTIME:1")  # and a line still being written
    # The pod does not exist yet: the reporter logs the error and retries.
    wait_for(lambda: "cannot report progress" in r.output(), timeout=30, message="the reporter's API error",
             describe=r.output)
    assert r.proc.poll() is None, r.output()
    core.create_namespaced_pod(namespace, fake_pod(name))

    p = wait_for(lambda: progress_of(core, namespace, name), timeout=30, message="the progress annotation",
                 describe=r.output)
    assert p["step"] == 3 and p["stepTimeMs"] == 80.0 and p["epoch"] is None and p["loss"] is None, p
    assert p["stepsPerSecond"] == pytest.approx(3 * 1000 / 280, rel=1e-3)
    assert p["heartbeat"] == status.format_time(datetime.fromtimestamp((T0 + 280) / 1000, timezone.utc))
    raw = json.loads(core.read_namespaced_pod(name, namespace).metadata.annotations[PROGRESS_ANNOTATION])
    assert set(raw) == {"step", "epoch", "loss", "stepTimeMs", "stepsPerSecond", "heartbeat", "reportedAt"}
    first_report = raw["reportedAt"]

    # Nothing new: two more report ticks pass without a patch (reportedAt stays).
    quiet = r.output().count("nothing new to report")
    wait_for(lambda: r.output().count("nothing new to report") >= quiet + 2, timeout=30,
             message="two report ticks with nothing new", describe=r.output)
    raw = json.loads(core.read_namespaced_pod(name, namespace).metadata.annotations[PROGRESS_ANNOTATION])
    assert raw["reportedAt"] == first_report

    # More steps (the partial line completed) and the callback's file: the annotation follows.
    r.append("0,2\n" + steptimes(4, 2))
    write_progress(str(r.progress_file), {"epoch": 2, "step": 6, "loss": 0.125, "time": (T0 + 590) / 1000})
    p = wait_for(lambda: (q := progress_of(core, namespace, name)) and q["step"] == 6 and q["loss"] is not None and q,
                 timeout=30, message="the updated annotation", describe=r.output)
    assert (p["epoch"], p["loss"]) == (2, 0.125), p
    assert p["heartbeat"] == status.format_time(datetime.fromtimestamp((T0 + 590) / 1000, timezone.utc))

    assert r.stop() == 0, r.output()
    assert "SIGTERM" in r.output()


def token_kubeconfig(admin_kubeconfig, token: str, path) -> None:
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "reporter",
        "clusters": [cluster], "users": [{"name": "reporter", "user": {"token": token}}],
        "contexts": [{"name": "reporter", "context": {"cluster": cluster["name"], "user": "reporter"}}],
    }))


@pytest.mark.cluster
def test_reporter_needs_only_its_role(cluster, kube, namespace, tmp_path, reporters):
    core, rbac_api = CoreV1Api(kube), RbacAuthorizationV1Api(kube)
    job = {"metadata": {"name": "demo", "namespace": namespace, "uid": "00000000-0000-0000-0000-000000000000"}}
    own, other = "demo-worker-0", "demo-worker-1"
    for n in (own, other):
        core.create_namespaced_pod(namespace, fake_pod(n))
    objects = [rbac.service_account(job), rbac.role(job, [own]), rbac.role_binding(job)]
    for obj in objects:
        obj["metadata"].pop("ownerReferences")  # no MSJob here: the garbage collector would delete them
    core.create_namespaced_service_account(namespace, objects[0])
    rbac_api.create_namespaced_role(namespace, objects[1])
    rbac_api.create_namespaced_role_binding(namespace, objects[2])
    token = core.create_namespaced_service_account_token(
        rbac.reporter_name("demo"), namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    kubeconfig = tmp_path / "reporter.kubeconfig"
    token_kubeconfig(cluster.kubeconfig, token, kubeconfig)

    # The ServiceAccount may read and patch its own pod, nothing else.
    api = kconfig.new_client_from_config(config_file=str(kubeconfig))
    try:
        limited = CoreV1Api(api)
        wait_for(lambda: limited.read_namespaced_pod(own, namespace), timeout=30,  # RBAC's cache may lag
                 message="the reporter's Role in effect")
        for forbidden in (lambda: limited.patch_namespaced_pod(other, namespace, {"metadata": {"labels": {"x": "y"}}}),
                          lambda: limited.list_namespaced_pod(namespace),
                          lambda: limited.delete_namespaced_pod(own, namespace)):
            with pytest.raises(ApiException) as e:
                forbidden()
            assert e.value.status == 403
    finally:
        api.close()

    r = reporters(kubeconfig, own, namespace, tmp_path)
    r.append(HEADER + steptimes(0, 2))
    p = wait_for(lambda: progress_of(core, namespace, own), timeout=30, message="the annotation, with the Role only",
                 describe=r.output)
    assert p["step"] == 2
    assert r.stop() == 0, r.output()
    assert "cannot report" not in r.output(), r.output()


@pytest.mark.cluster
def test_worker_pod_with_the_reporter_is_valid(kube, namespace):
    """Worker 0's pod as the operator builds it (native sidecar, run volume, perf env) passes the
    API server's validation (server-side dry run)."""
    from msjob_operator.health import sidecar

    pod = fake_pod("demo-worker-0")
    spec = pod["spec"]
    spec["securityContext"] = {"runAsUser": 1000, "runAsGroup": 1000}
    main = spec["containers"][0]
    main["env"] = sidecar.perf_env()
    main["volumeMounts"] = [sidecar.run_mount()]
    spec["volumes"] = [sidecar.run_volume()]
    uid, gid = sidecar.reporter_user(spec)
    spec["initContainers"] = [sidecar.reporter_container("msjob-operator:test", 10, run_as_user=uid, run_as_group=gid)]
    spec["serviceAccountName"] = rbac.reporter_name("demo")
    created = CoreV1Api(kube).create_namespaced_pod(namespace, pod, dry_run="All")
    reporter = created.spec.init_containers[0]
    assert reporter.restart_policy == "Always" and reporter.security_context.run_as_user == 1000
    assert reporter.env[0].value_from.field_ref.field_path == "metadata.name"
