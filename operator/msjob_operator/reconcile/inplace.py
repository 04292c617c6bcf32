"""restartStrategy InPlace, the parts the other phases call: is it on, the gang ConfigMap the plan
writes, the agent in new members, and whether the members' processes (not only their pods) run.

The gang's state lives in ``status.gang`` (what the operator last decided: ``epoch``, ``released``,
``final``) and in the ConfigMap ``<job>-gang`` (what the agents watch); every pass writes the
ConfigMap when the observed one differs from the status, so a write lost to a crash or an error is
made again by the next pass.  The protocol is docs/in-place-restart.md.
"""

from __future__ import annotations

from typing import Any, Optional

from msjob_runtime.agent_protocol import EXITED, STOPPED, gang_configmap_name, member_lease_name, parse_gang

from ..api import naming
from ..api.enums import CleanPodPolicy, RestartStrategy
from ..api.models import MSJobSpec
from ..api.status import GangStatus
from ..builders import agent as agent_builder
from ..builders.containers import main_container
from ..builders.runtime import AGENT_PYTHON
from .context import Gang, PassContext, expected_keys
from .observed import PodView


def enabled(spec: MSJobSpec) -> bool:
    policy = spec.failure_policy
    return bool(policy and policy.restart_strategy == RestartStrategy.IN_PLACE.value)


def unavailable(spec: MSJobSpec) -> Optional[str]:
    """Why an InPlace job's members cannot run under the agent (admission refuses this; an object stored
    before that rule can still get here), or None."""
    for rtype, replica in spec.ms_replica_specs.items():
        container = main_container((replica.template or {}).get("spec") or {})
        if container is not None and not container.get("command"):
            return (f"the {rtype} template's main container has no command (the agent must run it; the image's "
                    "ENTRYPOINT is not visible to the operator)")
    return None


def active(p: PassContext) -> bool:
    """InPlace is on and the members run under the agent (not fallen back to Recreate)."""
    fell_back = p.status.gang is not None and p.status.gang.fallback
    return enabled(p.spec) and unavailable(p.spec) is None and not fell_back


# Container runtimes' words for a command that is not in the image: runc and crun say
# 'exec: "python3": executable file not found in $PATH', others 'no such file or directory'.
_START_FAILURES = ("StartError", "ContainerCannotRun", "RunContainerError", "CreateContainerError")


def missing_python(pod: PodView) -> Optional[str]:
    """The runtime's message when the member's container could not start because its image has no
    interpreter for the agent; None otherwise."""
    for reason, message in ((pod.reason, pod.message), (pod.waiting_reason, pod.waiting_message)):
        if reason in _START_FAILURES and message and f'"{AGENT_PYTHON}"' in message:
            return message
    return None


def state(p: PassContext) -> GangStatus:
    if p.status.gang is None:
        p.status.gang = GangStatus(epoch=0, released=0)
    return p.status.gang


def epoch(p: PassContext) -> int:
    return state(p).epoch or 0


def released(p: PassContext) -> int:
    return state(p).released or 0


def restarting(p: PassContext) -> bool:
    """An in-place restart is under way: the members stop, the new epoch is not released yet."""
    return released(p) < epoch(p)


def write_gang(p: PassContext) -> None:
    """Put the gang ConfigMap with the status's data into the plan (once), before any pod."""
    gang = state(p)
    body = agent_builder.gang_configmap(p.job, gang.epoch or 0, gang.released or 0, bool(gang.final))
    name = body["metadata"]["name"]
    p.plan.apply_configmaps[:] = [c for c in p.plan.apply_configmaps if c["metadata"]["name"] != name]
    p.plan.apply_configmaps.append(body)


