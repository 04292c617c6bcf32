"""Security and multi-tenancy: the operator needs no access to Secrets, and a tenant with rights in
one namespace cannot make it act in another."""

from __future__ import annotations

import base64
import json
import shutil
import uuid

import pytest
import yaml
from kubernetes import config
from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from msjob_localcluster.certs import _signed
from msjob_localcluster.operator_process import OperatorProcess

from .msjobs import GROUP, MSJobs, msjob

pytestmark = pytest.mark.cluster

RESTRICTED_USER = "msjob-operator-restricted"
# kopf lists CustomResourceDefinitions and namespaces (cluster-scoped: read-only) in either mode.
KOPF_RULES = [
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]
# Everything the operator uses, and nothing of Secrets.
OPERATOR_RULES = [
    {"apiGroups": [GROUP], "resources": ["msjobs"], "verbs": ["get", "list", "watch", "delete"]},
    {"apiGroups": [GROUP], "resources": ["msjobs/status"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch", "create"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],  # the in-place members' Leases
     "verbs": ["get", "list", "watch", "create", "patch"]},
    {"apiGroups": ["scheduling.volcano.sh"], "resources": ["podgroups"],
     "verbs": ["get", "list", "watch", "create", "delete"]},
]


def restricted_kubeconfig(cluster, directory) -> str:
    """A kubeconfig for a user of our own, with a client certificate signed by the cluster's CA."""
    directory.mkdir()
    for name in ("ca.crt", "ca.key"):
        shutil.copy(cluster.root / "pki" / name, directory / name)
    _signed(directory, "operator", f"/CN={RESTRICTED_USER}", "extendedKeyUsage = clientAuth")
    config_dict = yaml.safe_load(cluster.kubeconfig.read_text())
    user = config_dict["users"][0]["user"]
    user["client-certificate-data"] = base64.b64encode((directory / "operator.crt").read_bytes()).decode()
    user["client-key-data"] = base64.b64encode((directory / "operator.key").read_bytes()).decode()
    (directory / "ca.key").unlink()
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config_dict))
    return str(path)


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_operator_runs_without_any_access_to_secrets(cluster, kube, core, namespace, running_operator, tmp_path, scope):
    """Cluster-wide, and namespaced (`-n NS`) with rights in NS alone: the operator works, and
    cannot read a Secret nor write anywhere else."""
    rbac = RbacAuthorizationV1Api(kube)
    role = f"{RESTRICTED_USER}-{uuid.uuid4().hex[:5]}"
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}
    subjects = [{"kind": "User", "name": RESTRICTED_USER}]
    rbac.create_cluster_role({"metadata": {"name": role}, "rules": OPERATOR_RULES})
    rbac.create_cluster_role({"metadata": {"name": f"{role}-kopf"}, "rules": KOPF_RULES})
    rbac.create_cluster_role_binding({"metadata": {"name": f"{role}-kopf"}, "subjects": subjects,
                                      "roleRef": {**ref, "name": f"{role}-kopf"}})
    if scope == "cluster":
        rbac.create_cluster_role_binding({"metadata": {"name": role}, "roleRef": ref, "subjects": subjects})
        args = []
    else:
        rbac.create_namespaced_role_binding(namespace, {"metadata": {"name": role}, "roleRef": ref,
                                                        "subjects": subjects})
        args = ["--namespace", namespace]
        assert cluster.kubectl("auth", "can-i", "create", "pods", "-n", "default", "--as", RESTRICTED_USER,
                               check=False).stdout.strip() == "no"
    can_i = cluster.kubectl("auth", "can-i", "--list", "--as", RESTRICTED_USER, "-n", namespace).stdout
    assert "secrets" not in can_i  # this identity cannot get, list or watch any Secret

    core.create_namespaced_secret(namespace, {"metadata": {"name": "db"}, "stringData": {"password": "hunter2-secret"}})
    body = msjob("uses-secrets", workers=2)
    spec = body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]
    spec["containers"][0]["env"] = [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    spec["containers"][0]["envFrom"] = [{"secretRef": {"name": "db"}}]
    spec["volumes"] = [{"name": "creds", "secret": {"secretName": "db"}}]
    spec["imagePullSecrets"] = [{"name": "db"}]

    running_operator.stop()  # only the restricted operator may act
    restricted = OperatorProcess(restricted_kubeconfig(cluster, tmp_path / "restricted"), tmp_path, extra_args=args)
    try:
        restricted.start()
        jobs = MSJobs(kube, namespace)
        jobs.create(body)
        pods = jobs.wait_pods("uses-secrets", 3)
        jobs.wait_condition("uses-secrets", "Running")
        log = restricted.log_path.read_text()
    finally:
        restricted.stop()
        running_operator.start()
        for name in (role, f"{role}-kopf"):
            if scope == "cluster" or name != role:
                rbac.delete_cluster_role_binding(name)
            rbac.delete_cluster_role(name)
    # It never even tried something it may not do (a Secret read would be denied and logged)...
    denied = [line for line in log.splitlines() if f'User "{RESTRICTED_USER}" cannot' in line]
    assert not denied, denied[:5]
    # ...and the pods carry the user's references, never a Secret's content.
    for pod in pods:
        text = json.dumps(kube.sanitize_for_serialization(pod))
        assert "hunter2" not in text
    worker = next(p for p in pods if p.metadata.name == "uses-secrets-worker-0")
    assert worker.spec.containers[0].env[0].value_from.secret_key_ref.name == "db"
    assert "hunter2" not in json.dumps(jobs.get("uses-secrets"))


def as_user(cluster, user: str):
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", user)
    return api


def test_tenant_cannot_reach_another_namespace(cluster, kube, core, namespace, jobs):
    other = f"victim-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": other}})
    tenant = f"alice-{uuid.uuid4().hex[:5]}"
    rbac = RbacAuthorizationV1Api(kube)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "tenant"}, "rules": [
        {"apiGroups": [GROUP], "resources": ["msjobs"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "tenant"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
        "subjects": [{"kind": "User", "name": tenant}]})
    victim = MSJobs(kube, other)
    alice_api = as_user(cluster, tenant)
    alice, alice_there = MSJobs(alice_api, namespace), MSJobs(alice_api, other)
    try:
        victim.create(msjob("victim", workers=2))
        before = {p.metadata.name: p.metadata.uid for p in victim.wait_pods("victim", 3)}
        victim.wait_condition("victim", "Running")
        services_before = {s.metadata.name for s in CoreV1Api(kube).list_namespaced_service(other).items}

        with pytest.raises(ApiException) as denied:  # no rights over there
            alice_there.create(msjob("intruder", workers=1))
        assert denied.value.status == 403

        # A job of the same name, whose template claims the other namespace, the victim's pod
        # names and labels, and an owner over there.
        body = msjob("victim", workers=2)
        victim_uid = victim.get("victim")["metadata"]["uid"]
        body["spec"]["msReplicaSpecs"]["Worker"]["template"]["metadata"].update(
            namespace=other, name="victim-worker-0",
            labels={"training.kubeflow.org/job-name": "victim", "training.kubeflow.org/replica-index": "0",
                    "mindspore.gitee.com/attempt": "0"},
            ownerReferences=[{"apiVersion": f"{GROUP}/v1", "kind": "MSJob", "name": "victim", "uid": victim_uid}])
        alice.create(body)
        mine = alice.wait_pods("victim", 3)
        jobs.wait_condition("victim", "Running")
        mine_uid = alice.get("victim")["metadata"]["uid"]
        for pod in mine:
            assert pod.metadata.namespace == namespace
            assert [o.uid for o in pod.metadata.owner_references] == [mine_uid]
        # Nothing changed over there.
        after = {p.metadata.name: p.metadata.uid for p in victim.pods("victim")}
        assert after == before
        assert {s.metadata.name for s in CoreV1Api(kube).list_namespaced_service(other).items} == services_before
        status = victim.get("victim")["status"]
        assert status["restartCount"] == 0 and status["state"] == "Running"
    finally:
        alice_api.close()
        core.delete_namespace(other)
