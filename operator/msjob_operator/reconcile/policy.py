"""What to do about a member failure: the failurePolicy rules first, then the replica's restartPolicy."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..api.enums import FailureAction, ReplicaType, RestartPolicy
from ..api.models import MSJobSpec
from ..api.policies import FailurePolicyRule
from .observed import PodView
from .output_rules import output_matches

# When several members fail in one pass, the strongest action wins.
_SEVERITY = {
    FailureAction.IGNORE.value: 0,
    FailureAction.RESTART_REPLICA.value: 1,
    FailureAction.RESTART_JOB_IGNORE_BUDGET.value: 2,
    FailureAction.RESTART_JOB.value: 3,
    FailureAction.FAIL_JOB.value: 4,
}


@dataclasses.dataclass(frozen=True)
class Decision:
    action: str
    rule: Optional[str]  # name of the matching rule, or a description of the default used
    pod: PodView


def severity(action: str) -> int:
    return _SEVERITY[action]


def _rule_matches(rule: FailurePolicyRule, pod: PodView) -> bool:
    if rule.replica_types and pod.replica_type not in rule.replica_types:
        return False
    if rule.on_pod_disruption is not None and rule.on_pod_disruption != pod.disrupted:
        return False
    if rule.on_exit_codes is not None:
        # A member killed by its deletion exits 137 or 143: the kill's code, not the member's.
        code = None if pod.stopped_by_deletion else pod.exit_code
        if code is None or code == 0:
            return False
        listed = code in rule.on_exit_codes.values
        if (rule.on_exit_codes.operator == "In") != listed:
            return False
    # The output of a member killed by its deletion tells of the kill, not of the member.
    if rule.on_output is not None and (pod.stopped_by_deletion or not output_matches(rule.on_output, pod.message)):
        return False
    return True


def _replica_restart_policy(spec: MSJobSpec, replica_type: Optional[str]) -> str:
    for rtype, replica in spec.ms_replica_specs.items():
        if rtype == replica_type and replica.restart_policy:
            return replica.restart_policy
    return RestartPolicy.ON_FAILURE.value


def decide(spec: MSJobSpec, pod: PodView) -> Decision:
    """The action for one failed or lost member."""
    policy = spec.failure_policy
    for position, rule in enumerate((policy.rules if policy else None) or []):
        if _rule_matches(rule, pod):
            action = rule.action
            worker = pod.replica_type == ReplicaType.WORKER.value
            if action == FailureAction.IGNORE.value and worker and not spec.enable_dynamic_worker:
                # Ignoring a lost worker only makes sense for elastic jobs; otherwise the cluster has a hole.
                continue
            return Decision(action, rule.name or f"failurePolicy.rules[{position}]", pod)

    restart_policy = _replica_restart_policy(spec, pod.replica_type)
    if pod.replica_type == ReplicaType.SCHEDULER.value and spec.mindspore and spec.mindspore.enable_recovery:
        # With MS_ENABLE_RECOVERY the workers re-register with a new scheduler at the same Service address.
        return Decision(FailureAction.RESTART_REPLICA.value, "scheduler recovery (spec.mindspore.enableRecovery)", pod)
    if restart_policy == RestartPolicy.NEVER.value:
        return Decision(FailureAction.FAIL_JOB.value, "restartPolicy Never", pod)
    if pod.disrupted:
        # Evicted, preempted, deleted or lost with its node: not the job's fault, so not counted against backoffLimit.
        return Decision(FailureAction.RESTART_JOB_IGNORE_BUDGET.value, "pod disruption", pod)
    if restart_policy == RestartPolicy.EXIT_CODE.value:
        code = pod.exit_code
        if code is not None and 1 <= code <= 127:
            return Decision(FailureAction.FAIL_JOB.value, f"restartPolicy ExitCode (exit code {code} is permanent)",
                            pod)
        return Decision(FailureAction.RESTART_JOB.value, "restartPolicy ExitCode (retryable)", pod)
    return Decision(FailureAction.RESTART_JOB.value, f"restartPolicy {restart_policy}", pod)
