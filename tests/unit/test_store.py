from msjob_operator.api import naming
from msjob_operator.controller.store import ChildStore, JobStore

from .jobs import pod


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
