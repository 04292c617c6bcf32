"""restartStrategy InPlace in the pure reconcile: the gang ConfigMap, the agent in each member, the epoch a
failure moves, the barrier the agents' acknowledgements lift, and the fallbacks (members recreated)."""

from __future__ import annotations

import datetime as dt
import json

from msjob_operator.builders.runtime import AGENT_SCRIPT_PATH, INSTALL_CONTAINER
from msjob_operator.reconcile.plan import reconcile
from msjob_runtime import agent_protocol as ap

from .jobs import NOW, condition, gang, is_true, job, owned, pod, services

INPLACE = {"restartStrategy": "InPlace"}
GANG = "demo-gang"


def inplace_job(status=None, **failure_policy) -> dict:
    return job(status=status, failurePolicy={**INPLACE, **failure_policy})


def reported(p: dict, epoch: int, state: str, code=None, output="") -> dict:
    report = ap.agent_report(epoch, state, exit_code=code, output=output,
                             started_at=NOW - dt.timedelta(seconds=30), finished_at=NOW - dt.timedelta(seconds=1)
                             if state in (ap.EXITED, ap.STOPPED) else None, pid=100)
    p["metadata"].setdefault("annotations", {})[ap.AGENT_ANNOTATION] = json.dumps(report)
    return p


def gang_cm(epoch: int, released: int, final: bool = False) -> dict:
    return {"metadata": {"name": GANG, "namespace": "ns", "ownerReferences": owned(), "resourceVersion": "7"},
            "data": ap.gang_data(epoch, released, final)}


def running_status(epoch=0, released=0, **extra) -> dict:
    status = {"restartCount": 0, "startTime": "2026-11-22T11:50:00Z", "attemptStartTime": "2026-11-22T11:50:00Z",
              "worldSize": 2, "attempt": 0, "gang": {"epoch": epoch, "released": released},
              "conditions": [{"type": "Created", "status": "True", "reason": "MSJobCreated", "message": "x"},
                             {"type": "Running", "status": "True", "reason": "MSJobRunning", "message": "x"}]}
    status.update(extra)
    return status


def members(states: list[tuple[str, int | None]], epoch: int = 0, output: str = "") -> list[dict]:
    """The gang (scheduler, worker 0, worker 1) with each agent's state and exit code at ``epoch``."""
    return [reported(p, epoch, state, code, output if code else "") for p, (state, code) in zip(gang(), states,
                                                                                                  strict=True)]


RUNNING3 = [(ap.RUNNING, None)] * 3


def created_leases(plan) -> list[dict]:
    return [o for o in plan.create_objects if o["kind"] == "Lease"]


def written_gang(plan) -> dict | None:
    found = [c for c in plan.apply_configmaps if c["metadata"]["name"] == GANG]
    return found[0]["data"] if found else None


