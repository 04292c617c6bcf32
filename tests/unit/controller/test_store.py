from msjob_operator.api import naming
from msjob_operator.controller.store import ChildStore, JobStore

from ..jobs import OWNER, pod


def with_rv(obj: dict, rv: int) -> dict:
    obj["metadata"]["resourceVersion"] = str(rv)
    return obj


def test_late_response_does_not_resurrect_a_deleted_pod():
    store = ChildStore()
    key = store.upsert(with_rv(pod(uid="u1"), 10))
    store.remove(with_rv(pod(uid="u1"), 12))  # the watch says: gone
    store.upsert(with_rv(pod(uid="u1", deleting=True), 11))  # then our DELETE's response arrives
    assert store.for_job(key) == []
    # A new incarnation with the same name is welcome.
    store.upsert(with_rv(pod(uid="u2"), 13))
    assert [p["metadata"]["uid"] for p in store.for_job(key)] == ["u2"]


def test_older_events_do_not_replace_newer_state():
    store = ChildStore()
    key = store.upsert(with_rv(pod(uid="u1", phase="Failed", exit_code=1), 20))
    store.upsert(with_rv(pod(uid="u1", phase="Running"), 15))
    assert store.for_job(key)[0]["status"]["phase"] == "Failed"


def test_removing_an_old_incarnation_keeps_the_new_one():
    store = ChildStore()
    key = store.upsert(with_rv(pod(uid="new"), 30))
    store.remove(with_rv(pod(uid="old"), 31))
    assert [p["metadata"]["uid"] for p in store.for_job(key)] == ["new"]


def test_job_store_keeps_our_newer_status_write():
    jobs = JobStore()
    job = {"metadata": {"namespace": "ns", "name": "j", "uid": "x", "resourceVersion": "5"}, "status": {"attempt": 1}}
    stale = {"metadata": {"namespace": "ns", "name": "j", "uid": "x", "resourceVersion": "4"}, "status": {}}
    key = jobs.upsert(job)
    jobs.upsert(stale)
    assert jobs.get(key)["status"] == {"attempt": 1}
    # A recreated job (new UID) replaces the old one whatever its resourceVersion.
    jobs.upsert({"metadata": {"namespace": "ns", "name": "j", "uid": "y", "resourceVersion": "3"}})
    assert jobs.get(key)["metadata"]["uid"] == "y"


def test_a_late_event_of_the_old_incarnation_does_not_replace_the_new_pod():
    store = ChildStore()
    key = store.upsert(with_rv(pod(uid="new", attempt=1), 50))  # our create response
    store.upsert(with_rv(pod(uid="old", attempt=0), 40))  # the watch catching up on the old pod
    (kept,) = store.for_job(key)
    assert kept["metadata"]["uid"] == "new"
    store.remove(with_rv(pod(uid="old", attempt=0), 45))  # its deletion does not remove the new pod
    assert [p["metadata"]["uid"] for p in store.for_job(key)] == ["new"]


def test_cached_pods_keep_only_what_the_reconcile_reads():
    store = ChildStore(keep_spec=("nodeName",))
    obj = with_rv(pod(uid="u1", phase="Running"), 5)
    obj["metadata"]["managedFields"] = [{"manager": "kube-scheduler", "fieldsV1": {"f:spec": {}}}]
    obj["spec"] = {"nodeName": "node-1", "containers": [{"name": "mindspore", "env": [{"name": "MS_ROLE"}]}]}
    key = store.upsert(obj)
    (cached,) = store.for_job(key)
    assert cached["spec"] == {"nodeName": "node-1"} and "managedFields" not in cached["metadata"]
    assert cached["metadata"]["labels"] == obj["metadata"]["labels"] and cached["status"] == obj["status"]
    assert obj["spec"]["containers"] and obj["metadata"]["managedFields"]  # the caller's object is left alone
    assert "containers" in ChildStore()._slim(obj)["spec"]  # a store without keep_spec (Services) keeps it


