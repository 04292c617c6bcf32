"""A job that says why it waits, for the cause only a kubelet sees: a container whose ConfigMap is missing."""

from ..helpers import wait_for
from .support import msjob


def test_a_missing_configmap_is_named_until_it_exists(jobs):
    body = msjob("noconf", workers=1, worker_args=["--epochs", "1", "--steps-per-epoch", "2"])
    worker = body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    worker["env"] = [{"name": "SETTING", "valueFrom": {"configMapKeyRef": {"name": "job-settings", "key": "setting"}}}]
    jobs.create(body)

    def waiting():
        found = (jobs.get("noconf").get("status") or {}).get("waiting") or {}
        return found if found.get("reason") == "CreateContainerConfigError" else None
    found = wait_for(waiting, timeout=120, message="the job names the missing ConfigMap",
                     describe=lambda: jobs.state("noconf"))
    assert "job-settings" in found["replicaTypes"]["Worker"]["message"], found
    jobs.wait_event("noconf", "CreateContainerConfigError", "Warning")
    # Once the ConfigMap exists the member starts and the job runs to its end.
    jobs.core.create_namespaced_config_map(jobs.ns, {"metadata": {"name": "job-settings"}, "data": {"setting": "1"}})
    status = jobs.wait_finished("noconf", timeout=300)
    assert status["state"] == "Succeeded", jobs.state("noconf")
    assert "waiting" not in status
