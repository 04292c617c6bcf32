"""The reporter sidecar (``python -m msjob_runtime.reporter``) against the real local cluster: it
annotates its pod with the progress it reads from step-time files, keeps the annotation current,
survives API errors, exits 0 on SIGTERM, and needs no more than the Role of rbac.py.

It runs on the standard library alone: one test runs it in a fresh virtual environment without
site-packages, with only a copy of msjob_runtime on its path, authenticated as a pod is (a
ServiceAccount token from the TokenRequest API, the cluster's CA from ``kube-root-ca.crt``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api

import msjob_runtime
from msjob_operator.builders import rbac
from msjob_operator.builders import reporter as sidecar
from msjob_operator.builders import runtime as runtime_builder
from msjob_runtime import kubeapi
from msjob_runtime.callback import write_progress
from msjob_runtime.progress import PROGRESS_ANNOTATION, format_time, read_progress

from ..helpers import wait_for

T0 = int(time.time() * 1000)
HEADER = "UUID:127.0.0.1_8888\nFRAMEWORK:MindSpore\nGLOBAL RANKID:0\n"
RUNTIME_SOURCE = Path(msjob_runtime.__file__).parent


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
    """The reporter as the sidecar runs it; ``python`` and ``env`` default to this test's own."""

    def __init__(self, credentials: list[str], pod: str, namespace: str, tmp_path: Path, interval: float = 0.5,
                 python: str = sys.executable, env: dict | None = None, python_flags: tuple = ()):
        self.perf_dir = tmp_path / "perf"
        self.perf_dir.mkdir(exist_ok=True)
        self.progress_file = tmp_path / "progress.json"
        self.log = tmp_path / "reporter.log"
        env = {**(os.environ if env is None else env), "POD_NAME": pod, "POD_NAMESPACE": namespace}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [python, *python_flags, "-m", sidecar.REPORTER_MODULE, "--perf-dir", str(self.perf_dir),
                 "--progress-file", str(self.progress_file), "--interval", str(interval), *credentials,
                 "--log-level", "DEBUG"],
                env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)

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
    return read_progress({"metadata": {"annotations": pod.metadata.annotations or {}}})


@pytest.mark.cluster
def test_reporter_annotates_its_pod(cluster, kube, namespace, tmp_path, reporters):
    """With the admin kubeconfig (a client-certificate user, read by msjob_runtime.kubeconfig)."""
    core = CoreV1Api(kube)
    name = "trainer-0"
    r = reporters(["--kubeconfig", str(cluster.kubeconfig)], name, namespace, tmp_path)
    r.append(HEADER + steptimes(0, 3) + "STEPTIME:1")  # and a line still being written
    # The pod does not exist yet: the reporter logs the error and retries.
    wait_for(lambda: "cannot report progress" in r.output(), timeout=30, message="the reporter's API error",
             describe=r.output)
    assert f'HTTP 404 NotFound: pods "{name}" not found' in r.output()  # the API server's own message
    assert r.proc.poll() is None, r.output()
    core.create_namespaced_pod(namespace, fake_pod(name))

    p = wait_for(lambda: progress_of(core, namespace, name), timeout=30, message="the progress annotation",
                 describe=r.output)
    assert p["step"] == 3 and p["stepTimeMs"] == 80.0 and p["epoch"] is None and p["loss"] is None, p
    assert p["stepsPerSecond"] == pytest.approx(3 * 1000 / 280, rel=1e-3)
    assert p["heartbeat"] == format_time(datetime.fromtimestamp((T0 + 280) / 1000, timezone.utc))
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
    assert p["heartbeat"] == format_time(datetime.fromtimestamp((T0 + 590) / 1000, timezone.utc))

    assert r.stop() == 0, r.output()
    assert "SIGTERM" in r.output()


def bare_python(tmp_path: Path) -> tuple[str, Path]:
    """A fresh venv without pip or site-packages, and a copy of msjob_runtime made by its own
    install.py run as a script there; returns (the venv's python, the directory to put on PYTHONPATH)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    runtime = tmp_path / "runtime"
    done = subprocess.run([python, "-s", str(RUNTIME_SOURCE / "install.py"), str(runtime)],
                          env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return python, runtime


ISOLATION_CHECK = """
import importlib, os, pkgutil, sys, sysconfig
import msjob_runtime
names = sorted(m.name for m in pkgutil.iter_modules(msjob_runtime.__path__))
for name in names:
    importlib.import_module("msjob_runtime." + name)