def test_new_members_run_under_the_agent_with_their_identity_and_the_gang_first():
    plan = reconcile(inplace_job(), [], services(), NOW)
    assert plan.status["gang"] == {"epoch": 0, "released": 0}
    assert written_gang(plan) == {"epoch": "0", "released": "0"}  # before the pods (a prerequisite)
    cm = plan.apply_configmaps[0]
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "job-uid" and cm["metadata"]["labels"]
    assert [(o["kind"], o["metadata"]["name"]) for o in plan.create_objects if o["kind"] != "Lease"] == [
        ("ServiceAccount", "demo-agent")]
    role, binding = plan.apply_objects
    assert (role["kind"], binding["kind"]) == ("Role", "RoleBinding")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"],
         "resourceNames": ["demo-scheduler-0", "demo-worker-0", "demo-worker-1"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"], "resourceNames": [GANG]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "patch"],
         "resourceNames": ["demo-scheduler-0-agent", "demo-worker-0-agent", "demo-worker-1-agent"]}]
    # Each member's Lease, for its agent's reports: a prerequisite, so it exists before the pod.
    leases = created_leases(plan)
    assert [lease["metadata"]["name"] for lease in leases] == [
        "demo-scheduler-0-agent", "demo-worker-0-agent", "demo-worker-1-agent"]
    assert all(lease["kind"] == "Lease" and lease["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
               and lease["metadata"]["labels"] for lease in leases)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-agent", "namespace": "ns"}]
    for created in plan.create_pods:
        spec = created["spec"]
        main = spec["containers"][0]
        assert main["command"] == ["python3", AGENT_SCRIPT_PATH, "--grace-seconds", "25", "--", "python", "train.py"]
        env = {e["name"]: e for e in main["env"]}
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
        assert env["MSJOB_NAME"]["value"] == "demo"
        assert "PYTHONPATH" not in env  # the image's own stays in force
        assert spec["initContainers"][0]["name"] == INSTALL_CONTAINER
        assert spec["serviceAccountName"] == "demo-agent"


def test_the_template_s_service_account_is_kept_and_bound():
    body = inplace_job()
    for replica in body["spec"]["msReplicaSpecs"].values():
        replica["template"]["spec"]["serviceAccountName"] = "trainer"
    plan = reconcile(body, [], services(), NOW)
    assert not [o for o in plan.create_objects if o["kind"] != "Lease"]  # no ServiceAccount of ours
    assert plan.apply_objects[1]["subjects"] == [{"kind": "ServiceAccount", "name": "trainer", "namespace": "ns"}]
    assert {p["spec"]["serviceAccountName"] for p in plan.create_pods} == {"trainer"}


def test_running_means_every_member_s_process_runs():
    started = running_status()
    started["conditions"] = started["conditions"][:1]
    plan = reconcile(inplace_job(status=started), gang(), services(), NOW, configmaps=[gang_cm(0, 0)])
    assert not is_true(plan.status["conditions"], "Running")  # pods run, the agents have not reported yet
    assert written_gang(plan) is None  # the observed ConfigMap says what the status says: nothing to write
    plan = reconcile(inplace_job(status=started), members(RUNNING3), services(), NOW, configmaps=[gang_cm(0, 0)])
    assert is_true(plan.status["conditions"], "Running")


def test_a_failed_process_moves_the_epoch_and_no_pod_is_touched():
    pods = members([(ap.RUNNING, None), (ap.RUNNING, None), (ap.EXITED, 137)], output="killed\nbye")
    plan = reconcile(inplace_job(status=running_status()), pods, services(), NOW, configmaps=[gang_cm(0, 0)])
    assert plan.status["gang"] == {"epoch": 1, "released": 0}
    assert written_gang(plan) == {"epoch": "1", "released": "0"}
    assert not plan.delete_pods and not plan.create_pods
    status = plan.status
    assert status["restartCount"] == 1 and status["backoffCount"] == 1 and status.get("attempt", 0) == 0
    assert status["lastFailure"]["pod"] == "demo-worker-1" and status["lastFailure"]["exitCode"] == 137
    assert status["lastFailure"]["message"] == "killed\nbye"
    restart = status["lastRestart"]
    assert (restart["strategy"], restart["epoch"], restart["member"], restart["reason"]) == (
        "InPlace", 1, "demo-worker-1", "MemberFailed")
    assert restart["failureDetected"] == "2026-11-22T12:00:00.000Z"
    assert is_true(status["conditions"], "Restarting") and not is_true(status["conditions"], "Running")
    assert "restarting every member in place (epoch 1)" in plan.events[0].message
    assert "restarted:MemberFailed" in plan.transitions


def restarting_status(**extra) -> dict:
    status = running_status(epoch=1, released=0, restartCount=1, backoffCount=1, consecutiveRestarts=1,
                            lastRestart={"strategy": "InPlace", "epoch": 1, "member": "demo-worker-1",
                                         "failureDetected": "2026-11-22T11:59:59.000Z"})
    status["conditions"] = [status["conditions"][0],
                            {"type": "Running", "status": "False", "reason": "MemberFailed", "message": "x"},
                            {"type": "Restarting", "status": "True", "reason": "MemberFailed", "message": "x"}]
    status.update(extra)
    return status


def test_the_barrier_waits_for_every_member_then_releases_the_epoch():
    cms = [gang_cm(1, 0)]
    # Worker 0 still runs epoch 0; the scheduler only waits at epoch 0 (it may still start it): no release.
    pods = [reported(gang()[0], 0, ap.WAITING), reported(gang()[1], 0, ap.RUNNING),
            reported(gang()[2], 0, ap.EXITED, 137)]
    plan = reconcile(inplace_job(status=restarting_status()), pods, services(), NOW, configmaps=cms)
    assert plan.status["gang"] == {"epoch": 1, "released": 0} and written_gang(plan) is None
    assert "membersStopped" not in plan.status["lastRestart"] and not plan.delete_pods

    pods = [reported(gang()[0], 1, ap.WAITING), reported(gang()[1], 0, ap.STOPPED, 143),
            reported(gang()[2], 0, ap.EXITED, 137)]
    plan = reconcile(inplace_job(status=restarting_status()), pods, services(), NOW, configmaps=cms)
    assert plan.status["gang"] == {"epoch": 1, "released": 1}
    assert written_gang(plan) == {"epoch": "1", "released": "1"}
    restart = plan.status["lastRestart"]
    assert restart["membersStopped"] == restart["barrierLifted"] == "2026-11-22T12:00:00.000Z"
    assert "restart-phase:InPlace:stopped:1.000" in plan.transitions
    assert "restart-phase:InPlace:released:1.000" in plan.transitions
    assert {e.reason for e in plan.events} >= {"GangStopped", "BarrierLifted"}
    assert is_true(plan.status["conditions"], "Restarting")  # until the processes run again

    after = restarting_status(gang={"epoch": 1, "released": 1},
                              lastRestart={**restart})
    plan = reconcile(inplace_job(status=after), members(RUNNING3, epoch=1), services(), NOW, configmaps=[gang_cm(1, 1)])
    assert is_true(plan.status["conditions"], "Running") and not is_true(plan.status["conditions"], "Restarting")
    assert plan.status["lastRestart"]["membersRunning"] == "2026-11-22T12:00:00.000Z"
    assert "restart-phase:InPlace:running:1.000" in plan.transitions


def on_leases(pods: list[dict], holders: dict[str, str] | None = None) -> tuple[list[dict], list[dict]]:
    """The members' reports moved from their pods onto their Leases, held by each pod (or by ``holders``'
    UID for that member), as agents write them."""
    bare, leases = [], []
    for number, p in enumerate(pods):
        p = json.loads(json.dumps(p))
        name, report = p["metadata"]["name"], p["metadata"].pop("annotations", {}).pop(ap.AGENT_ANNOTATION, None)
        bare.append(p)
        leases.append({"metadata": {"name": ap.member_lease_name(name), "namespace": "ns", "ownerReferences": owned(),
                                    "resourceVersion": str(50 + number),
                                    "annotations": {ap.AGENT_ANNOTATION: report} if report else {}},
                       "spec": {"holderIdentity": (holders or {}).get(name, p["metadata"]["uid"])}})
    return bare, leases


def test_reports_on_the_members_leases_move_the_epoch_and_lift_the_barrier():
    pods, leases = on_leases(members([(ap.RUNNING, None), (ap.RUNNING, None), (ap.EXITED, 137)]))
    plan = reconcile(inplace_job(status=running_status()), pods, services(), NOW, configmaps=[gang_cm(0, 0)],
                     leases=leases)
    assert plan.status["gang"] == {"epoch": 1, "released": 0} and not created_leases(plan)  # they all exist
    assert plan.status["lastFailure"]["pod"] == "demo-worker-1" and not plan.delete_pods

    acks = [reported(gang()[0], 1, ap.WAITING), reported(gang()[1], 1, ap.WAITING),
            reported(gang()[2], 0, ap.EXITED, 137)]
    # Worker 0's acknowledgement is held by an earlier pod of that member: it says nothing of this one.
    pods, leases = on_leases(acks, holders={"demo-worker-0": "uid-of-an-earlier-pod"})
    plan = reconcile(inplace_job(status=restarting_status()), pods, services(), NOW, configmaps=[gang_cm(1, 0)],
                     leases=leases)
    assert plan.status["gang"] == {"epoch": 1, "released": 0}
    pods, leases = on_leases(acks)
    plan = reconcile(inplace_job(status=restarting_status()), pods, services(), NOW, configmaps=[gang_cm(1, 0)],
                     leases=leases)
    assert plan.status["gang"] == {"epoch": 1, "released": 1}
    assert written_gang(plan) == {"epoch": "1", "released": "1"}


def test_a_missing_lease_is_created_again_until_the_job_has_ended():
    pods, leases = on_leases(members(RUNNING3))
    plan = reconcile(inplace_job(status=running_status()), pods, services(), NOW, configmaps=[gang_cm(0, 0)],
                     leases=[leases[0], leases[2]])  # worker 0's deleted by hand
    assert [lease["metadata"]["name"] for lease in created_leases(plan)] == ["demo-worker-0-agent"]
    ended = running_status(gang={"epoch": 0, "released": 0, "final": True})
    plan = reconcile(inplace_job(status=ended), pods, services(), NOW, configmaps=[gang_cm(0, 0, final=True)],
                     leases=[leases[0]])
    assert not created_leases(plan)


def test_a_restarted_operator_writes_the_epoch_it_had_decided():
    """The status says epoch 1; the ConfigMap still says 0 (the operator died between the two writes)."""
    pods = members([(ap.RUNNING, None), (ap.RUNNING, None), (ap.EXITED, 137)])
    plan = reconcile(inplace_job(status=restarting_status()), pods, services(), NOW, configmaps=[gang_cm(0, 0)])
    assert written_gang(plan) == {"epoch": "1", "released": "0"}
    assert plan.status["restartCount"] == 1  # the same restart, not a new one


def test_a_member_that_failed_at_pod_level_is_recreated_while_the_others_restart_in_place():
    pods = members(RUNNING3)
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=137, reason="Error")  # e.g. the agent gave up
    plan = reconcile(inplace_job(status=running_status()), pods, services(), NOW, configmaps=[gang_cm(0, 0)])
    assert plan.status["gang"] == {"epoch": 1, "released": 0}
    assert [d.name for d in plan.delete_pods] == ["demo-worker-1"]
    assert plan.status["lastRestart"]["recreated"] == ["demo-worker-1"]
    assert any(e.reason == "MemberRecreated" for e in plan.events)

    # Gone: created again (its agent waits at the barrier), and the others' acknowledgements lift it.
    pods = [reported(gang()[0], 0, ap.STOPPED, 143), reported(gang()[1], 1, ap.WAITING)]
    status = restarting_status(handledFailures=["uid-demo-worker-1-0"])
    plan = reconcile(inplace_job(status=status), pods, services(), NOW, configmaps=[gang_cm(1, 0)])
    assert [p["metadata"]["name"] for p in plan.create_pods] == ["demo-worker-1"]
    assert plan.status["gang"]["released"] == 1


