"""The Helm chart with real helm: lint, template, schema errors, manifests/, install/upgrade/uninstall
on the local cluster, and its RBAC proven sufficient (the operator completes a job with the chart
ServiceAccount's token) and minimal (SelfSubjectAccessReviews as that ServiceAccount)."""

from __future__ import annotations

import importlib.util
import json
import uuid

import pytest
from kubernetes import config as kconfig
from kubernetes.client import AppsV1Api, AuthorizationV1Api, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from msjob_localcluster.fake_device_plugin import FakeAscendDevicePlugin
from msjob_localcluster.operator_process import OperatorProcess

from ..helpers import wait_for
from . import helmchart
from .helmchart import CHART, REPO
from .msjobs import EXIT, MSJobs, msjob

# Verbs that would let the operator gain rights it was not given.
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate", "update", "deletecollection"}


# -- offline: lint, template, schema, manifests/ ----------------------------------------------------

@pytest.mark.parametrize("values", [[], ["watchNamespaces={team-a,team-b}", "peering.enabled=true", "replicaCount=2",
                                         "grafanaDashboard.enabled=true", "metrics.podMonitor.enabled=true"],
                                    ["kueue.enabled=true", "gangScheduling.scheduler=workload-api"],
                                    ["watchNamespaces={team-a}", "kueue.enabled=true"]])
def test_chart_lints(helm, values):
    args = ["lint", str(CHART), "--strict"]
    for value in values:
        args += ["--set", value]
    out = helmchart.run(helm, *args).stdout
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("value, message", [
    ("gangScheduling.mode=sometimes", "/gangScheduling/mode': value must be one of 'auto', 'always', 'never'"),
    ("log.format=xml", "/log/format': value must be one of 'plain', 'json'"),
    ("metrics.port=70000", "/metrics/port': maximum: got 70,000, want 65,535"),
    ("workerz=3", "additional properties 'workerz' not allowed"),
    ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
    ("replicaCount=2", "replicaCount > 1 needs peering.enabled=true"),
    ("gangScheduling.scheduler=kube", "/gangScheduling/scheduler': value must be one of 'volcano', "
                                      "'scheduler-plugins', 'workload-api'"),
    ("kueue.enabled=yes", "/kueue/enabled': got string, want boolean"),
])
def test_bad_values_fail_with_a_clear_message(helm, value, message):
    proc = helmchart.run(helm, "template", "t", str(CHART), "--set", value, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_defaults_render_one_restricted_replica_with_the_operator_flags(helm):
    objects = helmchart.template(helm)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 8080, "health": 8081}
    # Every flag the chart passes must be one `msjob-operator run` accepts.
    from msjob_operator.cli import build_parser
    args = build_parser().parse_args(container["args"])
    assert (args.gang_scheduling, args.gang_scheduler, args.namespace, args.peering) == ("auto", "volcano", None, False)
    assert args.reporter_image == container["image"] == "msjob-operator:0.1.0"
    service = next(o for o in objects if o["kind"] == "Service")
    assert {p["port"] for p in service["spec"]["ports"]} == {8080, 8081}


def test_values_reach_the_operator_flags(helm):
    objects = helmchart.template(helm, "watchNamespaces={team-a,team-b}", "gangScheduling.scheduler=scheduler-plugins",
                                 "gangScheduling.mode=always", "log.format=json", "log.level=debug",
                                 "peering.enabled=true", "replicaCount=2", "reporterImage=reg.example/reporter:1")
    container = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    from msjob_operator.cli import build_parser
    args = build_parser().parse_args(container["args"])
    assert args.namespace == ["team-a", "team-b"] and args.peering and args.verbose
    assert (args.gang_scheduler, args.gang_scheduling, args.log_format) == ("scheduler-plugins", "always", "json")
    assert args.reporter_image == "reg.example/reporter:1"
    assert [e["name"] for e in container["env"]] == ["POD_ID"]  # flags only: no configuration by environment
    assert args.peering_name == "t-msjob-operator"
    assert (args.peering_namespace, args.peering_lease_seconds) == ("msjob-system", 15)  # the release's namespace
    # The Lease's Role lives in the release's namespace, whatever namespaces are watched.
    leases = [o for o in objects
              if o["kind"] in ("Role", "RoleBinding") and o["metadata"]["name"].endswith("-leader-election")]
    assert sorted((o["kind"], o["metadata"]["namespace"]) for o in leases) == [("Role", "msjob-system"),
                                                                              ("RoleBinding", "msjob-system")]
    groups = {g for rule in helmchart.rules(objects) for g in rule["apiGroups"]}
    assert "scheduling.x-k8s.io" in groups and "scheduling.volcano.sh" not in groups


