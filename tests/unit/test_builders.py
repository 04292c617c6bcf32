from msjob_operator.api import naming
from msjob_operator.api.models import MSJobSpec
from msjob_operator.builders.env import mindspore_env, scheduler_port
from msjob_operator.builders.pods import build_pod
from msjob_operator.builders.services import build_services

from .jobs import job, template


def env_of(pod: dict) -> dict:
    container = pod["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def build(j: dict, rtype: str, index: int, attempt: int = 0) -> dict:
    spec = MSJobSpec.model_validate(j["spec"])
    replica = dict(spec.ms_replica_specs.items())[rtype]
    return build_pod(j, spec, rtype, replica, index, attempt=attempt, scheduler_ip="10.0.0.42")


def test_worker_env_follows_the_mindspore_contract():
    env = env_of(build(job(workers=4, ps=1), "Worker", 3))
    assert env["MS_ROLE"] == "MS_WORKER"
    assert env["MS_SCHED_HOST"] == "10.0.0.42"  # a literal IP: MindSpore cannot resolve names
    assert env["MS_SCHED_PORT"] == "2222"
    assert env["MS_WORKER_NUM"] == "4"
    assert env["MS_SERVER_NUM"] == "1"
    assert env["MS_NODE_ID"] == "worker-3"  # with a PS: a name (see test_with_parameter_servers_...)
    assert env["MSJOB_REPLICA_TYPE"] == "Worker" and env["MSJOB_REPLICA_INDEX"] == "3"


def test_without_parameter_servers_the_node_id_is_the_rank():
    assert env_of(build(job(workers=4), "Worker", 3))["MS_NODE_ID"] == "3"  # numeric id = deterministic rank


def test_scheduler_binds_its_own_pod_ip():
    env = env_of(build(job(), "Scheduler", 0))
    assert env["MS_ROLE"] == "MS_SCHED"
    assert env["MS_SCHED_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert "MS_NODE_ID" not in env and "MS_SERVER_NUM" not in env


def test_ps_role_and_no_server_num_without_ps():
    assert env_of(build(job(ps=2), "PS", 1))["MS_ROLE"] == "MS_PSERVER"
    assert "MS_SERVER_NUM" not in env_of(build(job(), "Worker", 0))


def test_with_parameter_servers_node_ids_are_names_unique_across_roles():
    # MindSpore 2.10: numeric ids are per-role ranks but must be unique across roles, so with a PS
    # every member gets a name (the scheduler then ranks them by host IP and id, consistently).
    with_ps = job(ps=2)
    assert env_of(build(with_ps, "Worker", 1))["MS_NODE_ID"] == "worker-1"
    assert env_of(build(with_ps, "PS", 1))["MS_NODE_ID"] == "ps-1"
    assert env_of(build(job(), "Worker", 1))["MS_NODE_ID"] == "1"


def test_user_env_is_never_overridden():
    j = job()
    j["spec"]["msReplicaSpecs"]["Worker"]["template"] = template(env=[{"name": "MS_SCHED_PORT", "value": "9999"}])
    env = env_of(build(j, "Worker", 0))
    assert env["MS_SCHED_PORT"] == "9999"
    assert env["MS_ROLE"] == "MS_WORKER"


def test_scheduler_port_from_named_container_port_then_spec():
    j = job(mindspore={"schedulerPort": 3333})
    assert scheduler_port(MSJobSpec.model_validate(j["spec"])) == 3333
    j["spec"]["msReplicaSpecs"]["Scheduler"]["template"] = template(
        ports=[{"name": "msjob-port", "containerPort": 4444}])
    assert scheduler_port(MSJobSpec.model_validate(j["spec"])) == 4444


def test_env_goes_to_the_container_named_mindspore():
    j = job()
    t = template()
    t["spec"]["containers"].insert(0, {"name": "sidecar", "image": "busybox"})
    j["spec"]["msReplicaSpecs"]["Worker"]["template"] = t
    pod = build(j, "Worker", 0)
    sidecar, main = pod["spec"]["containers"]
    assert "env" not in sidecar
    assert any(e["name"] == "MS_ROLE" for e in main["env"])


def test_optional_mindspore_settings():
    env = env_of(build(job(mindspore={"clusterTimeoutSeconds": 120, "enableRecovery": True}), "Worker", 0))
    assert env["MS_TOPO_TIMEOUT"] == "120" and env["MS_ENABLE_RECOVERY"] == "1"


def test_pod_identity_labels_owner_and_template_metadata():
    pod = build(job(), "Worker", 1, attempt=2)
    meta = pod["metadata"]
    assert meta["name"] == "demo-worker-1"
    assert meta["labels"][naming.JOB_NAME_LABEL] == "demo"
    assert meta["labels"][naming.REPLICA_TYPE_LABEL] == "worker"
    assert meta["labels"][naming.REPLICA_INDEX_LABEL] == "1"
    assert meta["labels"][naming.ATTEMPT_LABEL] == "2"
    assert meta["labels"]["app"] == "demo" and meta["annotations"]["note"] == "kept"
    owner = meta["ownerReferences"][0]
    assert owner["uid"] == "job-uid" and owner["controller"] is True
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["hostname"] == "demo-worker-1" and spec["subdomain"] == "demo"
    assert spec["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_worker_only_job_gets_no_scheduler_env():
    env = env_of(build(job(scheduler=False), "Worker", 0))
    assert "MS_ROLE" not in env and env["MSJOB_NAME"] == "demo"


def test_services():
    spec = MSJobSpec.model_validate(job()["spec"])
    headless, scheduler = build_services(job(), spec)
    assert headless["metadata"]["name"] == "demo" and headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert scheduler["metadata"]["name"] == "demo-scheduler"
    assert scheduler["spec"]["selector"][naming.REPLICA_TYPE_LABEL] == "scheduler"
    assert scheduler["spec"]["ports"][0]["port"] == 2222
    alone = job(scheduler=False)
    assert [s["metadata"]["name"] for s in build_services(alone, MSJobSpec.model_validate(alone["spec"]))] == ["demo"]


def test_building_workers_without_the_cluster_ip_is_refused():
    spec = MSJobSpec.model_validate(job()["spec"])
    try:
        mindspore_env(spec, job="demo", namespace="ns", replica_type="Worker", index=0, scheduler_ip=None)
    except ValueError as exc:
        assert "ClusterIP" in str(exc)
    else:
        raise AssertionError("expected a ValueError")
