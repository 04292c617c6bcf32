import pytest

from msjob_localcluster.operator_process import OperatorProcess

from ..helpers import admin_client


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


# -- the operator of gang_cluster (Kueue and the Workload API) --------------------------------------

GANG_VALUES = ("kueue.enabled=true", "gangScheduling.scheduler=workload-api")
GANG_RELEASE_NAMESPACE = "msjob-system"


@pytest.fixture(scope="session")
def gang_kube(gang_cluster):
    yield from admin_client(gang_cluster)


@pytest.fixture(scope="session")
def gang_operator(gang_cluster, gang_kube, helm, tmp_path_factory):
    """The operator for ``gang_cluster``, run as the chart would run it with ``GANG_VALUES`` (Kueue on, the
    Workload API as gang scheduler): the Deployment's flags, and the chart's ServiceAccount, ClusterRole and
    binding for those values applied to the cluster. Every Kueue and Workload API test therefore also proves
    that RBAC sufficient (``running_gang_operator`` fails a test whose operator was refused anything)."""
    import json

    from kubernetes.client import CoreV1Api

    from . import helmchart

    objects = helmchart.template(helm, *GANG_VALUES, namespace=GANG_RELEASE_NAMESPACE)
    rbac = [o for o in objects if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")]
    assert {o["kind"] for o in rbac} == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    gang_cluster.kubectl("create", "namespace", GANG_RELEASE_NAMESPACE, check=False)
    gang_cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac}))
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = [a for a in container["args"][1:] if not a.startswith(("--metrics-port", "--health-port"))]
    assert "--kueue" in args and "--gang-scheduler=workload-api" in args
    account = next(o for o in rbac if o["kind"] == "ServiceAccount")["metadata"]["name"]
    # Valid for the whole session: other test files may run between this operator's first and last test.
    token = helmchart.service_account_token(CoreV1Api(gang_kube), GANG_RELEASE_NAMESPACE, account, seconds=86400)
    workdir = tmp_path_factory.mktemp("gang-operator")
    kubeconfig = helmchart.token_kubeconfig(gang_cluster.kubeconfig, token, workdir / "operator.kubeconfig")
    proc = OperatorProcess(kubeconfig, workdir, extra_args=args)
    proc.service_account = f"system:serviceaccount:{GANG_RELEASE_NAMESPACE}:{account}"
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def running_gang_operator(gang_operator):
    """The gang operator, started again if a test killed it; after the test, its log must show no request
    the chart's RBAC refused."""
    if gang_operator.proc is None or gang_operator.proc.poll() is not None:
        gang_operator.start()
    start = gang_operator.log_path.stat().st_size
    yield gang_operator
    with open(gang_operator.log_path, "rb") as log:
        log.seek(start)
        written = log.read().decode(errors="replace")
    denied = [line for line in written.splitlines() if gang_operator.service_account in line and "forbidden" in line]
    assert not denied, "the chart's RBAC refused the operator:\n" + "\n".join(denied[:5])


@pytest.fixture
def gang_jobs(gang_kube, gang_namespace, running_gang_operator):
    from .msjobs import MSJobs

    return MSJobs(gang_kube, gang_namespace)
