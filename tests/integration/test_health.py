"""Progress reports and stall detection on the real cluster.

Pods on the fake nodes run nothing, so the test writes the reporter's annotation itself, as the
sidecar would (the sidecar itself is tested in tests/cluster/test_reporter.py and, with real
MindSpore, in tests/e2e/test_perf_dump.py).
"""

import datetime as dt
import json

import pytest

from ..helpers import wait_for
from .msjobs import msjob

pytestmark = pytest.mark.cluster

ANNOTATION = "mindspore.gitee.com/progress"


def now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_progress_reaches_status_and_a_stall_restarts_the_gang(jobs, running_operator):
    jobs.create(msjob("watched", workers=2, health={"reportProgress": True, "stallTimeoutSeconds": 10}))
    pods = jobs.wait_pods("watched", 3)
    worker0 = next(p for p in pods if p.metadata.name == "watched-worker-0")
    assert [c.name for c in worker0.spec.init_containers] == ["msjob-reporter"]
    assert worker0.spec.service_account_name == "watched-reporter"
    role = jobs.core.api_client.call_api(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{jobs.ns}/roles/watched-reporter", "GET",
        response_type="object", auth_settings=["BearerToken"], _return_http_data_only=True)
    assert role["rules"][0]["resourceNames"] == ["watched-worker-0"]

    jobs.wait_condition("watched", "Running")
    progress = {"step": 42, "epoch": 1, "loss": 0.25, "stepTimeMs": 95.0, "stepsPerSecond": 10.5,
                "heartbeat": now_text(), "reportedAt": now_text()}
    jobs.annotate_pod("watched-worker-0", {ANNOTATION: json.dumps(progress)})
    reported = wait_for(lambda: (jobs.get("watched")["status"].get("progress") or {}).get("step") == 42 and
                        jobs.get("watched")["status"]["progress"], timeout=30, message="status.progress")
    assert reported["stepsPerSecond"] == 10.5 and reported["pod"] == "watched-worker-0"
    text = wait_for(lambda: (lambda t: t if 'msjob_job_step{job="watched"' in t else None)(running_operator.metrics()),
                    timeout=30, message="progress metrics")
    assert f'msjob_job_step{{job="watched",namespace="{jobs.ns}"}} 42.0' in text

    # No further step: after stallTimeoutSeconds the job is Stalled and its gang restarted.
    stalled = jobs.wait_condition("watched", "Stalled", timeout=60)
    assert "no training step" in stalled["message"]
    jobs.wait_pods("watched", 3, attempt=1)
    status = jobs.get("watched")["status"]
    assert status["restartCount"] == 1 and status["backoffCount"] == 1
    jobs.wait_event("watched", "Stalled", "Warning")
