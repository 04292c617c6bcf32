"""The API's enumerations: shared by the CRD generation, the reconcile, the SDK and the CLI."""

from __future__ import annotations

import enum


class ReplicaType(str, enum.Enum):
    SCHEDULER = "Scheduler"
    PS = "PS"
    WORKER = "Worker"


# The order in which replica types are listed, created and reported.
REPLICA_TYPES = [ReplicaType.SCHEDULER.value, ReplicaType.PS.value, ReplicaType.WORKER.value]
MS_ROLES = {"Scheduler": "MS_SCHED", "PS": "MS_PSERVER", "Worker": "MS_WORKER"}


class RestartPolicy(str, enum.Enum):
    """What a member's failure means when no failurePolicy rule matches it.

    Pods themselves always run with ``restartPolicy: Never``: restarting one container in place
    leaves a MindSpore cluster with a hole, so the operator restarts the whole gang instead.
    """

    ALWAYS = "Always"  # same as OnFailure for a training job: the gang is restarted
    ON_FAILURE = "OnFailure"  # restart the gang, counted against runPolicy.backoffLimit
    NEVER = "Never"  # fail the job
    EXIT_CODE = "ExitCode"  # exit codes 1-127 fail the job; 128+ (signals) restart the gang


class CleanPodPolicy(str, enum.Enum):
    RUNNING = "Running"
    ALL = "All"
    NONE = "None"


class SuccessPolicy(str, enum.Enum):
    DEFAULT = ""  # worker 0 succeeded, as in ms-operator
    ALL_WORKERS = "AllWorkers"


class FailureAction(str, enum.Enum):
    FAIL_JOB = "FailJob"
    RESTART_JOB = "RestartJob"  # delete and recreate every pod; counts against backoffLimit
    RESTART_JOB_IGNORE_BUDGET = "RestartJobIgnoreBudget"  # same, not counted
    RESTART_REPLICA = "RestartReplica"  # recreate only the failed pod; counts against backoffLimit
    IGNORE = "Ignore"  # leave the failed pod; the job goes on (elastic or best-effort members)


class StartupDeadlineAction(str, enum.Enum):
    FAIL_JOB = "FailJob"
    RESTART_JOB = "RestartJob"


class ExitCodeOperator(str, enum.Enum):
    IN = "In"
    NOT_IN = "NotIn"


class LaunchMode(str, enum.Enum):
    DYNAMIC = "Dynamic"  # one MindSpore process per pod, cluster formed through the scheduler
    MSRUN = "Msrun"  # msrun in every worker pod starts one process per device; pod 0 hosts the scheduler
    RANK_TABLE = "RankTable"  # Ascend HCCL rank table (hccl.json) built from the device plugin's annotations


class StallAction(str, enum.Enum):
    RESTART_JOB = "RestartJob"
    FAIL_JOB = "FailJob"


class ConditionType(str, enum.Enum):
    STALLED = "Stalled"
    WAITING = "Waiting"  # pods of the current attempt are not running yet, and the reason is known
    CREATED = "Created"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class RestartStrategy(str, enum.Enum):
    """How a gang restarts: new pods, or new processes in the same pods (spec.failurePolicy.restartStrategy)."""

    RECREATE = "Recreate"
    IN_PLACE = "InPlace"

