"""The in-place restart protocol: names and pure helpers shared by the agent and the operator.

The contract is docs/in-place-restart.md; in short:

* the operator writes the ConfigMap ``gang_configmap_name(job)`` (data ``epoch``, ``released``
  and, at the end, ``final``): ``gang_data`` builds its data, ``parse_gang`` reads it;
* each agent writes the annotation ``AGENT_ANNOTATION`` (a JSON report) of its member's Lease
  ``member_lease_name(pod)``, which the operator creates before the pod, with its pod's UID as the
  Lease's ``holderIdentity``: ``agent_report`` builds the report, ``report_patch`` is the merge
  patch, ``read_member_report`` reads it back for one pod (the operator; ``read_agent_report`` reads
  the annotation of any object), ``quiesced`` says whether it acknowledges an epoch.  A Lease, not
  the pod: every pod watcher of the cluster (the scheduler, the kubelets, controllers) receives
  each pod write, and only the operator watches these Leases;
* each agent logs one ``event_line`` per process start and exit (``parse_event_line``).

Standard library only: the operator imports this module, the agent runs it on the image's Python.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional

# ----- the coordination object (written by the operator only)
GANG_CONFIGMAP_SUFFIX = "-gang"
EPOCH_KEY = "epoch"  # the epoch every member must be at
RELEASED_KEY = "released"  # the highest epoch whose processes may start: the barrier
FINAL_KEY = "final"  # "true": the job has ended, agents exit
FINAL_TRUE = "true"

# ----- the agent's report (on its member's Lease; agents of before the Lease wrote it on their pod)
AGENT_ANNOTATION = "mindspore.gitee.com/agent"
LEASE_GROUP = "coordination.k8s.io"
LEASE_API = LEASE_GROUP + "/v1"
MEMBER_LEASE_SUFFIX = "-agent"
WAITING, RUNNING, EXITED, STOPPED = "Waiting", "Running", "Exited", "Stopped"
STATES = (WAITING, RUNNING, EXITED, STOPPED)
REPORT_KEYS = ("epoch", "state", "exitCode", "startedAt", "finishedAt", "output", "pid", "reportedAt")
OUTPUT_LINES = 80  # as the kubelet's FallbackToLogsOnError: the last 80 lines ...
OUTPUT_BYTES = 2048  # ... at most 2048 bytes

# ----- how the agent is invoked
AGENT_MODULE = "msjob_runtime.agent"  # python3 -m msjob_runtime.agent [flags] -- command...
AGENT_SCRIPT = "msjob_runtime/agent.py"  # or as a plain script, relative to the runtime directory
COMMAND_SEPARATOR = "--"
POD_NAME_ENV = "POD_NAME"  # downward API metadata.name
POD_NAMESPACE_ENV = "POD_NAMESPACE"  # downward API metadata.namespace
POD_UID_ENV = "POD_UID"  # downward API metadata.uid: the Lease's holderIdentity
JOB_ENV = "MSJOB_NAME"  # --job
CONFIGMAP_ENV = "MSJOB_GANG_CONFIGMAP"  # --configmap (default: <job>-gang)
GRACE_ENV = "MSJOB_AGENT_GRACE_SECONDS"  # --grace-seconds
UNREACHABLE_ENV = "MSJOB_AGENT_UNREACHABLE_SECONDS"  # --unreachable-seconds
EPOCH_ENV = "MSJOB_EPOCH"  # given to the supervised process: the epoch it runs for
DEFAULT_GRACE_SECONDS = 25.0  # the pod's default terminationGracePeriodSeconds (30) minus the margin
GRACE_MARGIN_SECONDS = 5.0  # left to the agent to reap, report and exit before the kubelet's SIGKILL
DEFAULT_UNREACHABLE_SECONDS = 60.0

# ----- the agent's event lines on stderr
LOG_PREFIX = "msjob-agent:"
START, EXIT = "start", "exit"
_EVENT = re.compile(r"^msjob-agent: epoch=(\d+) (start|exit) pid=(\d+)(?: code=(\d+))? at=(\S+)$")


@dataclass(frozen=True)
class Gang:
    """The ConfigMap's data, parsed."""

    epoch: int
    released: int
    final: bool = False


def gang_configmap_name(job: str) -> str:
    return job + GANG_CONFIGMAP_SUFFIX


def member_lease_name(pod: str) -> str:
    """The Lease that carries the agent's reports of pod ``pod`` (a member's name: the same for each pod
    that member ever has, so the Lease outlives a recreated pod and ``holderIdentity`` says whose)."""
    return pod + MEMBER_LEASE_SUFFIX


def lease_path(namespace: Optional[str], name: str = "") -> str:
    """The API path of the Leases of ``namespace`` (or of the one named ``name``); of every namespace
    when it is None."""
    path = f"/apis/{LEASE_API}/namespaces/{namespace}/leases" if namespace else f"/apis/{LEASE_API}/leases"
    return f"{path}/{name}" if name else path


def gang_data(epoch: int, released: int, final: bool = False) -> Dict[str, str]:
    """The ConfigMap's ``data`` for the operator to write."""
    data = {EPOCH_KEY: str(int(epoch)), RELEASED_KEY: str(int(released))}
    if final:
        data[FINAL_KEY] = FINAL_TRUE
    return data


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip().isdigit():
        raise ValueError(f"{key} is {value!r}, not a non-negative integer")
    return int(value.strip())


