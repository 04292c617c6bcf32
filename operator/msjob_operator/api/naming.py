"""Names and labels of the objects an MSJob owns.

Names are deterministic (``<job>-<type>-<index>``) so that a restarted operator finds
what it created before instead of creating it again.
"""

from __future__ import annotations

from typing import Any, Mapping

from .models import API_VERSION, GROUP, KIND
from .models import OPERATOR_NAME as OPERATOR_NAME  # part of the names API

LABEL_PREFIX = "training.kubeflow.org"
JOB_NAME_LABEL = f"{LABEL_PREFIX}/job-name"
REPLICA_TYPE_LABEL = f"{LABEL_PREFIX}/replica-type"
REPLICA_INDEX_LABEL = f"{LABEL_PREFIX}/replica-index"
OPERATOR_NAME_LABEL = f"{LABEL_PREFIX}/operator-name"
# Gang attempt a pod belongs to: pods of an older attempt are stale after a gang restart.
ATTEMPT_LABEL = f"{GROUP}/attempt"
# The scheduler address (MS_SCHED_HOST) a member was built with: a member whose address is not the
# scheduler Service's any more can never reach the scheduler.
SCHEDULER_ADDRESS_ANNOTATION = f"{GROUP}/scheduler-address"

MANAGED_BY = f"{GROUP}/{OPERATOR_NAME}"
CHILD_SELECTOR = f"{OPERATOR_NAME_LABEL}={OPERATOR_NAME}"


def replica_label(replica_type: str) -> str:
    return replica_type.lower()


def pod_name(job: str, replica_type: str, index: int) -> str:
    return f"{job}-{replica_label(replica_type)}-{index}"


def scheduler_service_name(job: str) -> str:
    return f"{job}-scheduler"


def headless_service_name(job: str) -> str:
    return job


def job_labels(job: str) -> dict[str, str]:
    return {JOB_NAME_LABEL: job, OPERATOR_NAME_LABEL: OPERATOR_NAME}


def replica_labels(job: str, replica_type: str) -> dict[str, str]:
    return {**job_labels(job), REPLICA_TYPE_LABEL: replica_label(replica_type)}


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def child_metadata(job: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Metadata of an object the job owns: its name, the job's namespace, labels and controller reference."""
    meta = job["metadata"]
    out = {"name": name, "labels": job_labels(meta["name"]), "ownerReferences": [owner_reference(job)]}
    if meta.get("namespace"):
        out["namespace"] = meta["namespace"]
    return out


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