@pytest.mark.parametrize("values", [[], ["peering.enabled=true"], ["watchNamespaces={team-a}", "peering.enabled=true"],
                                    ["gangScheduling.mode=never"],
                                    ["kueue.enabled=true", "gangScheduling.scheduler=workload-api"],
                                    ["watchNamespaces={team-a}", "kueue.enabled=true"]])
def test_rbac_has_no_wildcards_no_secrets_and_no_way_to_escalate(helm, values):
    rules = helmchart.rules(helmchart.template(helm, *values))
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field] and not any("*" in item for item in rule[field]), rule
        # The one update allowed: renewing the operator's own Lease, by name.
        own_lease = rule["resources"] == ["leases"] and rule.get("resourceNames") == ["t-msjob-operator"]
        assert not (DANGEROUS_VERBS - ({"update"} if own_lease else set())) & set(rule["verbs"]), rule
        assert not {"secrets", "nodes", "clusterroles", "clusterrolebindings"} & set(rule["resources"]), rule
        assert "kopf.dev" not in rule["apiGroups"], rule
    lease_rules = sorted((tuple(r["verbs"]), tuple(r.get("resourceNames") or ())) for r in rules
                         if r["resources"] == ["leases"])
    # In every mode, the in-place members' Leases (created, watched, and granted to their agents by name).
    members = [(("list", "watch", "create", "get", "patch"), ())]
    if "peering.enabled=true" in values:
        assert lease_rules == sorted([*members, (("create",), ()), (("get", "update"), ("t-msjob-operator",))])
    else:
        assert lease_rules == members
    if "gangScheduling.mode=never" in values:
        assert not any(r["resources"] == ["podgroups"] for r in rules)


def _grants(rules: list[dict], group: str) -> dict[str, list[str]]:
    return {resource: rule["verbs"] for rule in rules if group in rule["apiGroups"] for resource in rule["resources"]}


def test_each_scheduling_choice_gets_only_its_own_rules(helm):
    default = helmchart.rules(helmchart.template(helm))
    assert not _grants(default, "kueue.x-k8s.io") and not _grants(default, "scheduling.k8s.io")
    objects = helmchart.template(helm, "kueue.enabled=true", "gangScheduling.scheduler=workload-api")
    container = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    from msjob_operator.cli import build_parser
    args = build_parser().parse_args(container["args"])
    assert args.kueue and args.gang_scheduler == "workload-api"
    rules = helmchart.rules(objects)
    assert _grants(rules, "kueue.x-k8s.io") == {
        "workloads": ["list", "watch", "get", "create", "patch", "delete"], "workloads/status": ["patch"],
        "localqueues": ["list", "watch"], "resourceflavors": ["list", "watch"],
        "workloadpriorityclasses": ["list", "watch"]}
    assert _grants(rules, "scheduling.k8s.io") == {"podgroups": ["list", "watch", "create", "get", "delete"],
                                                   "workloads": ["create"]}
    assert not _grants(rules, "scheduling.volcano.sh") and not _grants(rules, "scheduling.x-k8s.io")


