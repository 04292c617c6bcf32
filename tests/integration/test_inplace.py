"""restartStrategy InPlace against the real API server, on kwok's fake nodes: the operator's side of the
protocol, with the agents' side played by the test (``agents.FakeAgents``: real reads of the gang
ConfigMap and real report patches, as each member's agent makes them; kwok runs no process)."""

from __future__ import annotations

import copy

import pytest
from kubernetes.client import AuthorizationV1Api, CoordinationV1Api, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from ..helpers import member_report, wait_for
from .agents import FakeAgents, all_run, barrier, in_place
from .msjobs import EXIT, msjob

pytestmark = pytest.mark.cluster
TIMEOUT = 90


def inplace_job(name: str, **failure_policy) -> dict:
    return in_place(msjob(name, workers=2, failurePolicy=failure_policy))


@pytest.fixture
def agents(core, namespace):
    with FakeAgents(core, namespace) as fake:
        yield fake
    assert not fake.violations, fake.violations


def uids(jobs, name: str) -> dict:
    return {p.metadata.name: p.metadata.uid for p in jobs.pods(name)}


def wait_running(jobs, name: str, epoch: int) -> None:
    wait_for(lambda: all_run(jobs, name, epoch), timeout=TIMEOUT, message=f"{name}: all members run epoch {epoch}",
             describe=lambda: [(p.metadata.name, p.status.phase, member_report(jobs.core, p)) for p in jobs.pods(name)])
    jobs.wait_condition(name, "Running", timeout=TIMEOUT)


def test_admission_refuses_what_in_place_restarts_cannot_run(jobs):
    body = inplace_job("nocmd")
    del body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"]
    with pytest.raises(ApiException) as refused:
        jobs.create(body)
    assert "InPlace needs an explicit command in the main container" in refused.value.body
    with pytest.raises(ApiException) as refused:
        jobs.create(inplace_job("badre", rules=[{"action": "FailJob", "onOutput": "(?<=x)oom"}]))
    assert "onOutput must be a valid RE2 regular expression" in refused.value.body
    with pytest.raises(ApiException) as refused:
        jobs.create(inplace_job("longre", rules=[{"action": "FailJob", "onOutput": "x" * 257}]))
    assert "onOutput" in refused.value.body
    jobs.create(msjob("fixed", workers=1))
    with pytest.raises(ApiException) as refused:
        jobs.patch("fixed", {"spec": {"failurePolicy": {"restartStrategy": "InPlace"}}})
    assert "restartStrategy is immutable" in refused.value.body