def parse_gang(data: Optional[Mapping[str, Any]]) -> Gang:
    """``Gang`` from the ConfigMap's ``data``; ValueError when ``epoch`` or ``released`` is not a
    non-negative integer (``final`` is true only when it is ``"true"``, in any case)."""
    data = data or {}
    final = str(data.get(FINAL_KEY) or "").strip().lower() == FINAL_TRUE
    return Gang(epoch=_count(data, EPOCH_KEY), released=_count(data, RELEASED_KEY), final=final)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(t: Optional[datetime]) -> Optional[str]:
    """RFC 3339 UTC with a ``Z``, to the millisecond (None stays None)."""
    if t is None:
        return None
    t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def micro_time(t: datetime) -> str:
    """RFC 3339 UTC to the microsecond: the event lines' ``at=``."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def agent_report(epoch: int, state: str, *, exit_code: Optional[int] = None, started_at: Optional[datetime] = None,
                 finished_at: Optional[datetime] = None, output: str = "", pid: Optional[int] = None,
                 reported_at: Optional[datetime] = None) -> Dict[str, Any]:
    """The annotation's JSON object (every key of ``REPORT_KEYS``, always)."""
    if state not in STATES:
        raise ValueError(f"unknown agent state {state!r}")
    return {"epoch": int(epoch), "state": state, "exitCode": exit_code, "startedAt": rfc3339(started_at),
            "finishedAt": rfc3339(finished_at), "output": output, "pid": pid,
            "reportedAt": rfc3339(reported_at or utc_now())}


def report_patch(report: Mapping[str, Any], pod_uid: Optional[str] = None) -> Dict[str, Any]:
    """The JSON merge patch that puts ``report`` into ``AGENT_ANNOTATION`` and, with ``pod_uid``, makes
    that pod the Lease's holder (a member Lease's patch)."""
    value = json.dumps(dict(report), separators=(",", ":"), sort_keys=True)
    patch: Dict[str, Any] = {"metadata": {"annotations": {AGENT_ANNOTATION: value}}}
    if pod_uid is not None:
        patch["spec"] = {"holderIdentity": pod_uid}
    return patch


def same_report(a: Optional[Mapping[str, Any]], b: Optional[Mapping[str, Any]]) -> bool:
    """Equal apart from ``reportedAt``."""
    if a is None or b is None:
        return a is b
    return {k: v for k, v in a.items() if k != "reportedAt"} == {k: v for k, v in b.items() if k != "reportedAt"}


def _int_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def read_agent_report(obj: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The report in an object's annotation (a Lease or pod dict, as the API returns it); None when
    there is none or it is not a valid report."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(AGENT_ANNOTATION)
    if not raw:
        return None
    try:
        report = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("state") not in STATES:
        return None
    epoch = report.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        return None
    if not (_int_or_none(report.get("exitCode")) and _int_or_none(report.get("pid"))):
        return None
    if not isinstance(report.get("output", ""), str):
        return None
    return {key: report.get(key, "" if key == "output" else None) for key in REPORT_KEYS}


def lease_holder(lease: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The pod UID a member Lease's report belongs to (None without one)."""
    holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
    return holder if isinstance(holder, str) and holder else None


def read_member_report(lease: Optional[Mapping[str, Any]], pod_uid: str) -> Optional[Dict[str, Any]]:
    """The report on a member Lease when it is the pod ``pod_uid``'s (None otherwise: no Lease, no
    report, or one of an earlier pod of the same member)."""
    if lease is None or not pod_uid or lease_holder(lease) != pod_uid:
        return None
    return read_agent_report(lease)


def quiesced(report: Optional[Mapping[str, Any]], epoch: int) -> bool:
    """Whether ``report`` says that no process of an epoch <= ``epoch`` runs on that member, nor
    will: its epoch is later, or it is that epoch and Exited or Stopped.  Waiting at ``epoch`` is
    not enough: once ``epoch`` is released, a Waiting agent whose view of the ConfigMap is not yet
    the operator's newest write starts it.  The operator releases epoch E+1 only when every
    member's report is ``quiesced(report, E)`` (seen after it wrote ``epoch`` E+1)."""
    if report is None:
        return False
    return report["epoch"] > epoch or (report["epoch"] == epoch and report["state"] in (EXITED, STOPPED))


def event_line(epoch: int, event: str, pid: int, at: datetime, code: Optional[int] = None) -> str:
    """``msjob-agent: epoch=1 start pid=123 at=2026-01-02T03:04:05.123456Z`` and, for an exit,
    ``... exit pid=123 code=143 at=...`` (logged once every process of the group is gone)."""
    if event not in (START, EXIT):
        raise ValueError(event)
    code_part = f" code={code}" if event == EXIT else ""
    return f"{LOG_PREFIX} epoch={epoch} {event} pid={pid}{code_part} at={micro_time(at)}"


@dataclass(frozen=True)
class AgentEvent:
    epoch: int
    event: str
    pid: int
    code: Optional[int]
    at: datetime


def parse_event_line(line: str) -> Optional[AgentEvent]:
    """The ``AgentEvent`` of an ``event_line`` (None for any other line)."""
    m = _EVENT.match(line.strip())
    if not m:
        return None
    at = datetime.strptime(m.group(5), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    code = int(m.group(4)) if m.group(4) is not None else None
    return AgentEvent(int(m.group(1)), m.group(2), int(m.group(3)), code, at)


def agent_grace_seconds(termination_grace_period: Optional[int]) -> float:
    """What the operator passes as ``--grace-seconds``: the pod's terminationGracePeriodSeconds
    (default 30) minus ``GRACE_MARGIN_SECONDS``, at least 1 s."""
    total = 30 if termination_grace_period is None else int(termination_grace_period)
    return max(1.0, total - GRACE_MARGIN_SECONDS)