def test_a_pod_deleted_during_a_restart_is_recreated_and_no_new_restart_begins():
    pods = [reported(gang()[0], 1, ap.WAITING), reported(gang()[1], 0, ap.RUNNING),
            reported(pod("demo", "Worker", 1, deleting=True), 0, ap.STOPPED, 143)]
    plan = reconcile(inplace_job(status=restarting_status()), pods, services(), NOW, configmaps=[gang_cm(1, 0)])
    assert plan.status["gang"] == {"epoch": 1, "released": 0} and plan.status["restartCount"] == 1
    assert "uid-demo-worker-1-0" in plan.status["handledFailures"]
    assert plan.status["lastRestart"]["recreated"] == ["demo-worker-1"]


def test_an_agent_that_does_not_acknowledge_in_time_loses_its_pod():
    status = restarting_status()
    status["lastRestart"]["failureDetected"] = "2026-11-22T11:58:00.000Z"  # 120 s > 30 s grace + 30 s
    pods = [reported(gang()[0], 1, ap.WAITING), reported(gang()[1], 0, ap.RUNNING),
            reported(gang()[2], 0, ap.EXITED, 137)]
    plan = reconcile(inplace_job(status=status), pods, services(), NOW, configmaps=[gang_cm(1, 0)])
    assert [d.name for d in plan.delete_pods] == ["demo-worker-0"]
    assert plan.status["gang"]["released"] == 0


