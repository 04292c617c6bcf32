"""The text of ``msjob describe``: summary, replicas, conditions, waiting, last failure, pods and events."""

from __future__ import annotations

from typing import Any, Optional

from ..api import naming
from ..api.limits import DEFAULT_BACKOFF_LIMIT
from ..api.status import MemberFailure, MSJobStatus
from .accessors import state_of, status_of
from .client import MSJobClient
from .format import age, table, workers_of

REPLICA_COUNTS = ("active", "ready", "succeeded", "failed", "restarts")


def describe(client: MSJobClient, name: str, namespace: Optional[str] = None) -> str:
    """The text of ``msjob describe``: summary, replicas, conditions, last failure, pods and events."""
    job = client.get(name, namespace)
    st = status_of(job)
    meta = job.metadata
    spec = job.spec
    run_policy = spec.run_policy
    backoff_limit = run_policy.backoff_limit if run_policy and run_policy.backoff_limit is not None \
        else DEFAULT_BACKOFF_LIMIT
    out: list[str] = []

    def field(label: str, value: Any) -> None:
        if value not in (None, ""):
            out.append(f"{label + ':':<18}{value}")

    field("Name", job.name)
    field("Namespace", job.namespace)
    field("State", state_of(job))
    field("Created", f"{meta.get('creationTimestamp')} ({age(meta.get('creationTimestamp'))} ago)")
    field("Start Time", st.start_time)
    field("Completion Time", st.completion_time)
    field("Workers", f"{workers_of(job)} ready")
    field("World Size", st.world_size)
    field("Restarts", f"{st.restart_count or 0} (counted: {st.backoff_count or 0} of backoffLimit {backoff_limit})")
    field("Attempt", st.attempt)
    if run_policy and run_policy.suspend:
        field("Suspend", "true")

    out.append("Replicas:")
    rows: list[list[Any]] = []
    statuses = st.replica_statuses or {}
    for rtype, rspec in spec.ms_replica_specs.items():
        rs = statuses.get(rtype)
        counts = [(getattr(rs, f) or 0) if rs else 0 for f in REPLICA_COUNTS]
        rows.append([rtype, rspec.replicas, rspec.restart_policy or "OnFailure", *counts])
    headers = ["TYPE", "REPLICAS", "RESTART POLICY", "ACTIVE", "READY", "SUCCEEDED", "FAILED", "RESTARTS"]
    out.append(table(headers, rows, "  "))

    out.append("Conditions:")
    if st.conditions:
        rows = [[c.type, c.status, c.reason, c.last_transition_time, c.message] for c in st.conditions]
        out.append(table(["TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"], rows, "  "))
    else:
        out.append("  <none>")

    out.extend(_waiting(st))
    out.append("Last Failure:")
    out.extend(_last_failure(st.last_failure))
    out.append("Pods:")
    out.extend(_pods(client, name, namespace))
    out.append("Events:")
    out.extend(_events(client, name, namespace))
    return "\n".join(out)


def _waiting(st: MSJobStatus) -> list[str]:
    if st.waiting is None:
        return []
    rows = [[rtype, w.reason, w.pods, w.message] for rtype, w in (st.waiting.replica_types or {}).items()]
    return ["Waiting:", f"  {'Reason:':<12}{st.waiting.reason}  (since {st.waiting.since})",
            table(["TYPE", "REASON", "PODS", "MESSAGE"], rows, "  ")]


def _last_failure(lf: Optional[MemberFailure]) -> list[str]:
    if lf is None:
        return ["  <none>"]
    out = []
    replica = f"{lf.replica_type} {lf.index}" if lf.replica_type else None
    for label, value in (("Pod", lf.pod), ("Replica", replica), ("Container", lf.container),
                         ("Exit Code", lf.exit_code), ("Reason", lf.reason), ("Node", lf.node), ("Time", lf.time),
                         ("Action", lf.action)):
        if value not in (None, ""):
            out.append(f"  {label + ':':<12}{value}")
    if lf.message:
        out.append("  Message:")
        out.extend("    " + line for line in lf.message.splitlines())
    return out


def _pods(client: MSJobClient, name: str, namespace: Optional[str]) -> list[str]:
    pods = client.get_pods(name, namespace)
    if not pods:
        return ["  <none>"]
    rows = []
    for p in pods:
        labels = p.metadata.labels or {}
        phase = "Terminating" if p.metadata.deletion_timestamp else (p.status.phase if p.status else "")
        rows.append([p.metadata.name, phase, p.spec.node_name or "<none>", labels.get(naming.ATTEMPT_LABEL, ""),
                     age(p.metadata.creation_timestamp)])
    return [table(["NAME", "PHASE", "NODE", "ATTEMPT", "AGE"], rows, "  ")]


def _events(client: MSJobClient, name: str, namespace: Optional[str]) -> list[str]:
    events = client.get_events(name, namespace)
    if not events:
        return ["  <none>"]
    rows = []
    for e in events:
        when = e.last_timestamp or e.event_time or e.first_timestamp or e.metadata.creation_timestamp
        repeated = f"(x{e.count}) " if (e.count or 1) > 1 else ""
        rows.append([age(when), e.type, e.reason, repeated + (e.message or "")])
    return [table(["LAST SEEN", "TYPE", "REASON", "MESSAGE"], rows, "  ")]