def test_cached_objects_share_their_strings():
    import json

    store = ChildStore(keep_spec=("nodeName",))
    for uid, name in (("u1", "a"), ("u2", "b")):
        obj = with_rv(pod(uid=uid), 1)
        obj["metadata"]["name"] = name
        store.upsert(json.loads(json.dumps(obj)))  # as from the wire: fresh string objects every time
    a, b = sorted(store.for_job(store.job_key(obj)), key=lambda p: p["metadata"]["name"])
    key_a, key_b = (next(k for k in p["metadata"] if k == "labels") for p in (a, b))
    assert key_a is key_b  # one string object for a key, however many pods carry it
    assert a["metadata"]["labels"][naming.JOB_NAME_LABEL] is b["metadata"]["labels"][naming.JOB_NAME_LABEL]
    assert a["metadata"]["uid"] == "u1" and b["metadata"]["uid"] == "u2"


def test_a_late_watch_event_of_a_deleted_uid_never_resurrects_it():
    store = ChildStore()
    key = store.upsert(with_rv(pod(uid="u1"), 10))
    store.remove(with_rv(pod(uid="u1"), 12))
    store.upsert(with_rv(pod(uid="u1", phase="Running"), 11))
    store.upsert(with_rv(pod(uid="u1", phase="Running"), 12))
    assert store.for_job(key) == []
    store.replace_all([with_rv(pod(uid="u1"), 11)])  # a relist honours tombstones too
    assert store.for_job(key) == []


def test_a_member_seen_again_after_its_removal_is_cached_again():
    # The watch removes a member that lost its labels; once they are back it shows the pod again, newer.
    store = ChildStore()
    key = store.upsert(with_rv(pod(uid="u1"), 10))
    store.remove(with_rv(pod(uid="u1"), 12))
    store.upsert(with_rv(pod(uid="u1"), 15))
    assert [p["metadata"]["uid"] for p in store.for_job(key)] == ["u1"]


def test_newer_resource_version_wins_integer_not_text_order():
    store = ChildStore()
    key = store.upsert(with_rv(pod(uid="u1", phase="Pending"), 9))
    store.upsert(with_rv(pod(uid="u1", phase="Running"), 10))  # "10" < "9" as text
    assert store.for_job(key)[0]["status"]["phase"] == "Running"


def test_replace_all_is_the_truth_and_returns_every_job_touched():
    store = ChildStore()
    store.upsert(with_rv(pod("old", uid="a"), 1))
    store.upsert(with_rv(pod("kept", uid="b"), 1))
    touched = store.replace_all([with_rv(pod("kept", uid="b"), 2), with_rv(pod("new", uid="c"), 2)])
    assert touched == {("ns", "old"), ("ns", "kept"), ("ns", "new")}
    assert store.for_job(("ns", "old")) == [] and store.count() == 2


def test_replace_jobs_keeps_other_jobs_and_buries_nothing():
    store = ChildStore()
    store.upsert(with_rv(pod("x", uid="x0"), 1))
    store.upsert(with_rv(pod("x", index=1, uid="x1"), 1))
    store.upsert(with_rv(pod("y", uid="y0"), 1))
    store.replace_jobs({("ns", "x")}, [with_rv(pod("x", uid="x0"), 1)])
    assert [p["metadata"]["uid"] for p in store.for_job(("ns", "x"))] == ["x0"]  # listed again: kept
    assert [p["metadata"]["uid"] for p in store.for_job(("ns", "y"))] == ["y0"]
    store.upsert(with_rv(pod("x", index=1, uid="x1"), 3))  # only dropped from the cache, not tombstoned
    assert store.count() == 3


def test_job_key_is_the_controller_owner_first_then_the_job_name_label():
    owned = pod("demo", uid="u1")
    owned["metadata"]["labels"][naming.JOB_NAME_LABEL] = "other"
    assert ChildStore.job_key(owned) == ("ns", "demo")  # the MSJob controller wins over the label
    orphan = pod("demo", uid="u2", owner=False)
    assert ChildStore.job_key(orphan) == ("ns", "demo")  # no owner: the job-name label
    # An owner that is not the controller, or a controller of another kind, is not the job.
    for ref in ({**OWNER, "name": "x", "controller": False},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "r", "controller": True},
                {**OWNER, "apiVersion": "example.com/v1", "name": "x"}):
        obj = pod("demo", uid="u3", owner=False)
        obj["metadata"]["ownerReferences"] = [ref]
        assert ChildStore.job_key(obj) == ("ns", "demo")
    stranger = {"metadata": {"name": "p", "namespace": "ns", "uid": "u4", "labels": {}}}
    assert ChildStore.job_key(stranger) is None
    store = ChildStore()
    assert store.upsert(stranger) is None and store.remove(stranger) is None and store.count() == 0
