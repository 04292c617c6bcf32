"""Progress and stall detection: worker 0's reporter annotation -> status.progress, Stalled, an action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from msjob_runtime.progress import parse_time, read_progress

from ..api import naming
from ..api.enums import ConditionType
from ..api.models import MSJobSpec
from ..api.status import ProgressStatus
from ..builders import rbac
from ..builders import reporter as sidecar
from ..builders.containers import main_container
from . import conditions as cond

if TYPE_CHECKING:
    from .context import PassContext
from .stall_clock import stall_check


def enabled(spec: MSJobSpec) -> bool:
    return bool(spec.health and spec.health.report_progress)


def reporter_pod(job_name: str) -> str:
    return naming.pod_name(job_name, "Worker", 0)


def prerequisites(job: dict[str, Any], spec: MSJobSpec) -> list[dict[str, Any]]:
    """The reporter's identity: it may read and annotate its own pod, nothing else."""
    name = job["metadata"]["name"]
    user_account = (dict(spec.ms_replica_specs.items())["Worker"].template.get("spec") or {}).get("serviceAccountName")
    role = rbac.role(job, [reporter_pod(name)])
    if user_account:
        # The pod runs as the user's account: grant the role to that one.
        return [role, rbac.role_binding(job, [user_account])]
    return [rbac.service_account(job), role, rbac.role_binding(job)]


def add_reporter(pod: dict[str, Any], spec: MSJobSpec, image: str) -> None:
    """Worker 0 dumps step times into a shared emptyDir; a sidecar publishes them."""
    pod_spec = pod["spec"]
    interval = (spec.health.interval_seconds if spec.health else None) or sidecar.DEFAULT_INTERVAL
    pod_spec.setdefault("volumes", []).append(sidecar.run_volume())
    container = main_container(pod_spec)
    if container is not None:
        container.setdefault("volumeMounts", []).append(sidecar.run_mount())
        taken = {e.get("name") for e in container.get("env") or []}
        container.setdefault("env", []).extend(e for e in sidecar.perf_env() if e["name"] not in taken)
    user, group = sidecar.reporter_user(pod_spec)  # read the shared files as the trainer wrote them
    # A native sidecar (an init container that keeps running) ends with the pod, so it never
    # keeps a finished worker Running.
    pod_spec.setdefault("initContainers", []).append(
        sidecar.reporter_container(image, interval, run_as_user=user, run_as_group=group))
    if not pod_spec.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = rbac.reporter_name(pod["metadata"]["labels"][naming.JOB_NAME_LABEL])


def worker0_report(p: "PassContext") -> Optional[dict[str, Any]]:
    """Worker 0's report as its pod now carries it; None without that pod or a report."""
    name = reporter_pod(p.name)
    return read_progress(p.raw_pods[name]) if name in p.raw_pods else None


def copy_progress(p: "PassContext") -> None:
    """Worker 0's last report into status.progress (kept when the pod is gone or has none yet)."""
    progress = worker0_report(p)
    if progress is not None:
        p.status.progress = ProgressStatus.model_validate({"pod": reporter_pod(p.name), **progress})


def update(p: "PassContext", spec: MSJobSpec) -> tuple[bool, str]:
    """Return (stalled, message) from worker 0's report (status.progress is copied by the progress
    phase, earlier in the pass) and schedule the next check."""
    progress = worker0_report(p)
    timeout = spec.health.stall_timeout_seconds if spec.health else None
    running = cond.get(p.conditions, ConditionType.RUNNING)
    if not timeout or not running or running.status != cond.TRUE:
        return False, ""
    running_since = parse_time(running.last_transition_time)
    stalled, remaining, message = stall_check(progress, running_since=running_since, now=p.now, timeout_s=timeout,
                                              startup_s=spec.health.startup_grace_seconds if spec.health else None)
    if stalled:
        return True, message
    if remaining is not None:
        p.plan.requeue(remaining)
    if cond.is_true(p.conditions, ConditionType.STALLED):
        p.condition(ConditionType.STALLED, cond.FALSE, "Progressing", "training steps are being made again")
    return False, ""