def sync_gang(p: PassContext) -> None:
    """At the end of every pass: write the ConfigMap when the observed one says something else than the
    status (or is missing while the job still runs). A prerequisite: applied before any pod."""
    gang = state(p)
    observed = p.configmaps.get(gang_configmap_name(p.name))
    if observed is None:
        if not gang.final:
            write_gang(p)
        return
    try:
        seen = parse_gang(observed.get("data"))
    except ValueError:
        write_gang(p)
        return
    if (seen.epoch, seen.released, seen.final) != (gang.epoch or 0, gang.released or 0, bool(gang.final)):
        write_gang(p)


def sync_leases(p: PassContext) -> None:
    """At the end of every pass until the job has ended: each expected member's Lease, created when
    missing (a prerequisite: applied before any pod, so an agent finds it). Level-based: one deleted by
    hand comes back, and its agent's retried report lands on it."""
    if state(p).final:
        return
    p.plan.create_objects.extend(agent_builder.member_lease(p.job, pod) for pod in member_names(p)
                                 if member_lease_name(pod) not in p.leases)


def member_names(p: PassContext) -> list[str]:
    """The pod names of every member the job should have."""
    return [naming.pod_name(p.name, rtype, index) for rtype, index in expected_keys(p.spec)]


def equip(p: PassContext, pods: list[dict[str, Any]]) -> None:
    """New members of an InPlace job run under the agent; the agents' identity goes first (prerequisites of
    the plan, applied before the pods, as the gang ConfigMap the pass's end adds)."""
    if not pods:
        return
    why = unavailable(p.spec) if enabled(p.spec) else None
    if why is not None:
        p.event("Warning", "InPlaceUnavailable", f"restartStrategy InPlace falls back to Recreate: {why}")
    if not active(p):
        return
    for pod in pods:
        agent_builder.add_agent(pod, p.config.reporter_image)
    names = member_names(p)
    accounts = {pod["spec"]["serviceAccountName"] for pod in pods}
    for _, replica in p.spec.ms_replica_specs.items():
        accounts.add(agent_builder.pod_account((replica.template or {}).get("spec") or {}, p.name))
    created, written = agent_builder.prerequisites(p.job, names, accounts)
    p.plan.create_objects.extend(created)
    p.plan.apply_objects.extend(written)


def final_due(p: PassContext, gang: Gang) -> bool:
    """The job has ended and its clean-up (cleanPodPolicy) has been asked for: the agents left may exit.
    Not before: an agent told first would end its pod (as Succeeded, after stopping its process) before
    the clean-up could delete it."""
    policy = (p.spec.run_policy.clean_pod_policy if p.spec.run_policy else None) or CleanPodPolicy.RUNNING.value
    if policy == CleanPodPolicy.NONE.value:
        return True
    if policy == CleanPodPolicy.ALL.value:
        return all(pod.deleting for pod in gang.members)
    return not any(pod.active for pod in gang.members)


def acknowledged(pod: PodView, old_epoch: int) -> bool:
    """No process of an epoch <= ``old_epoch`` runs in this pod, nor will: it has ended, or its agent
    reported a later epoch, or Exited or Stopped at that one (agent_protocol.quiesced)."""
    if pod.finished:
        return True
    report = pod.agent
    if report is None:
        return False
    return report.epoch > old_epoch or (report.epoch == old_epoch and report.state in (EXITED, STOPPED))


def member_runs(pod: PodView, at_epoch: int) -> bool:
    """The member's process of ``at_epoch`` runs, or it has succeeded."""
    if pod.succeeded:
        return True
    report = pod.agent
    return pod.running and report is not None and report.epoch == at_epoch and (
        report.running or (report.state == EXITED and report.exit_code == 0))


def processes_running(p: PassContext, gang: Gang) -> bool:
    """For the Running condition: with InPlace, every member's process of the released epoch runs (its pod
    runs as soon as the agent does, and on through a restart); always True otherwise."""
    if not active(p):
        return True
    if restarting(p):
        return False
    at = released(p)
    return all(key in gang.current and member_runs(gang.current[key], at) for key in gang.expected)
