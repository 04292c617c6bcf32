"""The operator counts its own API requests by verb and resource, in the API server's terms."""

import os

import pytest

from msjob_operator.bench.footprint import api_requests, process_usage
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
