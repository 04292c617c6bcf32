"""``spec.failurePolicy``: what a member's failure does (rules on exit codes, disruptions and output), the
startup deadline, and how a gang restart restarts the members (Recreate or InPlace)."""

from __future__ import annotations

from typing import Optional

from pydantic import ConfigDict, Field

from .enums import ExitCodeOperator, FailureAction, ReplicaType, RestartStrategy, StartupDeadlineAction
from .limits import DEFAULT_UNCOUNTED_RESTART_LIMIT, MAX_OUTPUT_PATTERN_LENGTH, MAX_SECONDS
from .schema import ApiModel, cel, rules


class ExitCodesRequirement(ApiModel):
    operator: ExitCodeOperator = Field(description="In: the rule matches these codes; NotIn: every non-zero code "
                                                   "but these.")
    values: list[int] = Field(min_length=1, max_length=255, description="Container exit codes (1-255).",
                              json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 255}})


_IGNORE_RULES = rules(
    cel("self.action != 'Ignore' || has(self.replicaTypes)",
        "an Ignore rule must list replicaTypes (PS and/or Worker): ignoring every type would ignore the "
        "Scheduler too."),
    cel("self.action != 'Ignore' || !has(self.replicaTypes) || !self.replicaTypes.exists(t, t == 'Scheduler')",
        "an Ignore rule cannot ignore the Scheduler: a MindSpore cluster cannot run on without its scheduler; "
        "remove Scheduler from replicaTypes."),
)


class FailurePolicyRule(ApiModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", use_enum_values=True,
                              json_schema_extra=_IGNORE_RULES)

    name: Optional[str] = Field(None, max_length=63,
                                description="Shown in the job's conditions and Events when the rule fires.")
    action: FailureAction
    on_exit_codes: Optional[ExitCodesRequirement] = Field(None, alias="onExitCodes")
    on_pod_disruption: Optional[bool] = Field(
        None, alias="onPodDisruption", description="True matches pods evicted or preempted (condition "
                                                   "DisruptionTarget); false matches only other failures."
    )
    replica_types: Optional[list[ReplicaType]] = Field(
        None, alias="replicaTypes", max_length=3, description="Replica types the rule applies to (default: all)."
    )
    on_output: Optional[str] = Field(
        None, alias="onOutput", min_length=1, max_length=MAX_OUTPUT_PATTERN_LENGTH,
        description="A regular expression (RE2 syntax) searched for in the member's last output: the last 80 lines "
                    "(at most 2 KiB) of its log, from the pod's termination message (Recreate) or the restart "
                    "agent's report (InPlace). Anywhere in it: use (?m) for ^ and $ at line ends, (?i) to ignore "
                    "case. With onExitCodes, both must match. Never matches a member deleted while it ran.",
        json_schema_extra=rules(cel("!''.matches(self) || ''.matches(self)",
                                    "onOutput must be a valid RE2 regular expression (no lookaround or "
                                    "backreferences), e.g. '(?i)hccl.*timeout' or 'out of memory'.")),
    )


class FailurePolicy(ApiModel):
    rules: Optional[list[FailurePolicyRule]] = Field(
        None, max_length=32, description="Checked in order on each member failure; the first match decides. Without "
                                         "a match the replica's restartPolicy decides."
    )
    startup_deadline_seconds: Optional[int] = Field(
        None, alias="startupDeadlineSeconds", ge=1, le=MAX_SECONDS,
        description="Seconds every pod of an attempt has to be running "
                    "(e.g. not stuck Pending or in ImagePullBackOff).",
    )
    startup_deadline_action: Optional[StartupDeadlineAction] = Field(
        None, alias="startupDeadlineAction", description="What to do when the startup deadline passes: FailJob "
                                                         "(default) or RestartJob (counted)."
    )
    restart_strategy: Optional[RestartStrategy] = Field(
        None, alias="restartStrategy",
        description="How a gang restart restarts the members: Recreate (default) deletes and recreates every pod; "
                    "InPlace restarts the training processes inside the same pods (an agent supervises each "
                    "member's command, which must then be set explicitly; the image needs python3). Immutable.",
    )
    uncounted_restart_limit: Optional[int] = Field(
        None, alias="uncountedRestartLimit", ge=0, le=10000,
        description="Gang restarts not counted against backoffLimit (evictions, preemptions, deletions, lost nodes or "
                    "members) allowed in a row, without 10 minutes of the whole gang running in between; one more "
                    f"fails the job (reason UncountedRestartLimitExceeded). Default {DEFAULT_UNCOUNTED_RESTART_LIMIT}.",
    )