def test_a_failed_process_restarts_every_member_in_its_own_pod(jobs, agents, kube, running_operator):
    jobs.create(inplace_job("ip"))
    jobs.wait_pods("ip", 3)
    wait_running(jobs, "ip", 0)
    first = uids(jobs, "ip")
    cm = jobs.core.read_namespaced_config_map("ip-gang", jobs.ns)
    assert cm.metadata.owner_references[0].kind == "MSJob" and cm.data == {"epoch": "0", "released": "0"}
    pod = jobs.core.read_namespaced_pod("ip-worker-0", jobs.ns)
    assert pod.spec.service_account_name == "ip-agent"
    assert pod.spec.containers[0].command[-3:] == ["--", "python", "train.py"]

    # The agents' identity: their own pods and the gang ConfigMap, nothing else (asked of the API server).
    user = f"system:serviceaccount:{jobs.ns}:ip-agent"
    review = AuthorizationV1Api(kube)

    def allowed(verb: str, resource: str, name: str = "") -> bool:
        attrs = {"namespace": jobs.ns, "verb": verb, "resource": resource, "name": name,
                 "group": "coordination.k8s.io" if resource == "leases" else ""}
        return review.create_subject_access_review(
            {"spec": {"user": user, "groups": ["system:serviceaccounts"], "resourceAttributes": attrs}}).status.allowed
    assert allowed("patch", "pods", "ip-worker-1") and allowed("watch", "configmaps", "ip-gang")
    assert not allowed("patch", "pods", "someone-else") and not allowed("get", "configmaps", "other")
    assert not allowed("delete", "pods", "ip-worker-1") and not allowed("list", "secrets")
    assert allowed("patch", "leases", "ip-worker-1-agent") and allowed("get", "leases", "ip-scheduler-0-agent")
    assert not allowed("patch", "leases", "other-agent") and not allowed("create", "leases")
    assert not allowed("delete", "leases", "ip-worker-1-agent") and not allowed("watch", "leases", "ip-worker-1-agent")
    role = RbacAuthorizationV1Api(kube).read_namespaced_role("ip-agent", jobs.ns)
    assert role.rules[0].resource_names == ["ip-scheduler-0", "ip-worker-0", "ip-worker-1"]
    # Each member's agent reports on a Lease of its own, the job's child, held by the pod it runs in.
    leases = {lease.metadata.name: lease for lease in CoordinationV1Api(kube).list_namespaced_lease(jobs.ns).items}
    for member, uid in first.items():
        lease = leases[f"{member}-agent"]
        assert lease.metadata.owner_references[0].kind == "MSJob" and lease.spec.holder_identity == uid

    agents.exit("ip-worker-1", 137, "Killed")
    wait_for(lambda: barrier(jobs, "ip") == {"epoch": 1, "released": 1}, timeout=TIMEOUT, message="epoch 1 released",
             describe=lambda: jobs.get("ip").get("status"))
    wait_running(jobs, "ip", 1)
    assert uids(jobs, "ip") == first  # the same pods
    status = jobs.get("ip")["status"]
    assert status["restartCount"] == 1 and status["backoffCount"] == 1 and status["attempt"] == 0
    assert status["lastFailure"]["pod"] == "ip-worker-1" and status["lastFailure"]["message"] == "Killed"
    restart = status["lastRestart"]
    assert (restart["strategy"], restart["epoch"], restart["member"]) == ("InPlace", 1, "ip-worker-1")
    assert restart["failureDetected"] <= restart["membersStopped"] <= restart["barrierLifted"] <= \
        restart["membersRunning"]
    for reason in ("GangStopped", "BarrierLifted", "GangRunning"):
        jobs.wait_event("ip", reason, "Normal")
    phases = [line for line in running_operator.metrics().splitlines()
              if line.startswith("msjob_restart_phase_seconds_count") and 'strategy="InPlace"' in line
              and f'namespace="{jobs.ns}"' in line]
    assert {p.split('phase="')[1].split('"')[0] for p in phases} >= {"stopped", "released", "running"}, phases

    agents.exit("ip-worker-0", 0)
    jobs.wait_condition("ip", "Succeeded", timeout=TIMEOUT)
    wait_for(lambda: jobs.core.read_namespaced_config_map("ip-gang", jobs.ns).data.get("final") == "true",
             timeout=TIMEOUT, message="the gang is final")
    wait_for(lambda: [p.metadata.name for p in jobs.pods("ip")] == ["ip-worker-0"], timeout=TIMEOUT,
             message="cleanPodPolicy Running: only worker 0 is left", describe=lambda: uids(jobs, "ip"))


def test_a_member_whose_pod_fails_or_goes_is_recreated_while_the_others_restart_in_place(jobs, agents):
    jobs.create(inplace_job("mix"))
    jobs.wait_pods("mix", 3)
    wait_running(jobs, "mix", 0)
    first = uids(jobs, "mix")
    # A pod that fails at pod level (e.g. its agent gave up on the API server): recreated; the others in place.
    jobs.annotate_pod("mix-worker-1", {EXIT: "1"})
    wait_for(lambda: barrier(jobs, "mix").get("released") == 1, timeout=TIMEOUT, message="epoch 1 released")
    wait_running(jobs, "mix", 1)
    second = uids(jobs, "mix")
    assert second["mix-worker-1"] != first["mix-worker-1"]
    assert {k: v for k, v in second.items() if k != "mix-worker-1"} == \
        {k: v for k, v in first.items() if k != "mix-worker-1"}
    assert jobs.get("mix")["status"]["lastRestart"]["recreated"] == ["mix-worker-1"]

    # During the next restart (worker 0's agent slow to stop: the barrier holds), the scheduler's pod is
    # deleted: it is recreated, no new restart begins, and the epoch is released once worker 0 stopped.
    agents.held.add("mix-worker-0")
    agents.exit("mix-worker-1", 3)
    wait_for(lambda: barrier(jobs, "mix") == {"epoch": 2, "released": 1}, timeout=TIMEOUT, message="epoch 2 moved")
    jobs.core.delete_namespaced_pod("mix-scheduler-0", jobs.ns)
    wait_for(lambda: "mix-scheduler-0" in (jobs.get("mix")["status"]["lastRestart"].get("recreated") or []),
             timeout=TIMEOUT, message="the scheduler noted as recreated")
    assert barrier(jobs, "mix") == {"epoch": 2, "released": 1}  # worker 0 still runs epoch 1
    agents.held.clear()
    wait_for(lambda: barrier(jobs, "mix").get("released") == 2, timeout=TIMEOUT, message="epoch 2 released")
    wait_running(jobs, "mix", 2)
    third = uids(jobs, "mix")
    assert third["mix-scheduler-0"] != second["mix-scheduler-0"] and third["mix-worker-0"] == first["mix-worker-0"]
    assert jobs.get("mix")["status"]["restartCount"] == 2


