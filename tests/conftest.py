"""Fixtures shared by all tests: one real local cluster per session.

Set MSJOB_TEST_KUBECONFIG to run against a cluster that is already up (e.g.
from `msjob-local up --volcano`) instead of starting one. Missing
binaries are built (minutes, once per machine) or fail the tests: never skipped.

Tests of the other gang/queue back-ends ask for ``gang_cluster``: a second cluster
with Kueue's manager and Kubernetes' Workload API, started (and Kueue built) only
when a collected test needs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path

import pytest

from msjob_localcluster import binaries
from msjob_localcluster.cluster import COMPONENTS, LocalCluster

from .helpers import admin_client

_started: list[LocalCluster] = []


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: needs the local Kubernetes cluster")


def pytest_collection_modifyitems(config, items):
    """Build missing binaries (about 20 min on a cold 2-core machine, Kueue 7-15 more) before the first
    test starts, so no per-test timeout counts the build; shown live, not captured."""
    def used(fixture: str) -> bool:
        return any(fixture in i.fixturenames for i in items)
    needed = []
    if not os.environ.get("MSJOB_TEST_KUBECONFIG") and (used("cluster") or used("gang_cluster")):
        needed = [c for c in COMPONENTS if c != "vc-scheduler" or used("cluster")] + ["kubectl"]
        needed += ["kueue"] if used("gang_cluster") else []
    if used("helm"):
        needed.append("helm")
    if not needed:
        return
    with config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        try:
            binaries.ensure(*needed)
        except binaries.BinaryError as e:  # fail the run (never skip): the cluster tests cannot run
            raise pytest.UsageError(f"the local cluster's binaries are missing: {e}") from e


def pytest_terminal_summary(terminalreporter):
    for c in _started:
        terminalreporter.write_line(f"local cluster {c.name} (volcano={c.volcano}, kueue={c.kueue}, "
                                    f"workload_api={c.workload_api}) started in {c.start_seconds:.1f} s")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> LocalCluster:
    external = os.environ.get("MSJOB_TEST_KUBECONFIG")
    if external:
        c = LocalCluster.connect(Path(external))  # not ours to stop...
        yield c
        if c.external:
            c.stop()  # ...but a bare kubeconfig gets a temp dir (kubectl's cache): stop() only drops that
        return
    c = LocalCluster(tmp_path_factory.mktemp("cluster"), name="pytest", nodes=4, volcano=True)
    c.start()
    _started.append(c)
    yield c
    c.stop()


@pytest.fixture(scope="session")
def gang_cluster(tmp_path_factory) -> LocalCluster:
    """A cluster with Kueue's manager (kueue=True) and the Workload API (workload_api=True).

    With MSJOB_TEST_KUBECONFIG, that cluster must have been started with both
    (`local up --kueue --workload-api`): the tests fail otherwise, they never skip.
    """
    external = os.environ.get("MSJOB_TEST_KUBECONFIG")
    if external:
        c = LocalCluster.connect(Path(external))
        if c.external or not (c.kueue and c.workload_api):
            if c.external:
                c.stop()  # only drops its temp dir
            pytest.fail(f"{external} is not a cluster started with --kueue --workload-api")
        yield c
        return
    c = LocalCluster(tmp_path_factory.mktemp("gang-cluster"), name="pytest-gang", nodes=1, kueue=True,
                     workload_api=True)
    c.start()
    _started.append(c)
    yield c
    c.stop()


@pytest.fixture
def gang_namespace(gang_cluster, request) -> str:
    """Like ``namespace``, on ``gang_cluster``."""
    name = _namespace_name(request)
    gang_cluster.kubectl("create", "namespace", name)
    gang_cluster.kubectl("label", "namespace", name, "msjob.test/namespace=true")
    yield name
    gang_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="session")
def helm() -> Path:
    """Real helm, built from its Go module like the cluster's binaries (before the first test)."""
    return binaries.ensure("helm")["helm"]


@pytest.fixture(scope="session")
def kube(cluster):
    """A sync ``kubernetes.client.ApiClient`` with the cluster's admin credentials."""
    yield from admin_client(cluster)


@pytest.fixture(scope="session")
def core(kube):
    from kubernetes.client import CoreV1Api

    return CoreV1Api(kube)


@pytest.fixture(scope="session")
def custom(kube):
    from kubernetes.client import CustomObjectsApi

    return CustomObjectsApi(kube)


@pytest.fixture
def namespace(core, request) -> str:
    """A fresh namespace named after the test; deleted afterwards without waiting."""
    from kubernetes.client.exceptions import ApiException

    name = _namespace_name(request)
    core.create_namespace({"metadata": {"name": name, "labels": {"msjob.test/namespace": "true"}}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as e:
        if e.status != 404:
            raise


def _namespace_name(request) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    return f"{stem}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def pool(cluster):
    """Fake nodes of the test's own, tainted so that no other test's pods land on them.

    ``pool(n)`` adds n nodes and returns their names; ``pool.name`` is the pool label's value
    (nodeSelector ``{POOL_LABEL: pool.name}`` and a toleration for the taint pin pods to it).
    The nodes are deleted after the test.
    """
    with _pool_on(cluster) as add:
        yield add


@pytest.fixture
def gang_pool(gang_cluster):
    """Like ``pool``, on ``gang_cluster``."""
    with _pool_on(gang_cluster) as add:
        yield add


@contextlib.contextmanager
def _pool_on(cluster: LocalCluster):
    from msjob_localcluster.cluster import POOL_LABEL

    name = f"pool{uuid.uuid4().hex[:5]}"
    created: list[str] = []

    def add(count: int) -> list[str]:
        taint = {"key": POOL_LABEL, "value": name, "effect": "NoSchedule"}
        nodes = cluster.add_nodes(count, prefix=name, taints=[taint])
        created.extend(nodes)
        return nodes

    add.name = name
    yield add
    for node in created:
        cluster.delete_node(node)
