"""Helpers for the chart tests: run real helm, and act as the chart's ServiceAccount."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "msjob-operator"


def run(helm: Path, *args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(helm), *args]
    if kubeconfig is not None:
        cmd += ["--kubeconfig", str(kubeconfig)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def template(helm: Path, *values: str, namespace: str = "msjob-system") -> list[dict]:
    """The chart's objects with ``--set`` values (e.g. ``"watchNamespaces={a,b}"``)."""
    args = ["template", "t", str(CHART), "--namespace", namespace]
    for value in values:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(run(helm, *args).stdout) if doc]


def rules(objects: list[dict]) -> list[dict]:
    return [rule for obj in objects if obj["kind"] in ("ClusterRole", "Role") for rule in obj["rules"]]


def token_kubeconfig(cluster_kubeconfig: Path, token: str, target: Path) -> Path:
    """A kubeconfig for the same API server that authenticates with ``token`` only."""
    admin = yaml.safe_load(cluster_kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "chart-sa", "user": {"token": token}}],
        "contexts": [{"name": "chart-sa", "context": {"cluster": cluster["name"], "user": "chart-sa"}}],
        "current-context": "chart-sa",
    }
    target.write_text(yaml.safe_dump(config))
    target.chmod(0o600)
    return target


def service_account_token(core, namespace: str, name: str, seconds: int = 3600) -> str:
    """A short-lived token of the ServiceAccount (TokenRequest API), as the kubelet would mount."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": seconds}}
    return core.create_namespaced_service_account_token(name, namespace, request).status.token
