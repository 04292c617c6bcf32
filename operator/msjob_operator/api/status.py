"""The MSJob's status: written only by the operator, read by the SDK and the CLI.

The reconcile builds it as these typed models (``MSJobStatus``) and writes ``MSJobStatus.dump()``;
``MSJobStatus.read()`` takes what the API server holds without ever failing on it (a hand-edited or
older status loses the fields that do not parse, nothing else).
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field, ValidationError

from .schema import ApiModel


class Condition(ApiModel):
    type: str
    status: str = Field(description="True, False or Unknown.")
    reason: Optional[str] = None
    message: Optional[str] = None
    last_update_time: Optional[str] = Field(None, alias="lastUpdateTime")
    last_transition_time: Optional[str] = Field(None, alias="lastTransitionTime")


class ReplicaStatus(ApiModel):
    active: Optional[int] = Field(None, description="Pods pending or running.")
    ready: Optional[int] = Field(None, description="Pods running and ready.")
    succeeded: Optional[int] = None
    failed: Optional[int] = None
    restarts: Optional[int] = Field(None, description="Pods of this type recreated alone (action RestartReplica).")
    selector: Optional[str] = Field(None, description="Label selector of this type's pods (for the scale subresource).")


class MemberFailure(ApiModel):
    pod: str
    replica_type: Optional[str] = Field(None, alias="replicaType")
    index: Optional[int] = None
    container: Optional[str] = None
    exit_code: Optional[int] = Field(None, alias="exitCode")
    reason: Optional[str] = Field(None, description="Container or pod reason, e.g. Error, OOMKilled, Evicted.")
    message: Optional[str] = Field(None, description="Termination message or the last lines of the container's log.")
    node: Optional[str] = None
    time: Optional[str] = None
    action: Optional[str] = Field(None, description="What the operator did about it.")


class WaitingReplicas(ApiModel):
    reason: Optional[str] = None
    message: Optional[str] = None
    pods: Optional[int] = Field(None, description="Pods of this type held up by this cause.")


class WaitingStatus(ApiModel):
    reason: Optional[str] = Field(
        None, description="Why pods of the current attempt are not running, for programs: PodCreateRefused, "
                          "PodNameTaken, "
                          "Unschedulable, ImagePullBackOff, CreateContainerConfigError, GangNotScheduled, "
                          "RestartBackoff, ...")
    message: Optional[str] = Field(None, description="The same, for people: the API server's, scheduler's or "
                                                     "kubelet's words.")
    since: Optional[str] = Field(None, description="When this cause was first seen.")
    replica_types: Optional[dict[str, WaitingReplicas]] = Field(None, alias="replicaTypes")


class PodGroupStatus(ApiModel):
    name: Optional[str] = None
    phase: Optional[str] = Field(None, description="The gang scheduler's phase: Pending, Inqueue, Running, Unknown "
                                                   "(Volcano); Pending, Scheduled, Unschedulable (the Workload API).")
    message: Optional[str] = Field(None, description="Why the gang is not scheduled yet, from the scheduler.")


class KueueStatus(ApiModel):
    """Where a Kueue-managed job stands in its queue (operator flag --kueue, job label kueue.x-k8s.io/queue-name)."""

    workload: Optional[str] = Field(None, description="The job's Kueue Workload (kueue.x-k8s.io), named after the job.")
    local_queue: Optional[str] = Field(None, alias="localQueue")
    cluster_queue: Optional[str] = Field(None, alias="clusterQueue")
    state: Optional[str] = Field(None, description="Queued, Admitted, Evicted, Inactive or Finished.")
    reason: Optional[str] = Field(None, description="Kueue's reason, e.g. Pending, Inadmissible, Preempted.")
    message: Optional[str] = Field(None, description="For people: e.g. 'waiting for quota in ClusterQueue X: ...', "
                                                     "'admitted by ClusterQueue X'.")


class RankTableStatus(ApiModel):
    status: Optional[str] = Field(None, description="initializing until every Worker pod's devices are known, then "
                                                    "completed.")
    servers: Optional[int] = None
    ranks: Optional[int] = None
    hash: Optional[str] = Field(None, description="Digest of the hccl.json last written to the ConfigMap.")


class ProgressStatus(ApiModel):
    pod: Optional[str] = None
    step: Optional[int] = None
    epoch: Optional[int] = None
    loss: Optional[float] = None
    step_time_ms: Optional[float] = Field(None, alias="stepTimeMs")
    steps_per_second: Optional[float] = Field(None, alias="stepsPerSecond")
    heartbeat: Optional[str] = Field(None, description="Time of the last training step.")
    reported_at: Optional[str] = Field(None, alias="reportedAt")


class GangStatus(ApiModel):
    """restartStrategy InPlace: what the operator last wrote into the ConfigMap <job>-gang."""

    epoch: Optional[int] = Field(None, description="The epoch every member must be at: moved by each in-place "
                                                   "restart.")
    released: Optional[int] = Field(None, description="The highest epoch whose processes may start (the barrier); "
                                                      "below epoch while the members stop.")
    final: Optional[bool] = Field(None, description="The job has ended: the agents exit.")
    release_at: Optional[str] = Field(None, alias="releaseAt", description="The barrier is lifted no earlier than "
                                                                           "this (the backoff of restarts in a row).")
    fallback: Optional[str] = Field(None, description="Why the job runs with Recreate although it asks for InPlace "
                                                      "(e.g. an image without python3 for the agent); kept for the "
                                                      "job's life.")


class RestartRecord(ApiModel):
    """The latest gang restart, phase by phase (times to the millisecond)."""

    strategy: Optional[str] = Field(None, description="InPlace or Recreate.")
    reason: Optional[str] = None
    member: Optional[str] = Field(None, description="The pod whose failure caused it.")
    attempt: Optional[int] = Field(None, description="Recreate: the gang attempt it began.")
    epoch: Optional[int] = Field(None, description="InPlace: the epoch it moved the gang to.")
    recreated: Optional[list[str]] = Field(
        None, max_length=64, description="InPlace: members recreated instead (their pods were gone, failed, "
                                         "evicted or on a lost node).")
    failure_detected: Optional[str] = Field(None, alias="failureDetected",
                                            description="When the operator decided to restart.")
    members_stopped: Optional[str] = Field(None, alias="membersStopped",
                                           description="When no process (InPlace) or pod (Recreate) of the old gang "
                                                       "was left.")
    barrier_lifted: Optional[str] = Field(None, alias="barrierLifted",
                                          description="InPlace: when the new epoch was released.")
    members_running: Optional[str] = Field(None, alias="membersRunning",
                                           description="When every member ran again (InPlace: its new process).")
    first_step: Optional[str] = Field(None, alias="firstStep",
                                      description="The first training step after it (spec.health.reportProgress).")


class MSJobStatus(ApiModel):
    state: Optional[str] = Field(None, description="Created, Running, Restarting, Succeeded, Failed or Suspended.")
    workers: Optional[str] = Field(None, description="Ready/total workers, for kubectl get.")
    conditions: Optional[list[Condition]] = Field(
        None, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
    )
    replica_statuses: Optional[dict[str, ReplicaStatus]] = Field(None, alias="replicaStatuses")
    start_time: Optional[str] = Field(None, alias="startTime")
    completion_time: Optional[str] = Field(None, alias="completionTime")
    last_reconcile_time: Optional[str] = Field(None, alias="lastReconcileTime")
    attempt_start_time: Optional[str] = Field(None, alias="attemptStartTime",
                                              description="When the current gang attempt began: its pods are "
                                                          "created from then on (a restart's backoff puts it ahead).")
    observed_generation: Optional[int] = Field(None, alias="observedGeneration")
    restart_count: Optional[int] = Field(None, alias="restartCount",
                                         description="Restarts so far: gang restarts and members recreated alone.")
    attempt: Optional[int] = Field(
        None, description="Gang attempt the current pods belong to: bumped by every gang restart and every resume.")
    backoff_count: Optional[int] = Field(None, alias="backoffCount",
                                         description="Restarts counted against runPolicy.backoffLimit.")
    world_size: Optional[int] = Field(None, alias="worldSize", description="Worker count of the current attempt.")
    consecutive_restarts: Optional[int] = Field(
        None, alias="consecutiveRestarts",
        description="Gang restarts in a row without 10 minutes of the whole gang running; sets the backoff before "
                    "the next gang.")
    consecutive_uncounted_restarts: Optional[int] = Field(
        None, alias="consecutiveUncountedRestarts",
        description="Of those, the ones not counted against backoffLimit (see failurePolicy.uncountedRestartLimit).")
    scheduler_address: Optional[str] = Field(
        None, alias="schedulerAddress",
        description="The ClusterIP of <job>-scheduler the members were given as MS_SCHED_HOST; a deleted Service "
                    "gets it back.")
    waiting: Optional[WaitingStatus] = Field(None, description="Why pods of the current attempt are not running "
                                                               "yet, while they are not.")
    last_failure: Optional[MemberFailure] = Field(None, alias="lastFailure")
    pod_group: Optional[PodGroupStatus] = Field(None, alias="podGroup",
                                                description="The job's gang (PodGroup), when gang-scheduled.")
    kueue: Optional[KueueStatus] = Field(None, description="The job's place in Kueue, for jobs Kueue queues.")
    rank_table: Optional[RankTableStatus] = Field(None, alias="rankTable",
                                                  description="The HCCL rank table (launchMode RankTable).")
    progress: Optional[ProgressStatus] = Field(None, description="Training progress reported from worker 0 "
                                                                 "(spec.health.reportProgress).")
    gang: Optional[GangStatus] = Field(None, description="restartStrategy InPlace: the restart epoch and "
                                                         "barrier, as written into the ConfigMap <job>-gang.")
    last_restart: Optional[RestartRecord] = Field(None, alias="lastRestart",
                                                  description="The latest gang restart and the times of its phases.")
    handled_failures: Optional[list[str]] = Field(
        None, alias="handledFailures", max_length=64, description="UIDs of failed pods already acted on (so no "
                                                                  "failure is counted twice)."
    )

    @classmethod
    def read(cls, data: Any) -> "MSJobStatus":
        """The status as stored, keeping every field that parses: never an exception."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls.model_validate(data)
        except ValidationError:
            kept: dict[str, Any] = {}
            for key, value in data.items():
                try:
                    cls.model_validate({key: value})
                except ValidationError:
                    continue
                kept[key] = value
            return cls.model_validate(kept)

    def dump(self) -> dict[str, Any]:
        """The status as written: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
