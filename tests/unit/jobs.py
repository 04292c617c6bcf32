"""Plain MSJob and pod dicts for unit tests of the pure functions."""

from __future__ import annotations

import copy
import datetime as dt

from msjob_operator.api import naming

NOW = dt.datetime(2026, 11, 22, 12, 0, 0, tzinfo=dt.timezone.utc)


def template(image: str = "mindspore:2.10", env=None, ports=None, name="mindspore") -> dict:
    container = {"name": name, "image": image, "command": ["python", "train.py"]}
    if env:
        container["env"] = env
    if ports:
        container["ports"] = ports
    return {"metadata": {"labels": {"app": "demo"}, "annotations": {"note": "kept"}},
            "spec": {"containers": [container]}}


def job(name="demo", workers=2, scheduler=True, ps=0, status=None, **spec_extra) -> dict:
    specs = {"Worker": {"replicas": workers, "template": template()}}
    if scheduler:
        specs["Scheduler"] = {"replicas": 1, "template": template()}
    if ps:
        specs["PS"] = {"replicas": ps, "template": template()}
    spec = {"msReplicaSpecs": specs, **spec_extra}
    return {
        "apiVersion": "mindspore.gitee.com/v1", "kind": "MSJob",
        "metadata": {"name": name, "namespace": "ns", "uid": "job-uid", "generation": 1},
        "spec": spec, "status": copy.deepcopy(status) if status else {},
    }


OWNER = {"apiVersion": "mindspore.gitee.com/v1", "kind": "MSJob", "name": "demo", "uid": "job-uid", "controller": True}


def owned(name: str = "demo") -> list[dict]:
    """The ownerReferences of a child of the job ``name`` (uid job-uid, as ``job()`` makes it)."""
    return [{**OWNER, "name": name}]


def services(name="demo", cluster_ip="10.0.0.42") -> list[dict]:
    return [
        {"metadata": {"name": name, "namespace": "ns", "ownerReferences": owned(name)}, "spec": {"clusterIP": "None"}},
        {"metadata": {"name": f"{name}-scheduler", "namespace": "ns", "ownerReferences": owned(name)},
         "spec": {"clusterIP": cluster_ip}},
    ]


def pod(name="demo", rtype="Worker", index=0, attempt=0, phase="Running", *, exit_code=None, reason=None,
        message=None, deleting=False, disruption=False, ready=True, uid=None, waiting=None, owner=True) -> dict:
    pod_name = naming.pod_name(name, rtype, index)
    status: dict = {"phase": phase, "conditions": []}
    if phase == "Running" and ready:
        status["conditions"].append({"type": "Ready", "status": "True"})
    if disruption:
        status["conditions"].append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"})
    state: dict = {"running": {}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                                "message": message, "finishedAt": "2026-11-22T11:59:00Z"}}
    elif waiting:
        state = {"waiting": {"reason": waiting, "message": f"{waiting} details"}}
    status["containerStatuses"] = [{"name": "mindspore", "state": state}]
    meta = {
        "name": pod_name, "namespace": "ns", "uid": uid or f"uid-{pod_name}-{attempt}",
        "labels": {**naming.replica_labels(name, rtype), naming.REPLICA_INDEX_LABEL: str(index),
                   naming.ATTEMPT_LABEL: str(attempt)},
    }
    if owner:
        meta["ownerReferences"] = owned(name)
    if deleting:
        meta["deletionTimestamp"] = "2026-11-22T11:59:50Z"
    return {"metadata": meta, "spec": {"nodeName": "node-1"}, "status": status}


def gang(name="demo", workers=2, attempt=0, phase="Running") -> list[dict]:
    pods = [pod(name, "Scheduler", 0, attempt, phase)]
    pods += [pod(name, "Worker", i, attempt, phase) for i in range(workers)]
    return pods


# Conditions of a plan's status (the dicts written to the API server).
def condition(conditions: list[dict], ctype: str) -> dict | None:
    return next((c for c in conditions if c.get("type") == ctype), None)


def is_true(conditions: list[dict], ctype: str) -> bool:
    found = condition(conditions, ctype)
    return bool(found) and found.get("status") == "True"


def finished(conditions: list[dict]) -> bool:
    return is_true(conditions, "Succeeded") or is_true(conditions, "Failed")
