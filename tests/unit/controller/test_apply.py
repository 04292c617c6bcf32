"""Applying a plan: the conditional status write, what each create answer means, deletes, the cache."""

import asyncio
import copy
import itertools
import logging

import pytest

from msjob_operator.api import naming
from msjob_operator.config import DEFAULT
from msjob_operator.controller import apply as apply_module
from msjob_operator.controller.apply import Applier, StatusConflict
from msjob_operator.controller.events import EventRecorder
from msjob_operator.controller.kube import KubeError
from msjob_operator.controller.observations import ObjectsByJob, Refusals
from msjob_operator.controller.store import ChildStore, JobStore
from msjob_operator.reconcile.context import Plan, PodDeletion
from msjob_operator.reconcile.waiting import Refusal

from ..jobs import job, pod
from .fakekube import FakeKube

KEY = ("ns", "demo")
STATUS = "/apis/mindspore.gitee.com/v1/namespaces/ns/msjobs/demo/status"
JOB = "/apis/mindspore.gitee.com/v1/namespaces/ns/msjobs/demo"
PODS = "/api/v1/namespaces/ns/pods"
LOG = logging.LoggerAdapter(logging.getLogger("test"), {})


def setup(status=None):
    kube = FakeKube()
    applier = Applier(kube, JobStore(), ChildStore(keep_spec=("nodeName",)), ChildStore(), ChildStore(), Refusals(),
                      ObjectsByJob(), EventRecorder(kube), DEFAULT)
    the_job = job(status=status or {"phase": "Running"})
    the_job["metadata"]["resourceVersion"] = "7"
    applier.jobs.upsert(the_job)
    return kube, applier, the_job


def created(body: dict, uid: str = "new-uid") -> dict:
    return {**copy.deepcopy(body), "metadata": {**body["metadata"], "uid": uid, "resourceVersion": "20"}}


def apply(applier: Applier, the_job: dict, plan: Plan):
    return asyncio.run(applier.apply(KEY, the_job, plan, LOG))


def test_the_status_write_is_a_merge_patch_with_nulls_conditioned_on_the_jobs_version():
    old = {"phase": "Pending", "message": "waiting", "replicaStatuses": {"Worker": {"active": 1, "failed": 1}}}
    kube, applier, the_job = setup(old)
    plan = Plan(status={"phase": "Running", "replicaStatuses": {"Worker": {"active": 2}}})
    kube.answer("PATCH", STATUS, lambda call: (200, {**the_job, "metadata": {**the_job["metadata"],
                                                                             "resourceVersion": "8"},
                                                     "status": copy.deepcopy(plan.status)}))
    assert apply(applier, the_job, plan) is False
    (call,) = kube.calls
    assert call.content_type == "application/merge-patch+json"
    assert call.body["metadata"] == {"resourceVersion": "7"}
    sent = call.body["status"]
    assert sent.pop("lastReconcileTime")
    assert sent == {"phase": "Running", "message": None, "replicaStatuses": {"Worker": {"active": 2, "failed": None}}}
    assert applier.jobs.get(KEY)["metadata"]["resourceVersion"] == "8"  # the response is cached


def test_an_unchanged_status_is_not_written():
    kube, applier, the_job = setup({"phase": "Running", "lastReconcileTime": "2026-01-01T00:00:00Z"})
    assert apply(applier, the_job, Plan(status={"phase": "Running",
                                                "lastReconcileTime": "2026-02-02T00:00:00Z"})) is False
    assert kube.calls == []


def test_a_conflict_refreshes_the_job_and_stops_the_pass():
    kube, applier, the_job = setup({"phase": "Pending"})
    kube.answer("PATCH", STATUS, (409, {"reason": "Conflict"}))
    fresh = {**the_job, "metadata": {**the_job["metadata"], "resourceVersion": "9"}, "status": {"phase": "Suspended"}}
    kube.answer("GET", JOB, (200, fresh))
    with pytest.raises(StatusConflict):
        apply(applier, the_job, Plan(status={"phase": "Running"}, create_pods=[pod()]))
    assert applier.jobs.get(KEY)["status"] == {"phase": "Suspended"}
    assert not kube.requests("POST")  # nothing was created from the stale plan


def test_a_job_gone_at_the_status_write_ends_the_pass():
    kube, applier, the_job = setup({"phase": "Pending"})
    kube.answer("PATCH", STATUS, (404, {"reason": "NotFound"}))
    assert apply(applier, the_job, Plan(status={"phase": "Running"}, create_pods=[pod()])) is False
    assert len(kube.calls) == 1