def test_restarts_in_a_row_hold_the_barrier_for_the_backoff():
    pods = members([(ap.RUNNING, None), (ap.RUNNING, None), (ap.EXITED, 1)])
    status = running_status(consecutiveRestarts=2, restartCount=2, backoffCount=2)
    body = inplace_job(status=status)
    body["spec"]["runPolicy"] = {"backoffLimit": 5}
    plan = reconcile(body, pods, services(), NOW, configmaps=[gang_cm(0, 0)])
    assert plan.status["gang"]["releaseAt"] == "2026-11-22T12:00:20Z"  # 3rd in a row: 20 s
    # Every member stopped at once: still held until then.
    pods = [reported(p, 0, ap.STOPPED, 143) for p in gang()]
    plan = reconcile(body | {"status": plan.status}, pods, services(), NOW + dt.timedelta(seconds=5),
                     configmaps=[gang_cm(1, 0)])
    assert plan.status["gang"]["released"] == 0 and 14 < plan.requeue_after <= 15
    assert plan.status["lastRestart"]["membersStopped"]
    plan = reconcile(body | {"status": plan.status}, pods, services(), NOW + dt.timedelta(seconds=21),
                     configmaps=[gang_cm(1, 0)])
    assert plan.status["gang"] == {"epoch": 1, "released": 1}


