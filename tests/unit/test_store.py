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
