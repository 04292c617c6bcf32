"""The operator against the real API server, controller-manager, scheduler and kwok nodes."""


import pytest

from msjob_operator.api import naming

from ..helpers import wait_for
from .msjobs import EXIT, msjob

pytestmark = pytest.mark.cluster
MISMATCHES = "msjob_status_write_mismatches_total"


@pytest.fixture(scope="module", autouse=True)
def status_writes_are_exact(operator):
    """After every status write of these tests, the server's status equals the one the pass computed
    (the operator compares its plan with each write's response and counts any difference)."""
    yield
    if operator.proc is not None and operator.proc.poll() is None:
        count = next((float(line.split()[-1]) for line in operator.metrics().splitlines()
                      if line.startswith(MISMATCHES + " ")), None)
        assert count == 0.0, f"{MISMATCHES} = {count}; see {operator.log_path}"


def env_of(pod) -> dict:
    container = next(c for c in pod.spec.containers if c.name == "mindspore")
    return {e.name: (e.value if e.value is not None else e.value_from.field_ref.field_path) for e in container.env}


def test_job_creates_pods_services_and_env_then_succeeds(jobs):
    jobs.create(msjob("train", workers=3, ps=1))
    pods = jobs.wait_pods("train", 5)
    assert [p.metadata.name for p in pods] == [
        "train-ps-0", "train-scheduler-0", "train-worker-0", "train-worker-1", "train-worker-2"]
    services = {s.metadata.name: s for s in jobs.services("train")}
    assert set(services) == {"train", "train-scheduler"}
    cluster_ip = services["train-scheduler"].spec.cluster_ip
    assert services["train"].spec.cluster_ip == "None"

    worker = env_of(pods[3])
    assert worker["MS_ROLE"] == "MS_WORKER" and worker["MS_NODE_ID"] == "worker-1"  # named beside a PS
    assert worker["MS_SCHED_HOST"] == cluster_ip and worker["MS_SCHED_PORT"] == "2222"
    assert worker["MS_WORKER_NUM"] == "3" and worker["MS_SERVER_NUM"] == "1"
    assert env_of(pods[1])["MS_SCHED_HOST"] == "status.podIP"
    assert env_of(pods[0])["MS_ROLE"] == "MS_PSERVER" and env_of(pods[0])["MS_NODE_ID"] == "ps-0"
    for pod in pods:
        assert pod.metadata.owner_references[0].kind == "MSJob"
        assert pod.metadata.labels[naming.OPERATOR_NAME_LABEL] == "msjob-operator"
        assert pod.metadata.labels["app"] == "msjob-test"  # the template's labels are kept
        assert pod.spec.hostname == pod.metadata.name and pod.spec.subdomain == "train"

    jobs.wait_condition("train", "Running")
    status = jobs.get("train")["status"]
    assert status["state"] == "Running" and status["workers"] == "3/3"
    assert status["replicaStatuses"]["Worker"]["active"] == 3

    jobs.annotate_pod("train-worker-0", {EXIT: "0"})
    done = jobs.wait_condition("train", "Succeeded")
    assert "worker 0 succeeded" in done["message"]
    # cleanPodPolicy Running: every pod still running is stopped.
    wait_for(lambda: [p.metadata.name for p in jobs.pods("train")] == ["train-worker-0"],
             timeout=60, message="only the succeeded worker remains",
             describe=lambda: [p.metadata.name for p in jobs.pods("train")])
    status = jobs.get("train")["status"]
    assert status["state"] == "Succeeded" and status["completionTime"]
    for reason in ("MSJobCreated", "MSJobRunning", "MSJobSucceeded"):
        jobs.wait_event("train", reason, "Normal")