def test_namespaced_mode_with_kueue_reads_only_kueues_cluster_scoped_kinds_cluster_wide(helm):
    objects = helmchart.template(helm, "watchNamespaces={team-a}", "kueue.enabled=true")
    (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    assert cluster_role["rules"] == [{"apiGroups": ["kueue.x-k8s.io"],
                                      "resources": ["resourceflavors", "workloadpriorityclasses"],
                                      "verbs": ["list", "watch"]}]
    (binding,) = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    (role,) = [o for o in objects if o["kind"] == "Role"]
    assert "workloads" in _grants(role["rules"], "kueue.x-k8s.io")


def test_namespaced_mode_has_nothing_cluster_wide(helm):
    objects = helmchart.template(helm, "watchNamespaces={team-a,team-b}")
    kinds = sorted(o["kind"] for o in objects)
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert sorted((o["kind"], o["metadata"]["namespace"]) for o in objects if o["kind"] in ("Role", "RoleBinding")) == [
        ("Role", "team-a"), ("Role", "team-b"), ("RoleBinding", "team-a"), ("RoleBinding", "team-b")]


def test_grafana_dashboard_queries_only_metrics_the_operator_serves(helm):
    from msjob_operator.controller import metrics
    served = {m.name for m in metrics.REGISTRY.collect()} | {
        "msjob_jobs", "msjob_job_step", "msjob_job_steps_per_second", "msjob_job_step_time_seconds",
        "msjob_job_last_step_timestamp_seconds"}
    (configmap,) = [o for o in helmchart.template(helm, "grafanaDashboard.enabled=true") if o["kind"] == "ConfigMap"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["msjob-operator.json"])
    import re
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\bmsjob_[a-z_]+", target["expr"])}
    base = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert used and base <= served | {n + "_total" for n in served}, base - served


def test_manifests_are_rendered_from_the_chart(helm):
    spec = importlib.util.spec_from_file_location("_render_manifests", REPO / "scripts" / "render_manifests.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.MANIFEST.read_text(encoding="utf-8") == script.render(helm), (
        "manifests/msjob-operator.yaml is stale; run: python scripts/render_manifests.py (or make manifests)")


# -- on the local cluster -------------------------------------------------------------------------

def _install(helm, cluster, release: str, namespace: str, *values: str, command: str = "install") -> str:
    args = [command, release, str(CHART), "--namespace", namespace]
    for value in values:
        args += ["--set", value]
    return helmchart.run(helm, *args, kubeconfig=cluster.kubeconfig).stdout


def _args(apps: AppsV1Api, namespace: str, name: str) -> list[str]:
    return apps.read_namespaced_deployment(name, namespace).spec.template.spec.containers[0].args


@pytest.mark.cluster
def test_install_upgrade_uninstall(helm, cluster, kube, namespace):
    release = f"r{uuid.uuid4().hex[:6]}"
    name = f"{release}-msjob-operator"
    apps, rbac = AppsV1Api(kube), RbacAuthorizationV1Api(kube)
    out = _install(helm, cluster, release, namespace)
    assert "kubectl apply --server-side" in out  # NOTES.txt tells how to upgrade the CRDs
    deployment = apps.read_namespaced_deployment(name, namespace)
    assert deployment.spec.strategy.type == "Recreate" and "--workers=16" in _args(apps, namespace, name)
    assert rbac.read_cluster_role(name).rules
    assert rbac.read_cluster_role_binding(name).subjects[0].namespace == namespace

    _install(helm, cluster, release, namespace, "workers=8", "log.format=json", command="upgrade")
    args = _args(apps, namespace, name)
    assert "--workers=8" in args and "--log-format=json" in args and "--workers=16" not in args
    history = json.loads(helmchart.run(helm, "history", release, "-n", namespace, "-o", "json",
                                       kubeconfig=cluster.kubeconfig).stdout)
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"

    helmchart.run(helm, "uninstall", release, "-n", namespace, kubeconfig=cluster.kubeconfig)

    def gone():
        try:
            rbac.read_cluster_role(name)
            return False
        except ApiException as e:
            return e.status == 404
    wait_for(gone, timeout=60, message="the ClusterRole removed by helm uninstall")
    with pytest.raises(ApiException) as e:
        apps.read_namespaced_deployment(name, namespace)
    assert e.value.status == 404
    # CRDs in crds/ survive an uninstall: existing MSJobs are not deleted with the chart.
    crds = {c["metadata"]["name"] for c in kube.call_api(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "GET", response_type="object",
        auth_settings=["BearerToken"], _return_http_data_only=True)["items"]}
    assert "msjobs.mindspore.gitee.com" in crds


@pytest.fixture
def release(helm, cluster, namespace):
    """The chart installed in cluster mode with two peering replicas into the test's namespace."""
    name = f"r{uuid.uuid4().hex[:6]}"
    _install(helm, cluster, name, namespace, "gangScheduling.mode=always", "replicaCount=2", "peering.enabled=true",
             "peering.leaseSeconds=5")
    yield name
    helmchart.run(helm, "uninstall", name, "-n", namespace, kubeconfig=cluster.kubeconfig, check=False)


def _as_service_account(cluster, core, namespace: str, account: str, tmp_path):
    token = helmchart.service_account_token(core, namespace, account)
    path = helmchart.token_kubeconfig(cluster.kubeconfig, token, tmp_path / f"{account}.kubeconfig")
    return path, kconfig.new_client_from_config(config_file=str(path))


@pytest.mark.cluster
def test_operator_with_the_chart_identity_completes_a_job(helm, cluster, kube, core, namespace, release,
                                                         running_operator, tmp_path):
    """Sufficient: two replicas, started with the Deployment's own flags and the chart ServiceAccount's
    token: one stands by (the other holds the Lease) while the other runs a gang-scheduled job with health reporting
    through a gang restart to success, and a rank-table job; when it stops, the standby takes over."""
    name = f"{release}-msjob-operator"
    container = AppsV1Api(kube).read_namespaced_deployment(name, namespace).spec.template.spec.containers[0]
    args = [a for a in container.args[1:] if not a.startswith(("--metrics-port", "--health-port"))]
    assert "--gang-scheduling=always" in args and "--peering" in args
    kubeconfig, client = _as_service_account(cluster, core, namespace, name, tmp_path)
    client.close()  # the operators read the kubeconfig themselves
    running_operator.stop()  # only the chart-identity operators may act during this test
    assert f"--peering-namespace={namespace}" in args and "--peering-lease-seconds=5" in args
    replicas = [OperatorProcess(kubeconfig, tmp_path / f"replica-{i}", extra_args=args) for i in (0, 1)]
    lease_name = next(a.split("=", 1)[1] for a in args if a.startswith("--peering-name="))
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease_name}"

    def holder() -> str | None:
        return (kube.call_api(lease, "GET", response_type="object", auth_settings=["BearerToken"],
                              _return_http_data_only=True).get("spec") or {}).get("holderIdentity")

    leading, waiting = "leading: this replica now reconciles", "waiting to lead"
    device_plugin = FakeAscendDevicePlugin(cluster.kubeconfig).start()
    try:
        active, standby = replicas
        for replica, line in ((active, leading), (standby, waiting)):
            replica.log_path.parent.mkdir()
            replica.start()
            wait_for(lambda replica=replica, line=line: line in replica.log_path.read_text(), timeout=60,
                     message=f"a replica logging {line!r}", describe=replica.tail)
        first_holder = holder()
        assert first_holder

        jobs = MSJobs(kube, namespace)
        jobs.create(msjob("rbac", workers=2, health={"reportProgress": True}))
        # And a rank-table job: its hccl.json is a ConfigMap the operator creates and then patches.
        hccl = msjob("hccl", workers=2, scheduler=False, mindspore={"launchMode": "RankTable"})
        hccl["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"] = {
            "limits": {"huawei.com/Ascend910": 8}}
        jobs.create(hccl)
        jobs.wait_pods("rbac", 3)
        jobs.wait_condition("rbac", "Running")
        # The job got what each rule is for: PodGroup, Services, the reporter's ServiceAccount and Role.
        group = kube.call_api(f"/apis/scheduling.volcano.sh/v1beta1/namespaces/{namespace}/podgroups/rbac", "GET",
                              response_type="object", auth_settings=["BearerToken"], _return_http_data_only=True)
        assert group["spec"]["minMember"] == 3
        assert {s.metadata.name for s in jobs.services("rbac")} == {"rbac", "rbac-scheduler"}
        assert core.read_namespaced_service_account("rbac-reporter", namespace)
        role = RbacAuthorizationV1Api(kube).read_namespaced_role("rbac-reporter", namespace)
        assert role.rules[0].resource_names == ["rbac-worker-0"] and role.rules[0].verbs == ["get", "patch"]

        jobs.annotate_pod("rbac-worker-1", {EXIT: "137"})  # a gang restart: pods deleted and created again
        jobs.wait_pods("rbac", 3, attempt=1)
        jobs.wait_event("rbac", "MemberFailed", "Warning")  # Events are posted with the chart's rights too
        jobs.annotate_pod("rbac-worker-0", {EXIT: "0"})
        jobs.wait_condition("rbac", "Succeeded", timeout=90)
        assert jobs.get("rbac")["status"]["restartCount"] == 1
        wait_for(lambda: jobs.get("hccl")["status"].get("rankTable", {}).get("status") == "completed", timeout=90,
                 message="the rank table completed", describe=lambda: jobs.get("hccl").get("status"))
        assert "hccl.json" in core.read_namespaced_config_map("hccl-ranktable", namespace).data
        standby_log = standby.log_path.read_text()
        assert leading not in standby_log and f"[{namespace}/rbac]" not in standby_log  # it stood by
        assert holder() == first_holder

        active.stop()  # a clean stop releases the Lease: the standby takes over
        wait_for(lambda: leading in standby.log_path.read_text(), timeout=60,
                 message="the standby leading", describe=standby.tail)
        assert holder() not in (None, first_holder)
        assert "released the Lease" in active.log_path.read_text()
        jobs.create(msjob("handover", workers=1, worker_annotations={EXIT: "0"}))
        jobs.wait_condition("handover", "Succeeded", timeout=90)
        # An RBAC denial names the user ("... forbidden: User "system:serviceaccount:..." cannot ..."); other
        # 403s (e.g. other tests' namespaces being deleted, as seen by this cluster-wide operator) are not ours.
        for replica in replicas:
            log = replica.log_path.read_text(errors="replace")
            assert f"system:serviceaccount:{namespace}:{name}" not in log and "Not enough permissions" not in log, \
                replica.tail()
    finally:
        for replica in replicas:
            replica.stop()
        device_plugin.stop()
        running_operator.start()


