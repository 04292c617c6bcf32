import json

from msjob_operator.api import naming
from msjob_operator.api.models import MSJobSpec
from msjob_operator.builders.devices import processes_per_pod, worker_devices
from msjob_operator.builders.services import build_services
from msjob_operator.reconcile.plan import reconcile

from .jobs import NOW, job, pod, services
from .test_builders import build, env_of


def with_limits(j: dict, limits: dict) -> dict:
    j["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"] = {"limits": limits}
    return j


def msrun_job(workers=2, **mindspore):
    j = job(workers=workers, scheduler=False, mindspore={"launchMode": "Msrun", **mindspore})
    return with_limits(j, {"huawei.com/Ascend910": 8})


def test_devices_are_read_from_the_worker_limits():
    spec = MSJobSpec.model_validate(with_limits(job(), {"nvidia.com/gpu": 4, "cpu": "8"})["spec"])
    devices = worker_devices(spec)
    assert (devices.resource, devices.per_pod, devices.gpu) == ("nvidia.com/gpu", 4, True)
    # Dynamic mode runs one process per pod whatever the devices.
    assert processes_per_pod(spec) == 1


def test_named_devices_are_requested_for_workers_only():
    j = job(mindspore={"devices": {"resource": "huawei.com/Ascend910-4c", "perPod": 2}, "clusterTimeoutSeconds": 900})
    worker, scheduler = build(j, "Worker", 0), build(j, "Scheduler", 0)
    assert worker["spec"]["containers"][0]["resources"]["limits"] == {"huawei.com/Ascend910-4c": 2}
    assert "resources" not in scheduler["spec"]["containers"][0]
    env = env_of(worker)
    assert env["MSJOB_DEVICE_RESOURCE"] == "huawei.com/Ascend910-4c" and env["MSJOB_DEVICES_PER_POD"] == "2"
    assert env["HCCL_CONNECT_TIMEOUT"] == "900"


def test_user_limits_and_scheduling_fields_are_kept():
    j = with_limits(job(mindspore={"devices": {"resource": "huawei.com/Ascend910", "perPod": 8}}),
                    {"huawei.com/Ascend910": 4})
    template = j["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]
    template["nodeSelector"] = {"accelerator": "ascend"}
    template["tolerations"] = [{"key": "npu", "operator": "Exists"}]
    template["affinity"] = {"nodeAffinity": {}}
    pod = build(j, "Worker", 0)
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"huawei.com/Ascend910": 4}
    assert pod["spec"]["nodeSelector"] == {"accelerator": "ascend"}
    assert pod["spec"]["tolerations"] == [{"key": "npu", "operator": "Exists"}]
    assert pod["spec"]["affinity"] == {"nodeAffinity": {}}


def test_msrun_env_counts_processes_and_points_at_worker_zero():
    j = msrun_job(workers=3)
    first, second = env_of(build(j, "Worker", 0)), env_of(build(j, "Worker", 2))
    assert first["MS_SCHED_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}  # msrun sees a local address
    assert second["MS_SCHED_HOST"] == "10.0.0.42"  # everyone else: the Service in front of worker 0
    assert second["MS_WORKER_NUM"] == "24" and second["MS_LOCAL_WORKER"] == "8" and second["MS_NODE_RANK"] == "2"
    assert "MS_ROLE" not in second  # msrun sets roles for its children
    assert "--worker_num=$(MS_WORKER_NUM)" in second["MSRUN_ARGS"] and "--join=True" in second["MSRUN_ARGS"]


def test_msrun_processes_per_pod_override():
    spec = MSJobSpec.model_validate(msrun_job(processesPerPod=2)["spec"])
    assert processes_per_pod(spec) == 2


def test_msrun_master_service_selects_worker_zero():
    j = msrun_job()
    names = {s["metadata"]["name"]: s for s in build_services(j, MSJobSpec.model_validate(j["spec"]))}
    selector = names["demo-scheduler"]["spec"]["selector"]
    assert selector[naming.REPLICA_TYPE_LABEL] == "worker" and selector[naming.REPLICA_INDEX_LABEL] == "0"


def test_msrun_job_waits_for_the_master_service_then_creates_workers():
    plan = reconcile(msrun_job(), [], [], NOW)
    assert not plan.create_pods and plan.continues and "demo-scheduler" in [
        s["metadata"]["name"] for s in plan.create_services]
    plan = reconcile(msrun_job(), [], services(), NOW)
    assert sorted(p["metadata"]["name"] for p in plan.create_pods) == ["demo-worker-0", "demo-worker-1"]


def ranktable_job(workers=2):
    j = job(workers=workers, scheduler=False, mindspore={"launchMode": "RankTable"})
    return with_limits(j, {"huawei.com/Ascend910": 8})


def annotated(p: dict, server: str) -> dict:
    devices = [{"device_id": str(i), "device_ip": f"192.168.1.{i}"} for i in range(8)]
    p["metadata"]["annotations"] = {"ascend.kubectl.kubernetes.io/ascend-910-configuration": json.dumps(
        {"pod_name": p["metadata"]["name"], "server_id": server, "devices": devices})}
    return p


def test_rank_table_configmap_comes_before_the_pods_and_completes_with_them():
    first = reconcile(ranktable_job(), [], services(), NOW)
    assert len(first.create_pods) == 2  # applied after the ConfigMap they mount (prerequisites go first)
    (cm,) = first.apply_configmaps
    assert cm["metadata"]["name"] == "demo-ranktable" and '"status": "initializing"' in cm["data"]["hccl.json"]
    status = first.status
    assert status["rankTable"]["status"] == "initializing"

    plan = reconcile(ranktable_job() | {"status": status}, [], services(), NOW)
    pods = plan.create_pods
    assert len(pods) == 2 and not plan.apply_configmaps  # nothing changed in the table
    env = env_of(pods[1])
    assert env["RANK_TABLE_FILE"] == "/etc/msjob/ranktable/hccl.json" and env["RANK_SIZE"] == "16"
    assert env["RANK_START"] == "8"
    assert pods[1]["spec"]["volumes"][-1]["configMap"]["name"] == "demo-ranktable"

    running = [annotated(pod("demo", "Worker", i), f"10.0.1.{i}") for i in range(2)]
    done = reconcile(ranktable_job() | {"status": plan.status}, running, services(), NOW)
    table = json.loads(done.apply_configmaps[0]["data"]["hccl.json"])
    assert table["status"] == "completed" and table["server_count"] == "2"
    assert [d["rank_id"] for s in table["server_list"] for d in s["device"]] == [str(i) for i in range(16)]
    assert done.status["rankTable"]["status"] == "completed" and done.status["rankTable"]["ranks"] == 16
    assert any(e.reason == "RankTableCompleted" for e in done.events)