def test_member_failure_restarts_the_whole_gang(jobs):
    jobs.create(msjob("gang", workers=2))
    first = {p.metadata.name: p.metadata.uid for p in jobs.wait_pods("gang", 3)}
    jobs.annotate_pod("gang-worker-1", {EXIT: "137"})
    # Restarting=True may be over before a poll sees it: check what it leaves behind instead.
    new = jobs.wait_pods("gang", 3, attempt=1)
    assert {p.metadata.name for p in new} == set(first)
    assert all(p.metadata.uid != first[p.metadata.name] for p in new)  # every member is new
    jobs.wait_condition("gang", "Running")
    status = jobs.get("gang")["status"]
    assert status["restartCount"] == 1 and status["backoffCount"] == 1
    assert status["lastFailure"]["pod"] == "gang-worker-1" and status["lastFailure"]["exitCode"] == 137
    restarting = jobs.condition("gang", "Restarting")
    assert restarting["status"] == "False" and restarting["reason"] == "MSJobRestarted"
    jobs.wait_event("gang", "MemberFailed", "Warning")


def test_budget_exhausted_fails_and_names_the_member(jobs):
    jobs.create(msjob("budget", workers=2, runPolicy={"backoffLimit": 0}))
    jobs.wait_pods("budget", 3)
    jobs.annotate_pod("budget-worker-0", {EXIT: "3"})
    failed = jobs.wait_condition("budget", "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "budget-worker-0" in failed["message"] and "exit code 3" in failed["message"]
    # Every member still running stops; the failed one is kept for its logs.
    wait_for(lambda: [p.metadata.name for p in jobs.pods("budget")] == ["budget-worker-0"], timeout=60,
             message="only the failed worker remains", describe=lambda: [p.metadata.name for p in jobs.pods("budget")])
    jobs.wait_event("budget", "BackoffLimitExceeded", "Warning")


def test_evicted_member_restarts_without_using_the_budget(jobs):
    jobs.create(msjob("evict", workers=1, runPolicy={"backoffLimit": 0}))
    jobs.wait_pods("evict", 2)
    jobs.annotate_pod("evict-worker-0", {"kwok.msjob.test/evict": "true"})
    jobs.wait_pods("evict", 2, attempt=1)
    status = jobs.get("evict")["status"]
    assert status["restartCount"] == 1 and not status.get("backoffCount")


def test_startup_deadline_names_the_stuck_pods(jobs):
    jobs.create(msjob("stuck", workers=2, worker_annotations={"kwok.msjob.test/pending": "true"},
                      failurePolicy={"startupDeadlineSeconds": 3}))
    failed = jobs.wait_condition("stuck", "Failed", timeout=60)
    assert failed["reason"] == "StartupDeadlineExceeded"
    assert "stuck-worker-0" in failed["message"]


def test_active_deadline(jobs):
    jobs.create(msjob("deadline", workers=1, runPolicy={"activeDeadlineSeconds": 3}))
    failed = jobs.wait_condition("deadline", "Failed", timeout=60)
    assert failed["reason"] == "DeadlineExceeded"
    wait_for(lambda: not jobs.pods("deadline"), timeout=60, message="pods removed after the deadline")


def test_suspend_holds_no_pods_and_resume_recreates_them(jobs):
    jobs.create(msjob("pause", workers=2))
    jobs.wait_pods("pause", 3)
    jobs.patch("pause", {"spec": {"runPolicy": {"suspend": True}}})
    jobs.wait_condition("pause", "Suspended")
    wait_for(lambda: not jobs.pods("pause"), timeout=60, message="suspended job holds no pods")
    assert jobs.get("pause")["status"]["state"] == "Suspended"
    jobs.patch("pause", {"spec": {"runPolicy": {"suspend": False}}})
    jobs.wait_pods("pause", 3)
    jobs.wait_condition("pause", "Running")
    assert jobs.condition("pause", "Suspended")["status"] == "False"


def test_resume_restarts_the_active_deadline_clock(jobs):
    """startTime goes while the job is suspended and is set again on resume (the active deadline
    counts from the admission), with no stale value left on the server."""
    jobs.create(msjob("clock", workers=1))
    jobs.wait_condition("clock", "Running")
    first = jobs.get("clock")["status"]["startTime"]
    jobs.patch("clock", {"spec": {"runPolicy": {"suspend": True}}})
    jobs.wait_condition("clock", "Suspended")
    wait_for(lambda: "startTime" not in jobs.get("clock")["status"], timeout=30, message="startTime removed")
    jobs.patch("clock", {"spec": {"runPolicy": {"suspend": False}}})
    jobs.wait_condition("clock", "Running")
    status = jobs.get("clock")["status"]
    resumed = jobs.condition("clock", "Suspended")
    assert resumed["status"] == "False" and resumed["reason"] == "MSJobResumed"
    # Set by the pass that resumed the job, not kept from the first run.
    assert status["startTime"] == resumed["lastTransitionTime"] >= first


def test_last_failure_of_another_kind_keeps_no_stale_field(jobs):
    jobs.create(msjob("twice", workers=2))
    jobs.wait_condition("twice", "Running")
    jobs.annotate_pod("twice-worker-1", {EXIT: "3"})
    wait_for(lambda: (jobs.get("twice")["status"].get("lastFailure") or {}).get("exitCode") == 3, timeout=30,
             message="the first failure recorded")
    jobs.wait_pods("twice", 3, attempt=1)
    jobs.wait_condition("twice", "Running")
    jobs.core.delete_namespaced_pod("twice-worker-0", jobs.ns)  # by hand: no exit code of its own
    last = wait_for(lambda: (lambda f: f if f.get("pod") == "twice-worker-0" else None)(
        jobs.get("twice")["status"].get("lastFailure") or {}), timeout=30, message="the second failure recorded")
    assert "exitCode" not in last and last["reason"] in ("Deleted", "Lost"), last


def test_job_created_suspended_never_creates_pods(jobs):
    jobs.create(msjob("queued", workers=2, runPolicy={"suspend": True}))
    jobs.wait_condition("queued", "Suspended")
    assert not jobs.pods("queued")


def test_ttl_deletes_the_finished_job(jobs):
    jobs.create(msjob("ttl", workers=1, worker_annotations={EXIT: "0"}, runPolicy={"ttlSecondsAfterFinished": 2}))
    jobs.wait_condition("ttl", "Succeeded")
    wait_for(lambda: not jobs.exists("ttl"), timeout=60, message="the MSJob is deleted after its TTL")


def test_managed_by_another_controller_is_left_alone(jobs, running_operator):
    jobs.create(msjob("foreign", workers=1, runPolicy={"managedBy": "kueue.x-k8s.io/multikueue"}))
    jobs.create(msjob("mine", workers=1))
    jobs.wait_pods("mine", 2)  # the operator is working, yet:
    assert not jobs.pods("foreign") and not jobs.get("foreign").get("status")


def test_deleting_the_job_garbage_collects_pods_and_services(jobs):
    jobs.create(msjob("gc", workers=2))
    jobs.wait_pods("gc", 3)
    jobs.delete("gc")
    wait_for(lambda: not jobs.pods("gc") and not jobs.services("gc"), timeout=90,
             message="pods and services garbage-collected")


def test_operator_killed_mid_creation_leaves_no_duplicates(jobs, running_operator):
    jobs.create(msjob("restart", workers=40))
    wait_for(lambda: len(jobs.pods("restart")) >= 5, timeout=60, message="creation has begun")
    running_operator.kill()
    before = {p.metadata.name: p.metadata.uid for p in jobs.pods("restart")}
    running_operator.start()
    pods = jobs.wait_pods("restart", 41)
    names = [p.metadata.name for p in pods]
    assert len(names) == len(set(names)) == 41
    # Pods made before the kill are kept, not recreated.
    assert all(p.metadata.uid == before[p.metadata.name] for p in pods if p.metadata.name in before)
    jobs.wait_condition("restart", "Running")
    assert jobs.get("restart")["status"]["restartCount"] == 0


def test_pod_deleted_by_hand_is_replaced(jobs):
    jobs.create(msjob("handdel", workers=2))
    jobs.wait_pods("handdel", 3)
    jobs.core.delete_namespaced_pod("handdel-worker-1", jobs.ns)
    # Either the operator saw it terminating (gang restart) or only its absence (recreated).
    pods = wait_for(lambda: (lambda ps: ps if len(ps) == 3 and all(p.status.phase == "Running" for p in ps)
                             and "handdel-worker-1" in [p.metadata.name for p in ps] else None)(
        jobs.pods("handdel", include_terminating=False)), timeout=60, message="member replaced")
    assert len({p.metadata.name for p in pods}) == 3


def test_scale_subresource_resizes_the_gang(jobs, cluster):
    jobs.create(msjob("scale", workers=2))
    jobs.wait_pods("scale", 3)
    jobs.wait_condition("scale", "Running")
    cluster.kubectl("-n", jobs.ns, "scale", "msjob/scale", "--replicas=3")
    pods = jobs.wait_pods("scale", 4, attempt=1)
    env = env_of(next(p for p in pods if p.metadata.name == "scale-worker-2"))
    assert env["MS_WORKER_NUM"] == "3"
    status = jobs.get("scale")["status"]
    assert status["restartCount"] == 1 and not status.get("backoffCount")


def test_kubectl_get_shows_state_workers_restarts(jobs, cluster):
    jobs.create(msjob("columns", workers=2))
    jobs.wait_condition("columns", "Running")
    out = cluster.kubectl("-n", jobs.ns, "get", "msj", "columns").stdout
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "STATE", "WORKERS", "RESTARTS", "WAITING", "AGE"]
    assert row.split()[:4] == ["columns", "Running", "2/2", "0"]