def test_an_output_rule_fails_the_job_and_the_agents_are_told_to_exit():
    rules = [{"action": "FailJob", "onOutput": "(?i)out of memory", "name": "oom"}]
    pods = members([(ap.RUNNING, None), (ap.EXITED, 1), (ap.RUNNING, None)], output="RuntimeError: Out of memory")
    plan = reconcile(inplace_job(status=running_status(), rules=rules), pods, services(), NOW,
                     configmaps=[gang_cm(0, 0)])
    failed = condition(plan.status["conditions"], "Failed")
    assert failed["status"] == "True" and "(oom)" in failed["message"] and "Out of memory" in failed["message"]
    # cleanPodPolicy Running: the running members go; the failed one ends by itself (its agent exits with its code).
    assert sorted(d.name for d in plan.delete_pods) == ["demo-scheduler-0", "demo-worker-1"]
    # The agents are told once the clean-up is under way (told first, they would end their pods before).
    assert "final" not in plan.status["gang"] and written_gang(plan) is None
    going = [reported(pod("demo", rtype, index, deleting=True), 0, ap.RUNNING)
             for rtype, index in (("Scheduler", 0), ("Worker", 1))]
    plan = reconcile(inplace_job(status=plan.status, rules=rules), [*going, pods[1]], services(), NOW,
                     configmaps=[gang_cm(0, 0)])
    assert plan.status["gang"]["final"] is True
    assert written_gang(plan) == {"epoch": "0", "released": "0", "final": "true"}


