"""Pod views: what the reconcile reads of a pod, memoized per (uid, resourceVersion)."""

import copy

from msjob_operator.reconcile.observed import view_pod

from .jobs import pod


def versioned(rv: str, **kwargs) -> dict:
    p = pod("demo", "Worker", 1, **kwargs)
    p["metadata"]["resourceVersion"] = rv
    return p


def test_a_version_of_a_pod_is_viewed_once():
    first = view_pod(versioned("10"))
    assert view_pod(copy.deepcopy(versioned("10"))) is first  # another copy of the same version
    assert (first.replica_type, first.index, first.phase, first.ready) == ("Worker", 1, "Running", True)


def test_a_new_version_gets_a_new_view():
    running = view_pod(versioned("20"))
    failed = view_pod(versioned("21", phase="Failed", exit_code=137))
    assert running.phase == "Running" and not running.failed
    assert failed.phase == "Failed" and failed.failed and failed.exit_code == 137


def test_pods_without_a_version_are_not_memoized():
    # Objects that never came from the API server (built by hand) have no resourceVersion.
    running, failed = pod("demo", "Worker", 2), pod("demo", "Worker", 2, phase="Failed", exit_code=1)
    assert view_pod(running).phase == "Running" and view_pod(failed).phase == "Failed"
    assert view_pod(running) is not view_pod(running)