@pytest.mark.cluster
def test_a_leader_that_cannot_renew_its_lease_stops_acting(helm, cluster, kube, core, namespace, release, tmp_path):
    """Take `update` on the Lease away from the chart's ServiceAccount: the replica that created the Lease
    must stop reconciling and exit once it could not renew in time, rather than act on without it."""
    name = f"{release}-msjob-operator"
    container = AppsV1Api(kube).read_namespaced_deployment(name, namespace).spec.template.spec.containers[0]
    args = [a for a in container.args[1:] if not a.startswith(("--metrics-port", "--health-port"))]
    rbac = RbacAuthorizationV1Api(kube)
    role = rbac.read_namespaced_role(f"{name}-leader-election", namespace)
    for rule in role.rules:
        rule.verbs = [v for v in rule.verbs if v != "update"]
    rbac.replace_namespaced_role(f"{name}-leader-election", namespace, role)
    kubeconfig, client = _as_service_account(cluster, core, namespace, name, tmp_path)
    client.close()
    replica = OperatorProcess(kubeconfig, tmp_path / "replica", extra_args=args)
    replica.log_path.parent.mkdir()
    try:
        replica.start()
        wait_for(lambda: "leading: this replica now reconciles" in replica.log_path.read_text(), timeout=60,
                 message="the replica leading (it may create the Lease)", describe=replica.tail)
        wait_for(lambda: replica.proc.poll() is not None, timeout=60, message="the replica exiting",
                 describe=replica.tail)
        log = replica.log_path.read_text()
        assert "leadership lost: the Lease could not be renewed" in log, replica.tail()
    finally:
        replica.stop()