def test_an_output_rule_that_does_not_match_leaves_the_decision_to_the_restart_policy():
    rules = [{"action": "FailJob", "onOutput": "out of memory"}]
    pods = members([(ap.RUNNING, None), (ap.EXITED, 1), (ap.RUNNING, None)], output="HCCL timeout")
    plan = reconcile(inplace_job(status=running_status(), rules=rules), pods, services(), NOW,
                     configmaps=[gang_cm(0, 0)])
    assert plan.status["gang"]["epoch"] == 1


def test_output_rules_apply_to_recreate_jobs_through_the_termination_message():
    rules = [{"action": "RestartJobIgnoreBudget", "onOutput": "HCCL.*timed? ?out", "name": "hccl"}]
    body = job(status=running_status(), failurePolicy={"rules": rules}, runPolicy={"backoffLimit": 0})
    pods = gang()
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=1, message="EI0006: HCCL op timed out")
    plan = reconcile(body, pods, services(), NOW)
    assert plan.status["attempt"] == 1 and not plan.status.get("backoffCount")  # restarted, not counted
    assert plan.status["lastRestart"]["strategy"] == "Recreate" and plan.status["lastRestart"]["attempt"] == 1
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=1, message="segfault")
    plan = reconcile(body, pods, services(), NOW)
    assert is_true(plan.status["conditions"], "Failed")  # no match: OnFailure, and backoffLimit 0 is spent


def test_a_scheduler_failure_under_recovery_recreates_the_scheduler_alone():
    body = inplace_job(status=running_status())
    body["spec"]["mindspore"] = {"enableRecovery": True}
    pods = members([(ap.EXITED, 1), (ap.RUNNING, None), (ap.RUNNING, None)])
    plan = reconcile(body, pods, services(), NOW, configmaps=[gang_cm(0, 0)])
    assert plan.status["gang"] == {"epoch": 0, "released": 0}
    assert [d.name for d in plan.delete_pods] == ["demo-scheduler-0"]
    assert plan.status["replicaStatuses"]["Scheduler"]["restarts"] == 1


def test_a_spent_budget_fails_the_job_and_the_agents_end_with_it():
    body = inplace_job(status=running_status())
    body["spec"]["runPolicy"] = {"backoffLimit": 0}
    pods = members([(ap.RUNNING, None), (ap.RUNNING, None), (ap.EXITED, 2)])
    plan = reconcile(body, pods, services(), NOW, configmaps=[gang_cm(0, 0)])
    assert condition(plan.status["conditions"], "Failed")["reason"] == "BackoffLimitExceeded"
    body["spec"]["runPolicy"]["cleanPodPolicy"] = "None"  # nothing to clean: the agents are told at once
    plan = reconcile(body | {"status": plan.status}, pods, services(), NOW, configmaps=[gang_cm(0, 0)])
    assert written_gang(plan)["final"] == "true" and not plan.delete_pods


def test_recreate_restarts_record_their_phases_too():
    status = running_status(attempt=1, lastRestart={"strategy": "Recreate", "attempt": 1,
                                                    "failureDetected": "2026-11-22T11:59:58.500Z"})
    status.pop("gang")
    old = gang(attempt=0)
    plan = reconcile(job(status=status), old, services(), NOW)
    assert "membersStopped" not in plan.status["lastRestart"]  # the old gang is still there
    plan = reconcile(job(status=status), gang(attempt=1), services(), NOW)
    restart = plan.status["lastRestart"]
    assert restart["membersStopped"] and restart["membersRunning"] == "2026-11-22T12:00:00.000Z"
    assert "restart-phase:Recreate:running:1.500" in plan.transitions


