"""RBAC of the reporter sidecar: pure builders.

The reporter patches one thing, the progress annotation of its own pod, so it gets exactly that:
a ServiceAccount ``<job>-reporter``, a Role allowing ``get`` and ``patch`` on the named pods only
(``resourceNames``), and a RoleBinding between them.  All three are labelled as the job's and
owned by it, so they go when the job goes.

A pod has one ServiceAccount for all its containers: when the user's template names its own
(``serviceAccountName``), bind the Role to that one (``role_binding(job, [account])``)
instead of replacing it with ours.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from ..api import naming

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"


def reporter_name(job_name: str) -> str:
    """Name of the reporter's ServiceAccount, Role and RoleBinding."""
    return f"{job_name}-reporter"


def service_account(job: Mapping[str, Any], name: Optional[str] = None) -> dict[str, Any]:
    """The ServiceAccount ``name`` (default ``<job>-reporter``)."""
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": naming.child_metadata(job, name or reporter_name(job["metadata"]["name"]))}


def role(job: Mapping[str, Any], pod_names: Iterable[str], *, name: Optional[str] = None,
         extra_rules: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """The Role ``name`` (default ``<job>-reporter``): get and patch the pods ``pod_names``, by name, and
    ``extra_rules``; nothing else."""
    names = sorted(set(pod_names))
    if not names:
        raise ValueError("a Role limited to pods needs at least one pod name (an empty resourceNames allows every pod)")
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "Role",
        "metadata": naming.child_metadata(job, name or reporter_name(job["metadata"]["name"])),
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"], "resourceNames": names},
                  *extra_rules],
    }


def role_binding(job: Mapping[str, Any], accounts: Iterable[str] = (), *,
                 name: Optional[str] = None) -> dict[str, Any]:
    """The RoleBinding ``name`` (default ``<job>-reporter``) of the Role of that name to ``accounts``,
    ServiceAccounts of the job's namespace (default: the one named ``name``)."""
    meta = naming.child_metadata(job, name or reporter_name(job["metadata"]["name"]))
    namespace = job["metadata"].get("namespace")
    subjects = [{"kind": "ServiceAccount", "name": account, **({"namespace": namespace} if namespace else {})}
                for account in sorted(set(accounts) or {meta["name"]})]
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": meta["name"]},
        "subjects": subjects,
    }
