"""The operator counts its own API requests by verb and resource, in the API server's terms."""

import os

import pytest

from msjob_localcluster.bench.common import api_requests
from msjob_localcluster.bench.footprint import process_usage
from msjob_operator.controller import metrics
from msjob_operator.controller.kube import request_kind


@pytest.mark.parametrize("method, path, watch, expected", [
    ("POST", "/api/v1/namespaces/ns/pods", False, ("create", "pods")),
    ("GET", "/api/v1/namespaces/ns/pods/p", False, ("get", "pods")),
    ("GET", "/api/v1/pods", False, ("list", "pods")),
    ("GET", "/api/v1/pods", True, ("watch", "pods")),
    ("DELETE", "/api/v1/namespaces/ns/pods/p", False, ("delete", "pods")),
    ("PATCH", "/apis/mindspore.gitee.com/v1/namespaces/ns/msjobs/j/status", False, ("patch", "msjobs/status")),
    ("PUT", "/api/v1/namespaces/ns/configmaps/c", False, ("update", "configmaps")),
    ("GET", "/apis/scheduling.volcano.sh/v1beta1", False, ("get", "discovery")),
    ("GET", "/apis/scheduling.volcano.sh/v1beta1/podgroups", True, ("watch", "podgroups")),
    ("POST", "/api/v1/namespaces", False, ("create", "namespaces")),
    ("DELETE", "/api/v1/namespaces/ns", False, ("delete", "namespaces")),
    ("DELETE", "/api/v1/namespaces/ns/pods", False, ("deletecollection", "pods")),
])
def test_request_kind(method, path, watch, expected):
    assert request_kind(method, path, watch) == expected


def test_counts_read_back_from_the_metrics_page():
    from prometheus_client import generate_latest

    counter = metrics.API_REQUESTS.labels("create", "pods")
    before = api_requests(generate_latest(metrics.REGISTRY).decode())[("create", "pods")]
    counter.inc(3)
    after = api_requests(generate_latest(metrics.REGISTRY).decode())
    assert after[("create", "pods")] == before + 3


def test_process_usage_of_this_process():
    usage = process_usage(os.getpid())
    assert usage["rss_mib"] > 1 and usage["peak_rss_mib"] >= usage["rss_mib"]
    sum(i * i for i in range(200_000))  # some CPU, so the figure has something to count
    assert process_usage(os.getpid())["cpu_s"] > 0


def test_proxy_from_the_environment_is_resolved_once_per_client(monkeypatch):
    from msjob_operator.controller.kube import env_proxy

    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "127.0.0.1,.cluster.local")
    assert env_proxy("https://api.example.invalid:6443") == "http://proxy.invalid:3128"
    assert env_proxy("https://127.0.0.1:6443") is None
    assert env_proxy("https://kubernetes.default.svc.cluster.local") is None
    monkeypatch.delenv("https_proxy")
    assert env_proxy("https://api.example.invalid:6443") is None


def test_the_client_does_not_consult_the_environment_per_request(tmp_path):
    import asyncio

    from msjob_operator.controller.kube import Kube

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
""")

    async def check():
        kube = await Kube.connect(str(kubeconfig))
        try:
            return kube.api.rest_client.pool_manager.trust_env
        finally:
            await kube.close()

    assert asyncio.run(check()) is False