def test_already_exists_on_someone_elses_pod_records_a_holder_and_on_our_own_is_success():
    kube, applier, the_job = setup()
    body = pod()
    name = body["metadata"]["name"]
    stranger = created(body, uid="stranger")
    stranger["metadata"]["ownerReferences"] = [{"kind": "MSJob", "name": "demo", "uid": "old-job", "controller": True}]
    kube.answer("POST", PODS, (409, {"reason": "AlreadyExists"}))
    kube.answer("GET", f"{PODS}/{name}", (200, stranger))
    plan = Plan(status={"phase": "Running"}, create_pods=[body])
    assert apply(applier, the_job, plan) is False  # a held name is no refusal
    (held,) = applier.holders.for_job(KEY)
    assert held["metadata"]["uid"] == "stranger" and held["kind"] == "Pod"
    assert applier.pods.for_job(KEY) == []  # not ours: never in the job's cache

    kube.answer("POST", PODS, (409, {"reason": "AlreadyExists"}))
    kube.answer("GET", f"{PODS}/{name}", (200, created(body, uid="ours")))  # ours after all (a lost response)
    apply(applier, the_job, plan)
    assert applier.holders.for_job(KEY) == []
    assert [p["metadata"]["uid"] for p in applier.pods.for_job(KEY)] == ["ours"]


def test_already_exists_then_gone_is_neither_a_holder_nor_cached():
    kube, applier, the_job = setup()
    body = pod()
    kube.answer("POST", PODS, (409, {"reason": "AlreadyExists"}))
    kube.answer("GET", f"{PODS}/{body['metadata']['name']}", (404, {"reason": "NotFound"}))
    apply(applier, the_job, Plan(status={"phase": "Running"}, create_pods=[body]))
    assert applier.holders.for_job(KEY) == [] and applier.pods.for_job(KEY) == []


def test_a_refusal_is_recorded_once_keeping_since_and_cleared_by_a_success(monkeypatch):
    moments = (f"2026-01-01T00:00:0{i}Z" for i in itertools.count())
    monkeypatch.setattr(apply_module, "fmt_time", lambda now: next(moments))
    kube, applier, the_job = setup()
    body = pod()
    name = body["metadata"]["name"]
    plan = Plan(status={"phase": "Running"}, create_pods=[body])
    kube.answer("POST", PODS, (403, {"reason": "Forbidden", "message": "exceeded quota: pods"}))
    assert apply(applier, the_job, plan) is True  # a create stands refused
    first = applier.refusals.for_job(KEY)[("Pod", name)]
    assert first == Refusal("Pod", name, 403, "Forbidden", "exceeded quota: pods", since="2026-01-01T00:00:00Z")

    kube.answer("POST", PODS, (422, {"reason": "Invalid", "message": "spec.containers: Required value"}))
    assert apply(applier, the_job, plan) is True
    (again,) = applier.refusals.for_job(KEY).values()
    assert (again.code, again.reason, again.since) == (422, "Invalid", first.since)  # the run began with the first
    assert applier.refusals.add(KEY, again) is False  # the same refusal again says nothing new

    kube.answer("POST", PODS, (201, created(body)))
    assert apply(applier, the_job, plan) is False
    assert applier.refusals.for_job(KEY) == {}
    assert [p["metadata"]["name"] for p in applier.pods.for_job(KEY)] == [name]


def test_a_server_error_is_raised_after_the_other_writes_ran():
    kube, applier, the_job = setup()
    broken, fine = pod(index=0), pod(index=1)

    def answer(call):
        if call.body["metadata"]["name"] == broken["metadata"]["name"]:
            return 503, {"reason": "ServiceUnavailable"}
        return 201, created(call.body)
    kube.route(PODS, answer)
    with pytest.raises(KubeError) as raised:
        apply(applier, the_job, Plan(status={"phase": "Running"}, create_pods=[broken, fine]))
    assert raised.value.status == 503
    assert applier.refusals.for_job(KEY) == {}  # a failure to ask is no refusal: the pass is retried
    assert [p["metadata"]["name"] for p in applier.pods.for_job(KEY)] == [fine["metadata"]["name"]]


@pytest.mark.parametrize("status", [401, 408, 409, 429])
def test_answers_that_are_not_about_the_object_are_no_refusal(status):
    assert not apply_module.refused(KubeError(status, {}, "POST"))
    assert apply_module.refused(KubeError(403, {}, "POST")) and not apply_module.refused(KubeError(500, {}, "POST"))


def test_only_selected_pods_go_to_the_cache():
    kube, applier, the_job = setup()
    body = pod()
    unlabelled = created(body)
    del unlabelled["metadata"]["labels"][naming.OPERATOR_NAME_LABEL]  # e.g. a webhook rewrote the labels
    kube.answer("POST", PODS, (201, unlabelled))
    assert apply(applier, the_job, Plan(status={"phase": "Running"}, create_pods=[body])) is False
    assert applier.pods.for_job(KEY) == []  # the watch would never report its deletion