def test_metrics_count_jobs(jobs, running_operator):
    jobs.create(msjob("metered", workers=1, worker_annotations={EXIT: "0"}))
    jobs.wait_condition("metered", "Succeeded")
    # The counter moves right after the status write that the test saw.
    text = wait_for(lambda: (lambda t: t if f'msjob_jobs_succeeded_total{{namespace="{jobs.ns}"}} 1.0' in t else None)(
        running_operator.metrics()), timeout=10, message="the succeeded counter")
    assert f'msjob_jobs{{namespace="{jobs.ns}",state="Succeeded"}}' in text
    assert "msjob_reconcile_duration_seconds_count" in text
    assert f'msjob_pods_created_total{{namespace="{jobs.ns}"}}' in text


def test_deleting_a_job_while_the_operator_is_down_does_not_hang(jobs, running_operator):
    jobs.create(msjob("orphan", workers=1))
    jobs.wait_pods("orphan", 2)
    running_operator.kill()
    try:
        jobs.delete("orphan")  # no finalizer: nothing waits for the operator
        wait_for(lambda: not jobs.exists("orphan") and not jobs.pods("orphan"), timeout=90,
                 message="job deleted and its pods garbage-collected without the operator")
    finally:
        running_operator.start()


def test_kubectl_explain_documents_the_api(cluster):
    out = cluster.kubectl("explain", "msjob.spec.runPolicy.backoffLimit").stdout
    assert "Counted restarts" in out
    out = cluster.kubectl("explain", "msjob.spec.msReplicaSpecs.Worker.template.spec.containers.resources").stdout
    assert "limits" in out and "requests" in out


def test_user_edits_while_the_operator_writes_status_lose_nothing(jobs):
    jobs.create(msjob("edited", workers=2))
    jobs.wait_pods("edited", 3)
    jobs.annotate_pod("edited-worker-1", {EXIT: "137"})  # the operator now writes status several times
    for i in range(15):
        jobs.patch("edited", {"metadata": {"labels": {f"edit-{i}": "yes"}}})
    jobs.wait_pods("edited", 3, attempt=1)
    jobs.wait_condition("edited", "Running")
    job = jobs.get("edited")
    assert all(job["metadata"]["labels"][f"edit-{i}"] == "yes" for i in range(15))
    assert job["status"]["restartCount"] == 1 and job["status"]["workers"] == "2/2"
    assert job["status"]["observedGeneration"] == job["metadata"]["generation"]
