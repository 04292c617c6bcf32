"""RBAC of the reporter sidecar: pure builders.

The reporter patches one thing, the progress annotation of its own pod, so it gets exactly that:
a ServiceAccount ``<job>-reporter``, a Role allowing ``get`` and ``patch`` on the named pods only
(``resourceNames``), and a RoleBinding between them.  All three are labelled as the job's and
owned by it, so they go when the job goes.

A pod has one ServiceAccount for all its containers: when the user's template names its own
(``serviceAccountName``), bind the Role to that one (``role_binding(job, service_account=...)``)
instead of replacing it with ours.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from ..api import naming

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"


def reporter_name(job_name: str) -> str:
    """Name of the reporter's ServiceAccount, Role and RoleBinding."""
    return f"{job_name}-reporter"


def _metadata(job: Mapping[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    out = {
        "name": reporter_name(meta["name"]),
        "labels": naming.job_labels(meta["name"]),
        "ownerReferences": [naming.owner_reference(dict(job))],
    }
    if meta.get("namespace"):
        out["namespace"] = meta["namespace"]
    return out


def service_account(job: Mapping[str, Any]) -> dict[str, Any]:
    """The ServiceAccount ``<job>-reporter``."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(job)}


def role(job: Mapping[str, Any], pod_names: Iterable[str]) -> dict[str, Any]:
    """The Role ``<job>-reporter``: get and patch the pods ``pod_names`` (the reporting pods), nothing else."""
    names = sorted(set(pod_names))
    if not names:
        raise ValueError("the reporter's Role needs at least one pod name (an empty resourceNames allows every pod)")
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "Role",
        "metadata": _metadata(job),
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"], "resourceNames": names}],
    }


def role_binding(job: Mapping[str, Any], service_account: Optional[str] = None) -> dict[str, Any]:
    """The RoleBinding ``<job>-reporter`` of the Role to ``service_account`` (default ``<job>-reporter``)."""
    meta = _metadata(job)
    subject = {"kind": "ServiceAccount", "name": service_account or reporter_name(job["metadata"]["name"])}
    if job["metadata"].get("namespace"):
        subject["namespace"] = job["metadata"]["namespace"]
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": meta["name"]},
        "subjects": [subject],
    }