stdlib = [os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")]
ours = os.path.realpath(os.path.dirname(msjob_runtime.__file__))
foreign = sorted(n for n, m in list(sys.modules.items())
                 if getattr(m, "__file__", None)
                 and not any(os.path.realpath(m.__file__).startswith(p + os.sep) for p in stdlib + [ours]))
missing = []
for other in ("msjob_operator", "kubernetes", "yaml", "mindspore"):
    try:
        importlib.import_module(other)
    except ImportError:
        missing.append(other)
print(names)
print(foreign)
print(missing)
print(ours)
"""


@pytest.mark.cluster
def test_reporter_on_the_standard_library_alone_with_a_pod_token(cluster, kube, namespace, tmp_path, reporters):
    core, rbac_api = CoreV1Api(kube), RbacAuthorizationV1Api(kube)
    python, runtime = bare_python(tmp_path)
    bare_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(runtime)}  # not the operator's directory

    # Every module imports from the copy with nothing but the standard library; the operator does not.
    check = subprocess.run([python, "-s", "-c", ISOLATION_CHECK], env=bare_env, capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    names, foreign, missing, location = check.stdout.splitlines()
    assert names == repr(sorted(p.stem for p in RUNTIME_SOURCE.glob("*.py") if p.stem != "__init__")), names
    assert foreign == "[]", foreign
    assert missing == repr(["msjob_operator", "kubernetes", "yaml", "mindspore"]), missing
    assert location == str((runtime / "msjob_runtime").resolve())

    # The operator's reporter RBAC for pod "demo-worker-0" of job "demo", as rbac.py builds it.
    job = {"metadata": {"name": "demo", "namespace": namespace, "uid": "00000000-0000-0000-0000-000000000000"}}
    own, other = "demo-worker-0", "demo-worker-1"
    objects = [rbac.service_account(job), rbac.role(job, [own]), rbac.role_binding(job)]
    for obj in objects:
        obj["metadata"].pop("ownerReferences")  # no MSJob here: the garbage collector would delete them
    core.create_namespaced_service_account(namespace, objects[0])
    rbac_api.create_namespaced_role(namespace, objects[1])
    rbac_api.create_namespaced_role_binding(namespace, objects[2])
    pods = {}
    for n in (own, other):
        body = fake_pod(n)
        body["spec"]["serviceAccountName"] = rbac.reporter_name("demo")  # as the operator sets it on worker 0
        pods[n] = core.create_namespaced_pod(namespace, body)

    # What the kubelet gives the pod: a token bound to it, and the cluster's CA.
    def pod_token() -> str:
        request = {"spec": {"expirationSeconds": 3600, "boundObjectRef": {
            "apiVersion": "v1", "kind": "Pod", "name": own, "uid": pods[own].metadata.uid}}}
        return core.create_namespaced_service_account_token(rbac.reporter_name("demo"), namespace, request).status.token

    ca = wait_for(lambda: core.read_namespaced_config_map("kube-root-ca.crt", namespace).data["ca.crt"], timeout=60,
                  message="the namespace's kube-root-ca.crt")
    (tmp_path / "ca.crt").write_text(ca)
    token_file = tmp_path / "token"
    token_file.write_text(pod_token())
    server = kubeapi.load_config(str(cluster.kubeconfig)).server

    # The token may read and patch its own pod, nothing else (checked with the runtime's client).
    limited = kubeapi.Client(kubeapi.Config(server, token_file=str(token_file), ca_file=str(tmp_path / "ca.crt")))
    base = f"/api/v1/namespaces/{namespace}/pods"
    wait_for(lambda: limited.get(f"{base}/{own}"), timeout=30, message="the reporter's Role in effect")  # RBAC lags
    for method, path, body in (("PATCH", f"{base}/{other}", {"metadata": {"labels": {"x": "y"}}}),
                               ("GET", base, None), ("DELETE", f"{base}/{own}", None)):
        with pytest.raises(kubeapi.ApiError) as e:
            limited.request(method, path, body, content_type=kubeapi.MERGE_PATCH)
        assert e.value.status == 403 and e.value.reason == "Forbidden" and "demo-reporter" in e.value.message
    limited.close()

    # The reporter in the bare venv, started before its token is valid: it retries, then reads the new file.
    token_file.write_text("not-a-token")
    r = reporters(["--server", server, "--token-file", str(token_file), "--ca-file", str(tmp_path / "ca.crt")],
                  own, namespace, tmp_path, python=python, env=bare_env, python_flags=("-s",))
    r.append(HEADER + steptimes(0, 2))
    wait_for(lambda: "HTTP 401 Unauthorized" in r.output(), timeout=30, message="the bad token refused",
             describe=r.output)
    fresh = tmp_path / "token.new"
    fresh.write_text(pod_token())
    os.replace(fresh, token_file)  # as the kubelet rotates it: a new file in its place
    p = wait_for(lambda: progress_of(core, namespace, own), timeout=30, message="the annotation, with the Role only",
                 describe=r.output)
    assert p["step"] == 2 and p["stepTimeMs"] == 80.0 and p["stepsPerSecond"] == pytest.approx(2000 / 180, rel=1e-3)
    assert p["heartbeat"] == format_time(datetime.fromtimestamp((T0 + 180) / 1000, timezone.utc))
    assert "reporting progress again" in r.output()
    assert progress_of(core, namespace, other) is None

    r.append(steptimes(2, 3))
    p = wait_for(lambda: (q := progress_of(core, namespace, own)) and q["step"] == 5 and q, timeout=30,
                 message="the next steps", describe=r.output)
    assert p["heartbeat"] == format_time(datetime.fromtimestamp((T0 + 480) / 1000, timezone.utc))
    assert r.stop() == 0, r.output()
    assert "Traceback" not in r.output(), r.output()


@pytest.mark.cluster
def test_worker_pod_with_the_reporter_is_valid(kube, namespace):
    """Worker 0's pod as the operator builds it (native sidecar, run volume, perf env), and with the
    runtime's init container (builders/runtime.py), passes the API server's validation (server-side dry run)."""
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
    assert reporter.command[:3] == ["python", "-m", "msjob_runtime.reporter"]

    pod["spec"] = runtime_builder.with_runtime(spec, "msjob-operator:test")
    created = CoreV1Api(kube).create_namespaced_pod(namespace, pod, dry_run="All")
    assert [c.name for c in created.spec.init_containers] == ["msjob-runtime", "msjob-reporter"]
    env = {e.name: e.value for e in created.spec.containers[0].env}
    assert env["PYTHONPATH"] == "/opt/msjob/runtime"