def _can(authz: AuthorizationV1Api, verb: str, resource: str, namespace: str | None = None, group: str = "",
         subresource: str | None = None) -> bool:
    attributes = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    if subresource:
        attributes["subresource"] = subresource
    review = authz.create_self_subject_access_review({"spec": {"resourceAttributes": attributes}})
    return review.status.allowed


@pytest.mark.cluster
def test_chart_identity_is_minimal_in_cluster_mode(cluster, core, namespace, release, tmp_path):
    _, client = _as_service_account(cluster, core, namespace, f"{release}-msjob-operator", tmp_path)
    authz = AuthorizationV1Api(client)
    other = "default"
    # What it uses, in any namespace...
    assert _can(authz, "create", "pods", other) and _can(authz, "watch", "pods")
    assert _can(authz, "patch", "msjobs", other, "mindspore.gitee.com", "status")
    assert _can(authz, "create", "podgroups", other, "scheduling.volcano.sh")
    # ...and nothing else.
    for verb, resource, group in [("get", "secrets", ""), ("list", "secrets", ""), ("watch", "secrets", ""),
                                  ("create", "deployments", "apps"), ("list", "deployments", "apps"),
                                  ("patch", "nodes", ""), ("delete", "namespaces", ""),
                                  ("update", "msjobs", "mindspore.gitee.com"),
                                  ("create", "msjobs", "mindspore.gitee.com"),
                                  ("create", "clusterroles", "rbac.authorization.k8s.io"),
                                  ("escalate", "roles", "rbac.authorization.k8s.io"),
                                  ("bind", "roles", "rbac.authorization.k8s.io"),
                                  ("impersonate", "serviceaccounts", ""), ("delete", "services", ""),
                                  ("create", "podgroups", "scheduling.x-k8s.io"), ("create", "pods/exec", "")]:
        assert not _can(authz, verb, resource, other, group), (verb, resource, group)
    client.close()


@pytest.mark.cluster
def test_namespaced_mode_grants_nothing_outside_its_namespaces(helm, cluster, core, namespace, tmp_path):
    watched = f"watched-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": watched}})
    release = f"r{uuid.uuid4().hex[:6]}"
    try:
        _install(helm, cluster, release, namespace, f"watchNamespaces={{{watched}}}")
        _, client = _as_service_account(cluster, core, namespace, f"{release}-msjob-operator", tmp_path)
        authz = AuthorizationV1Api(client)
        assert _can(authz, "create", "pods", watched) and _can(authz, "list", "msjobs", watched, "mindspore.gitee.com")
        for ns in (namespace, "default"):
            assert not _can(authz, "create", "pods", ns)
            assert not _can(authz, "list", "msjobs", ns, "mindspore.gitee.com")
        assert not _can(authz, "list", "pods")  # cluster-wide
        assert not _can(authz, "list", "namespaces") and not _can(authz, "list", "customresourcedefinitions",
                                                                 group="apiextensions.k8s.io")
        assert not _can(authz, "get", "secrets", watched)
        client.close()
    finally:
        helmchart.run(helm, "uninstall", release, "-n", namespace, kubeconfig=cluster.kubeconfig, check=False)
        core.delete_namespace(watched)