def test_a_stored_job_without_command_falls_back_to_recreate_with_an_event():
    """Admission refuses it; a job stored before that rule still runs, by Recreate, and says why."""
    body = inplace_job()
    del body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"]
    plan = reconcile(body, [], services(), NOW)
    assert plan.create_pods and all("initContainers" not in p["spec"] for p in plan.create_pods)
    assert any(e.reason == "InPlaceUnavailable" and "Worker template's main container has no command" in e.message
               for e in plan.events)
    assert "gang" not in plan.status and not plan.apply_configmaps


RUNC_NO_PYTHON = ('failed to create containerd task: failed to create shim task: OCI runtime create failed: '
                  'runc create failed: unable to start container process: exec: "python3": executable file not '
                  'found in $PATH')


def test_an_image_without_python3_falls_back_to_recreate_uncounted_and_for_good():
    """The agent cannot start (the runtime's StartError names python3): a new gang without the agent,
    not counted and without backoff, and every later gang of the job too."""
    pods = members(RUNNING3)
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=128, reason="StartError", message=RUNC_NO_PYTHON)
    plan = reconcile(inplace_job(status=running_status()), pods, services(), NOW, configmaps=[gang_cm(0, 0)])
    status = plan.status
    assert status["attempt"] == 1 and status["restartCount"] == 1  # RESTARTS counts every restart
    assert not status.get("backoffCount") and not status.get("consecutiveRestarts")  # no budget, no backoff
    assert status["attemptStartTime"] == "2026-11-22T12:00:00Z"  # the new gang is due at once
    assert "has no python3" in status["gang"]["fallback"] and "Worker 1" in status["gang"]["fallback"]
    assert status["gang"]["epoch"] == 0  # no epoch moved: the pods go
    assert sorted(d.name for d in plan.delete_pods) == ["demo-scheduler-0", "demo-worker-0", "demo-worker-1"]
    assert status["lastFailure"]["reason"] == "StartError" and status["lastFailure"]["exitCode"] == 128
    restart = next(e for e in plan.events if e.reason == "InPlaceUnavailable")
    assert "falls back to Recreate" in restart.message and "demo-worker-1 has no python3" in restart.message
    assert not is_true(status["conditions"], "Running") and is_true(status["conditions"], "Restarting")

    # The new gang has no agent, and a later process failure restarts it by Recreate.
    later = {**status, "conditions": running_status()["conditions"]}
    plan = reconcile(inplace_job(status=later), [], services(), NOW)
    assert len(plan.create_pods) == 3
    for created in plan.create_pods:
        assert created["spec"]["containers"][0]["command"] == ["python", "train.py"]
        assert "initContainers" not in created["spec"]
    failed = gang(attempt=1)
    failed[1] = pod("demo", "Worker", 0, attempt=1, phase="Failed", exit_code=1)
    body = inplace_job(status=later)
    body["spec"]["msReplicaSpecs"]["Worker"]["restartPolicy"] = "OnFailure"
    plan = reconcile(body, failed, services(), NOW)
    assert plan.status["gang"] == status["gang"]  # no epoch: a Recreate restart of attempt 2
    assert plan.status["lastRestart"]["strategy"] == "Recreate" and plan.status["attempt"] == 2
    assert plan.status["backoffCount"] == 1

def test_other_start_errors_are_ordinary_failures():
    pods = members(RUNNING3)
    pods[2] = pod("demo", "Worker", 1, phase="Failed", exit_code=128, reason="StartError",
                  message='exec: "train.sh": executable file not found in $PATH')
    plan = reconcile(inplace_job(status=running_status()), pods, services(), NOW, configmaps=[gang_cm(0, 0)])
    assert "fallback" not in plan.status["gang"]
    assert not any(e.reason == "InPlaceUnavailable" for e in plan.events)
    # Handled as any member failing at pod level: recreated while the others restart in place.
    assert plan.status["gang"] == {"epoch": 1, "released": 0}
    assert [d.name for d in plan.delete_pods] == ["demo-worker-1"]
    assert plan.status["lastFailure"]["reason"] == "StartError" and plan.status["lastFailure"]["exitCode"] == 128
