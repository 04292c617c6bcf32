import pytest

from msjob_localcluster.operator_process import OperatorProcess


@pytest.fixture(scope="session")
def operator(cluster, tmp_path_factory):
    """One operator process for the session, watching every namespace."""
    proc = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator")).start()
    yield proc
    proc.stop()


@pytest.fixture
def running_operator(operator):
    """The session operator, started again if a test killed it."""
    if operator.proc is None or operator.proc.poll() is not None:
        operator.start()
    return operator


@pytest.fixture
def jobs(kube, namespace, running_operator):
    from .msjobs import MSJobs

    return MSJobs(kube, namespace)


@pytest.fixture
def client(cluster, namespace, running_operator):
    """The SDK's client, as a user's tooling would use it."""
    from msjob_operator.sdk import MSJobClient

    c = MSJobClient(kubeconfig=str(cluster.kubeconfig), namespace=namespace)
    yield c
    c.close()
