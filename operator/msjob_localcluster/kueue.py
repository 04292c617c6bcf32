"""What Kueue's controller-manager needs besides its binary: CRDs, a configuration, webhooks.

The msjob operator is Kueue's job framework for MSJobs (it writes the Workloads itself),
so only Kueue's own API is wired: the webhooks for ``kueue.x-k8s.io`` objects, registered
by URL on 127.0.0.1 with a serving cert of the cluster's CA. The webhooks of Kueue's job
integrations (pods, Jobs, Deployments, ...) are left out, so that no pod depends on Kueue.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import binaries
from .certs import make_serving_cert

if TYPE_CHECKING:
    from .cluster import LocalCluster

GROUP = "kueue.x-k8s.io"
CONFIG_API_VERSION = "config.kueue.x-k8s.io/v1beta2"
# Ports of the manager, all on 127.0.0.1.
PORTS = ("kueue-webhook", "kueue-metrics", "kueue-health")
# CRDs whose versions Kueue's conversion webhook converts (as its own kustomize patches set).
CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
WEBHOOK_CONFIGURATIONS = {
    "MutatingWebhookConfiguration": "kueue-mutating-webhook-configuration",
    "ValidatingWebhookConfiguration": "kueue-validating-webhook-configuration",
}
SERVING_CERT = "kueue-webhook"  # in the cluster's pki/
FINALIZER = f"{GROUP}/resource-in-use"  # what the ResourceFlavor webhook adds: proves the webhooks answer


def module_dir() -> Path:
    """The Kueue Go module's source: CRDs and webhook manifests ship there, not in any package."""
    override = os.environ.get("MSJOB_KUEUE_SRC")  # e.g. a checkout, on machines without Go
    if override:
        return Path(override)
    go = shutil.which("go")
    if go is None:
        raise binaries.BinaryError(
            "Kueue's CRDs come from its Go module: install Go, or set MSJOB_KUEUE_SRC to a Kueue source tree"
        )
    with tempfile.TemporaryDirectory() as cwd:  # outside any go.mod
        return binaries.module_dir(go, Path(cwd), f"sigs.k8s.io/kueue@v{binaries.KUEUE_VERSION}")


def _client_config(port: int, path: str, ca_pem: bytes) -> dict[str, str]:
    return {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(ca_pem).decode()}


def crds(webhook_port: int, ca_pem: bytes) -> list[dict[str, Any]]:
    """All of Kueue's CRDs (its manager waits for every informer); the multi-version ones
    convert through the manager's /convert."""
    out = []
    for path in sorted((module_dir() / "config" / "components" / "crd" / "bases").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["plural"] in CONVERTED:
            crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                "conversionReviewVersions": ["v1"], "clientConfig": _client_config(webhook_port, "/convert", ca_pem),
            }}
        out.append(crd)
    return out


def webhook_configurations(webhook_port: int, ca_pem: bytes) -> list[dict[str, Any]]:
    """Kueue's webhook configurations, reduced to the webhooks for its own group."""
    manifests = module_dir() / "config" / "components" / "webhook" / "manifests.yaml"
    out = []
    for doc in yaml.safe_load_all(manifests.read_text()):
        if not doc:
            continue
        hooks = [h for h in doc["webhooks"] if all(g == GROUP for r in h["rules"] for g in r["apiGroups"])]
        for hook in hooks:
            hook["clientConfig"] = _client_config(webhook_port, hook["clientConfig"]["service"]["path"], ca_pem)
        out.append({"apiVersion": doc["apiVersion"], "kind": doc["kind"],
                    "metadata": {"name": WEBHOOK_CONFIGURATIONS[doc["kind"]]}, "webhooks": hooks})
    return out


def configuration(ports: dict[str, int], cert_dir: Path) -> dict[str, Any]:
    return {
        "apiVersion": CONFIG_API_VERSION, "kind": "Configuration",
        "namespace": "kueue-system",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{ports['kueue-health']}"},
        "metrics": {"bindAddress": f"127.0.0.1:{ports['kueue-metrics']}"},
        "webhook": {"host": "127.0.0.1", "port": ports["kueue-webhook"], "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        # Its own certs would name a Service; the API server calls this one by URL.
        "internalCertManagement": {"enable": False},
        "clientConnection": {"qps": 50, "burst": 100},
        # The list may not be empty (empty means batch/job): batch/job is the cheapest to keep.
        # Its webhook is not registered, so Jobs are Kueue's only if labelled with a queue name.
        "integrations": {"frameworks": ["batch/job"]},
        # The visibility API server would listen on every interface, on a fixed port.
        "featureGates": {"VisibilityOnDemand": False},
    }


def prepare(workdir: Path, pki: Path, ports: dict[str, int]) -> Path:
    """Write the manager's serving cert and configuration into ``workdir``; return the config file."""
    make_serving_cert(pki, SERVING_CERT)
    cert_dir = workdir / "certs"  # tls.crt/tls.key: the webhook server's (and, by our build, the metrics')
    cert_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pki / f"{SERVING_CERT}.crt", cert_dir / "tls.crt")
    shutil.copyfile(pki / f"{SERVING_CERT}.key", cert_dir / "tls.key")
    (cert_dir / "tls.key").chmod(0o600)
    config = workdir / "kueue-config.yaml"
    config.write_text(yaml.safe_dump(configuration(ports, cert_dir)))
    return config


def command(binary: str, config: Path, kubeconfig: str) -> list[str]:
    return [binary, "--config", str(config), "--kubeconfig", kubeconfig]


def register_webhooks(cluster: LocalCluster) -> None:
    """Register the webhooks once the manager serves them (they fail closed, so not before)
    and wait until the API server calls them."""
    cluster._wait("kueue", lambda: cluster._http_ok(f"http://127.0.0.1:{cluster.ports['kueue-health']}/readyz"), 120)
    hooks = webhook_configurations(cluster.ports["kueue-webhook"], (cluster.root / "pki" / "ca.crt").read_bytes())
    cluster.kubectl("apply", "--server-side", "--field-manager", "msjob-localcluster", "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": hooks}))
    # The API server loads webhook configurations asynchronously: a dry-run ResourceFlavor
    # comes back with FINALIZER once the mutating webhook is called.
    probe = {"apiVersion": f"{GROUP}/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "localcluster-probe"}}

    def mutated() -> bool:
        out = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(probe)).stdout
        return FINALIZER in json.loads(out)["metadata"].get("finalizers", [])
    cluster._wait("kueue", mutated, 60)
