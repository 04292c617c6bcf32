"""Fixtures of the end-to-end tests: a process node (pods as real local processes) and the operator.

Every test here is marked ``e2e``. Under ``CI=true`` a missing prerequisite (MindSpore not
installed, no root for network namespaces) fails the tests; elsewhere it skips them.

Figures (seconds to form the cluster, kill → replacements running, kill → success) are printed
at the end of the run and written to ``<pytest basetemp>/e2e-figures.json``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from msjob_localcluster import netns
from msjob_localcluster.operator_process import OperatorProcess
from msjob_localcluster.processnode import ProcessNode, ProcessNodeUnavailable

FIGURES: dict[str, dict] = {}
_figures_file: list[Path] = []
_E2E_DIR = Path(__file__).parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str):
    """Fail under CI (the end-to-end tests must run there), skip elsewhere."""
    if in_ci():
        pytest.fail(f"end-to-end tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _E2E_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("end-to-end figures (seconds)")
    for test, values in FIGURES.items():
        terminalreporter.write_line(f"{test}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    if _figures_file:
        terminalreporter.write_line(f"written to {_figures_file[0]}")


@pytest.fixture(scope="session")
def figures(tmp_path_factory):
    """Record a figure: ``figures("test", key=value, ...)``; printed and saved as JSON."""
    path = tmp_path_factory.getbasetemp() / "e2e-figures.json"
    _figures_file[:] = [path]

    def record(test: str, **values) -> None:
        FIGURES.setdefault(test, {}).update({k: round(v, 1) if isinstance(v, float) else v for k, v in values.items()})
        path.write_text(json.dumps(FIGURES, indent=1))
        print(f"[e2e figures] {test}: {values}")

    return record


@pytest.fixture(scope="session")
def mindspore_installed() -> None:
    if importlib.util.find_spec("mindspore") is None:
        unavailable("MindSpore is not installed in this Python (pip install -e '.[e2e]')")


@pytest.fixture(scope="session")
def process_node(cluster, tmp_path_factory):
    """One process node for the session; at the end, no network namespace of it may be left."""
    node = ProcessNode(cluster.kubeconfig, name="process-node-0", root_dir=tmp_path_factory.mktemp("process-node"))
    try:
        node.start()
    except ProcessNodeUnavailable as exc:
        unavailable(str(exc))
    yield node
    left_by_agent = node.stop()
    still_there = netns.list_namespaces(node.prefix + "-")
    assert not still_there, f"network namespaces left behind: {still_there}"
    assert not left_by_agent, f"the process node agent did not remove its namespaces {left_by_agent}\n{node.tail()}"


def _running_operator_pid(kubeconfig: Path) -> int | None:
    """An operator process already watching this cluster (e.g. the integration tests' own)."""
    wanted = ["run", "--kubeconfig", str(kubeconfig)]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        launched = any(argv[i:i + 2] == ["-m", "msjob_operator"] for i in range(len(argv))) or \
            any(os.path.basename(arg) == "msjob-operator" for arg in argv[:2])
        if launched and any(argv[i:i + len(wanted)] == wanted for i in range(len(argv))):
            return int(entry)
    return None


@pytest.fixture(scope="package")
def e2e_operator(cluster, tmp_path_factory):
    """The operator as a subprocess, for this package only, so that it never runs beside another
    test package's operator (two operators would both reconcile every job). If one is already
    running for this cluster, that one is used."""
    if _running_operator_pid(cluster.kubeconfig) is not None:
        yield None
        return
    proc = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("e2e-operator")).start()
    yield proc
    proc.stop()


@pytest.fixture
def jobs(kube, namespace, e2e_operator, process_node, mindspore_installed):
    from .support import E2EJobs

    if e2e_operator is not None and e2e_operator.proc.poll() is not None:
        e2e_operator.start()  # a test killed it
    return E2EJobs(kube, namespace, process_node, e2e_operator)
