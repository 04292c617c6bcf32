from msjob_operator.api.models import MSJobSpec
from msjob_operator.builders.podgroup import build_podgroup, join_gang, total_requests
from msjob_operator.config import SCHEDULER_PLUGINS, Config, GangSettings
from msjob_operator.reconcile.plan import reconcile

from .jobs import NOW, gang, job, owned, pod, services


def npu_job(**spec):
    j = job(workers=2, **spec)
    j["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"huawei.com/Ascend910": 8}, "requests": {"cpu": "500m", "memory": "2Gi"}}
    j["spec"]["msReplicaSpecs"]["Scheduler"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "250m"}}
    return j


def test_min_resources_add_up_every_pod_devices_included():
    spec = MSJobSpec.model_validate(npu_job()["spec"])
    assert total_requests(spec) == {"cpu": "1250m", "huawei.com/Ascend910": "16", "memory": str(4 * 2**30)}


def test_volcano_podgroup():
    j = npu_job(runPolicy={"schedulingPolicy": {"queue": "team-a", "priorityClass": "high"}})
    group = build_podgroup(j, MSJobSpec.model_validate(j["spec"]), GangSettings())
    assert group["apiVersion"] == "scheduling.volcano.sh/v1beta1" and group["metadata"]["name"] == "demo"
    assert group["spec"]["minMember"] == 3 and group["spec"]["queue"] == "team-a"
    assert group["spec"]["priorityClassName"] == "high"
    assert group["spec"]["minResources"]["huawei.com/Ascend910"] == "16"
    assert group["metadata"]["ownerReferences"][0]["uid"] == "job-uid"


def test_min_available_and_min_resources_from_the_policy():
    j = npu_job(runPolicy={"schedulingPolicy": {"minAvailable": 2, "minResources": {"cpu": "4"}}})
    group = build_podgroup(j, MSJobSpec.model_validate(j["spec"]), GangSettings())
    assert group["spec"]["minMember"] == 2 and group["spec"]["minResources"] == {"cpu": "4"}


def test_coscheduling_podgroup_and_pod_label():
    j = npu_job(runPolicy={"schedulingPolicy": {"scheduleTimeoutSeconds": 60}})
    spec = MSJobSpec.model_validate(j["spec"])
    settings = GangSettings(scheduler=SCHEDULER_PLUGINS)
    group = build_podgroup(j, spec, settings)
    assert group["apiVersion"] == "scheduling.x-k8s.io/v1alpha1" and group["spec"]["scheduleTimeoutSeconds"] == 60
    p = {"metadata": {"labels": {"training.kubeflow.org/job-name": "demo"}, "annotations": {}}, "spec": {}}
    join_gang(p, spec, "Worker", settings)
    assert p["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] == "demo"
    assert p["spec"]["schedulerName"] == "scheduler-plugins-scheduler"


def test_gang_job_creates_its_podgroup_before_any_pod():
    j = npu_job(runPolicy={"schedulingPolicy": {"queue": "default"}})
    plan = reconcile(j, [], services(), NOW)
    # One plan: the PodGroup and the pods, applied in that order (the applier creates no pod when the
    # PodGroup could not be created).
    assert [g["kind"] for g in plan.create_podgroups] == ["PodGroup"] and len(plan.create_pods) == 3
    group = dict(plan.create_podgroups[0], status={"phase": "Pending"})
    plan = reconcile(j, [], services(), NOW, podgroups=[group])
    assert len(plan.create_pods) == 3 and not plan.create_podgroups
    for p in plan.create_pods:
        assert p["spec"]["schedulerName"] == "volcano"
        assert p["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == "demo"
    assert {p["metadata"]["annotations"]["volcano.sh/task-spec"] for p in plan.create_pods} == {"scheduler", "worker"}


def test_jobs_without_scheduling_policy_get_no_gang_unless_configured():
    assert not reconcile(npu_job(), [], services(), NOW).create_podgroups
    always = Config(gang=GangSettings(mode="always"))
    assert reconcile(npu_job(), [], services(), NOW, always).create_podgroups
    off = Config(gang=GangSettings(mode="always"), gang_available=False)
    assert not reconcile(npu_job(), [], services(), NOW, off).create_podgroups


def test_unschedulable_gang_shows_in_status_and_events():
    j = npu_job(runPolicy={"schedulingPolicy": {"queue": "default"}})
    unschedulable = {"type": "Unschedulable", "status": "True", "reason": "NotEnoughResources",
                     "message": "3/3 tasks in gang unschedulable"}
    group = {"metadata": {"name": "demo", "ownerReferences": owned()}, "spec": {"queue": "default"},
             "status": {"phase": "Inqueue", "conditions": [unschedulable]}}
    pending = [pod("demo", "Worker", i, phase="Pending", ready=False) for i in range(2)]
    pending.append(pod("demo", "Scheduler", 0, phase="Pending"))
    plan = reconcile(j, pending, services(), NOW, podgroups=[group])
    assert plan.status["podGroup"] == {"name": "demo", "phase": "Inqueue",
                                       "message": "NotEnoughResources: 3/3 tasks in gang unschedulable"}
    assert any(e.reason == "GangInqueue" and "queue default" in e.message for e in plan.events)


def test_finished_or_suspended_job_releases_its_gang():
    group = {"metadata": {"name": "demo", "ownerReferences": owned()}, "status": {"phase": "Running"}}
    suspended = reconcile(job(runPolicy={"suspend": True, "schedulingPolicy": {}}), gang(), services(), NOW,
                          podgroups=[group])
    assert suspended.delete_podgroups == ["demo"]
    pods = gang()
    pods[1] = pod("demo", "Worker", 0, phase="Succeeded", exit_code=0)
    done = reconcile(job(runPolicy={"schedulingPolicy": {}}), pods, services(), NOW, podgroups=[group])
    assert done.delete_podgroups == ["demo"]