def test_deletes_are_preconditioned_on_the_uid_and_cache_only_selected_answers():
    kube, applier, the_job = setup()
    still_labelled, relabelled, gone = pod(index=0, uid="u0"), pod(index=1, uid="u1"), pod(index=2, uid="u2")
    for obj in (still_labelled, relabelled):
        obj["metadata"].update(resourceVersion="30", deletionTimestamp="2026-01-01T00:00:00Z")
        obj["kind"] = "Pod"
    del relabelled["metadata"]["labels"][naming.OPERATOR_NAME_LABEL]
    kube.answer("DELETE", f"{PODS}/{still_labelled['metadata']['name']}", (200, still_labelled))
    kube.answer("DELETE", f"{PODS}/{relabelled['metadata']['name']}", (200, relabelled))
    kube.answer("DELETE", f"{PODS}/{gone['metadata']['name']}", (404, {"reason": "NotFound"}))
    plan = Plan(status={"phase": "Running"}, delete_pods=[PodDeletion(still_labelled["metadata"]["name"], "u0", 0),
                                                          PodDeletion(relabelled["metadata"]["name"], "u1"),
                                                          PodDeletion(gone["metadata"]["name"], "u2")])
    apply(applier, the_job, plan)
    bodies = {c.path.rsplit("/", 1)[1]: c.body for c in kube.requests("DELETE")}
    assert bodies[still_labelled["metadata"]["name"]]["preconditions"] == {"uid": "u0"}
    assert bodies[still_labelled["metadata"]["name"]]["gracePeriodSeconds"] == 0
    assert bodies[gone["metadata"]["name"]]["preconditions"] == {"uid": "u2"}
    assert "gracePeriodSeconds" not in bodies[relabelled["metadata"]["name"]]
    assert [p["metadata"]["uid"] for p in applier.pods.for_job(KEY)] == ["u0"]
    assert applier.pods.for_job(KEY)[0]["metadata"]["deletionTimestamp"]


def test_objects_written_whole_are_created_or_patched_and_the_gang_configmap_is_cached():
    from msjob_operator.builders import agent

    kube, applier, the_job = setup()
    applier.configmaps = ChildStore()
    roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles"
    bindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings"
    role = agent.role(the_job, ["demo-worker-0", "demo-worker-1"])
    binding = agent.role_binding(the_job, ["demo-agent"])
    gang = agent.gang_configmap(the_job, 1, 0)
    kube.answer("PATCH", f"{roles}/demo-agent", (200, role))  # it exists: one write, no create
    kube.answer("PATCH", f"{bindings}/demo-agent", (404, {"reason": "NotFound"}))  # missing: created
    kube.answer("POST", bindings, (201, binding))
    kube.answer("PATCH", "/api/v1/namespaces/ns/configmaps/demo-gang",
                (200, {**gang, "metadata": {**gang["metadata"], "uid": "cm-uid", "resourceVersion": "30"}}))
    plan = Plan(status=copy.deepcopy(the_job["status"]), apply_objects=[role, binding], apply_configmaps=[gang])
    apply(applier, the_job, plan)
    patch = kube.requests("PATCH", f"{roles}/demo-agent")[0]
    assert patch.content_type == "application/merge-patch+json" and patch.body == {"rules": role["rules"]}
    assert not kube.requests("POST", roles)
    assert [c.body for c in kube.requests("POST", bindings)] == [binding]
    assert [c["data"] for c in applier.configmaps.for_job(KEY)] == [{"epoch": "1", "released": "0"}]


def test_member_leases_go_before_the_pods_are_cached_and_a_refused_one_holds_the_pods():
    from msjob_operator.builders import agent

    kube, applier, the_job = setup()
    leases_path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
    leases = [agent.member_lease(the_job, name) for name in ("demo-worker-0", "demo-worker-1")]
    kube.answer("POST", leases_path, (201, created(leases[0], "l0")), (409, {"reason": "AlreadyExists"}))
    kube.answer("POST", PODS, (201, created(pod("demo", "Worker", 0))))
    plan = Plan(status=copy.deepcopy(the_job["status"]), create_objects=leases, create_pods=[pod("demo", "Worker", 0)])
    apply(applier, the_job, plan)
    methods = [(c.method, c.path) for c in kube.calls]
    assert methods.index(("POST", PODS)) > max(i for i, m in enumerate(methods) if m == ("POST", leases_path))
    assert [lease["metadata"]["uid"] for lease in applier.leases.for_job(KEY)] == ["l0"]  # AlreadyExists: ours

    kube, applier, the_job = setup()
    kube.answer("POST", leases_path, (403, {"reason": "Forbidden", "message": "leases is forbidden"}))
    plan = Plan(status=copy.deepcopy(the_job["status"]), create_objects=leases[:1],
                create_pods=[pod("demo", "Worker", 0)])
    assert apply(applier, the_job, plan) is True  # a refusal stands
    assert not kube.requests("POST", PODS)  # no pod without the Lease its agent reports on
    assert ("Lease", "demo-worker-0-agent") in applier.refusals.for_job(KEY)