def test_a_restarted_operator_resumes_the_restart_it_had_begun(jobs, agents, running_operator):
    jobs.create(inplace_job("resume"))
    jobs.wait_pods("resume", 3)
    wait_running(jobs, "resume", 0)
    agents.held.add("resume-worker-0")
    agents.exit("resume-worker-1", 137)
    wait_for(lambda: barrier(jobs, "resume") == {"epoch": 1, "released": 0}, timeout=TIMEOUT, message="epoch moved")
    # The status is written before the ConfigMap in a pass: wait until the agents can see the epoch too.
    wait_for(lambda: jobs.core.read_namespaced_config_map("resume-gang", jobs.ns).data.get("epoch") == "1",
             timeout=TIMEOUT, message="the gang ConfigMap's epoch moved")
    running_operator.kill()  # between moving the epoch and lifting the barrier
    try:
        agents.held.clear()  # the agent acknowledges while no operator runs
        wait_for(lambda: member_report(jobs.core, jobs.core.read_namespaced_pod("resume-worker-0",
                                                                                 jobs.ns))["epoch"] == 1,
                 timeout=TIMEOUT, message="worker 0 acknowledged")
        assert barrier(jobs, "resume") == {"epoch": 1, "released": 0}
    finally:
        running_operator.start()
    wait_for(lambda: barrier(jobs, "resume").get("released") == 1, timeout=TIMEOUT, message="epoch 1 released")
    wait_running(jobs, "resume", 1)
    assert jobs.get("resume")["status"]["restartCount"] == 1  # the same restart, not another


def test_an_output_rule_fails_the_job_and_keeps_the_failed_member(jobs, agents):
    jobs.create(inplace_job("oom", rules=[{"name": "oom", "action": "FailJob", "onOutput": "(?i)out of memory"}]))
    jobs.wait_pods("oom", 3)
    wait_running(jobs, "oom", 0)
    agents.exit("oom-worker-1", 1, "RuntimeError: CUDA out of memory")
    failed = jobs.wait_condition("oom", "Failed", timeout=TIMEOUT)
    assert "(oom)" in failed["message"] and "out of memory" in failed["message"]
    # Its agent is told the job has ended and exits with the process's code: the pod ends Failed and stays.
    wait_for(lambda: [(p.metadata.name, p.status.phase) for p in jobs.pods("oom")] == [("oom-worker-1", "Failed")],
             timeout=TIMEOUT, message="only the failed member is left, Failed",
             describe=lambda: [(p.metadata.name, p.status.phase) for p in jobs.pods("oom")])


def test_output_rules_read_the_termination_message_of_recreate_jobs(jobs):
    body = msjob("hccl", workers=2, runPolicy={"backoffLimit": 0})
    body["spec"]["failurePolicy"] = {"rules": [{"action": "RestartJobIgnoreBudget", "onOutput": "HCCL.*timeout"}]}
    jobs.create(copy.deepcopy(body))
    jobs.wait_pods("hccl", 3)
    # kwok writes no termination message: the status is patched as a kubelet would write it.
    pod = jobs.core.read_namespaced_pod("hccl-worker-1", jobs.ns)
    terminated = {"exitCode": 1, "reason": "Error", "message": "EI0006: HCCL timeout on ring 0"}
    container = {"name": "mindspore", "image": pod.spec.containers[0].image, "imageID": "", "ready": False,
                 "restartCount": 0, "state": {"terminated": terminated}}
    jobs.core.patch_namespaced_pod_status("hccl-worker-1", jobs.ns,
                                          {"status": {"phase": "Failed", "containerStatuses": [container]}})
    jobs.wait_pods("hccl", 3, attempt=1, timeout=TIMEOUT)
    status = jobs.get("hccl")["status"]
    assert status["restartCount"] == 1 and not status.get("backoffCount")  # the rule's action: not counted
    assert status["lastRestart"]["strategy"] == "Recreate"
