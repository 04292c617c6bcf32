"""The MSJob API: the single source of truth for the CRD schema and for the operator's reading of MSJobs.

Field names and meanings follow MindSpore's ms-operator (``mindspore.gitee.com/v1``) and Kubeflow's
common ``RunPolicy`` so that existing YAML keeps working; everything this project adds is optional.

Admission rules live next to the fields they guard, as CEL ``x-kubernetes-validations`` that the CRD
generator (``msjob_operator.api.crd``) copies into the schema.  Every message names the field and says
what to do, because it is what a person sees from ``kubectl apply``.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import ConfigDict, Field

from .enums import (  # noqa: F401  (the spec's enums, also imported from here)
    MS_ROLES,
    REPLICA_TYPES,
    CleanPodPolicy,
    ConditionType,
    ExitCodeOperator,
    FailureAction,
    LaunchMode,
    ReplicaType,
    RestartPolicy,
    RestartStrategy,
    StallAction,
    StartupDeadlineAction,
    SuccessPolicy,
)
from .limits import (
    DEFAULT_BACKOFF_LIMIT,
    DEFAULT_SCHEDULER_PORT,
    MAX_CLUSTER_TIMEOUT_SECONDS,
    MAX_COUNT,
    MAX_NAME_LENGTH,
    MAX_REPLICAS,
    MAX_SECONDS,
)
from .policies import FailurePolicy
from .schema import ApiModel, cel, rules

GROUP = "mindspore.gitee.com"
VERSION = "v1"
KIND = "MSJob"
PLURAL = "msjobs"
SINGULAR = "msjob"
SHORT_NAMES = ["msj"]
API_VERSION = f"{GROUP}/{VERSION}"

OPERATOR_NAME = "msjob-operator"


class DeviceSettings(ApiModel):
    resource: str = Field(
        max_length=253, description="Extended resource of the accelerator, e.g. huawei.com/Ascend910, "
                                    "huawei.com/npu, nvidia.com/gpu.",
        json_schema_extra={"pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
                           **rules(cel("self.contains('/') && !self.startsWith('kubernetes.io/') && "
                                       "!self.startsWith('requests.')",
                                       "spec.mindspore.devices.resource must be an extended resource with a domain, "
                                       "such as "
                                       "huawei.com/Ascend910, huawei.com/npu or nvidia.com/gpu (not cpu, memory or "
                                       "another "
                                       "kubernetes.io resource)."))},
    )
    per_pod: int = Field(alias="perPod", ge=1, le=128,
                         description="Devices per Worker pod; added to the Worker containers' limits if missing.")


class SchedulingPolicy(ApiModel):
    min_available: Optional[int] = Field(
        None, alias="minAvailable", ge=1, le=3 * MAX_REPLICAS, description="Pods that must be schedulable together "
                                                                           "(gang size). Defaults to all pods."
    )
    queue: Optional[str] = Field(None, description="Volcano queue the job's PodGroup goes to.")
    min_resources: Optional[dict[str, Any]] = Field(
        None, alias="minResources", description="Resources the gang needs before it is admitted. Defaults to the "
                                                "sum of the pods' requests.",
        json_schema_extra={"x-msjob-quantity-map": True},
    )
    priority_class: Optional[str] = Field(None, alias="priorityClass",
                                          description="PriorityClass of the job's PodGroup and pods.")
    schedule_timeout_seconds: Optional[int] = Field(
        None, alias="scheduleTimeoutSeconds", ge=1, le=MAX_SECONDS, description="Seconds the gang may wait to be "
                                                                                "scheduled."
    )


class RunPolicy(ApiModel):
    clean_pod_policy: Optional[CleanPodPolicy] = Field(
        None, alias="cleanPodPolicy",
        description="Which pods to delete when the job finishes: Running (default; pods still running or pending), "
                    "All, or None.",
    )
    ttl_seconds_after_finished: Optional[int] = Field(
        None, alias="ttlSecondsAfterFinished", ge=0, le=MAX_SECONDS, description="Delete the MSJob this many "
                                                                                 "seconds after it finished."
    )
    active_deadline_seconds: Optional[int] = Field(
        None, alias="activeDeadlineSeconds", ge=1, le=MAX_SECONDS, description="Fail the job when it has been "
                                                                               "active longer than this."
    )
    backoff_limit: Optional[int] = Field(
        None, alias="backoffLimit", ge=0, le=MAX_COUNT,
        description="Counted restarts (gang or replica) allowed before the job fails. "
                    f"Default {DEFAULT_BACKOFF_LIMIT}.",
    )
    scheduling_policy: Optional[SchedulingPolicy] = Field(None, alias="schedulingPolicy")
    suspend: Optional[bool] = Field(
        None, description="True deletes the job's pods and keeps the job; setting it back to false recreates them."
    )
    managed_by: Optional[str] = Field(
        None, alias="managedBy", max_length=63,
        description=f"Controller that reconciles this job. Empty or '{GROUP}/{OPERATOR_NAME}' means this operator; "
                    "any other value makes it leave the job alone (e.g. for Kueue's MultiKueue).",
        json_schema_extra=rules(cel("self == oldSelf", "runPolicy.managedBy is immutable; delete and recreate the "
                                                       "job to hand it to another controller.")),
    )


class MindSporeSettings(ApiModel):
    scheduler_port: Optional[int] = Field(
        None, alias="schedulerPort", ge=1, le=65535,
        description=f"MS_SCHED_PORT. Default: the container port named 'msjob-port', else {DEFAULT_SCHEDULER_PORT}.",
    )
    cluster_timeout_seconds: Optional[int] = Field(
        None, alias="clusterTimeoutSeconds", ge=1, le=MAX_CLUSTER_TIMEOUT_SECONDS, description="MS_TOPO_TIMEOUT: "
                                                                                               "seconds the "
                                                                                               "processes have to "
                                                                                               "form the cluster."
    )
    enable_recovery: Optional[bool] = Field(
        None, alias="enableRecovery",
        description="Sets MS_ENABLE_RECOVERY=1; a failed Scheduler is then recreated alone at the same address "
                    "instead of restarting the gang.",
    )
    launch_mode: Optional[LaunchMode] = Field(
        None, alias="launchMode",
        description="How processes form the cluster: Dynamic (default; one process per pod and a Scheduler replica), "
                    "Msrun (one process per device, msrun in each Worker pod, no Scheduler replica) or RankTable "
                    "(Ascend HCCL rank table, no Scheduler replica).",
    )
    devices: Optional[DeviceSettings] = Field(
        None, description="The accelerator of the Worker pods. Default: read from the Worker template's limits "
                          "(huawei.com/*, nvidia.com/gpu).")
    processes_per_pod: Optional[int] = Field(
        None, alias="processesPerPod", ge=1, le=128,
        description="MindSpore processes per Worker pod in Msrun and RankTable modes. Default: the devices per pod, "
                    "else 1.")


_REPLICA_RULES = rules(
    cel("has(self.template) && has(self.template.spec) && has(self.template.spec.containers) && "
        "size(self.template.spec.containers) > 0",
        "template.spec.containers must list at least one container (the one named 'mindspore', or the first, runs "
        "MindSpore).",
        field_path=".template"),
)


class HealthSettings(ApiModel):
    report_progress: Optional[bool] = Field(
        None, alias="reportProgress",
        description="Turn on MindSpore's step-time dump in worker 0 and run a reporter sidecar that publishes step, "
                    "step time, throughput and heartbeat into status.progress and metrics. The script needs no change.",
    )
    interval_seconds: Optional[int] = Field(None, alias="intervalSeconds", ge=1, le=3600,
                                            description="How often the reporter publishes (default 10).")
    stall_timeout_seconds: Optional[int] = Field(
        None, alias="stallTimeoutSeconds", ge=10, le=MAX_SECONDS,
        description="No training step for this long marks the job Stalled and applies stallAction. Counted from the "
                    "last step, or from the time all pods were running before the first step (a slow start is "
                    "allowed this long).",
    )
    stall_action: Optional[StallAction] = Field(None, alias="stallAction",
                                                description="RestartJob (default; counted) or FailJob.")
    startup_grace_seconds: Optional[int] = Field(
        None, alias="startupGraceSeconds", ge=0, le=86400,
        description="How long a slow start (MindSpore's import, forming the cluster, graph compilation) may take: "
                    "before the first "
                    "step, stall detection waits this long after all pods are running (default: "
                    "stallTimeoutSeconds), and a "
                    "container with a livenessProbe but no startupProbe gets a startupProbe allowing this long "
                    "(default 1800).",
    )


class ReplicaSpec(ApiModel):
    replicas: Optional[int] = Field(1, ge=0, le=MAX_REPLICAS, description="Number of pods of this type.")
    restart_policy: Optional[RestartPolicy] = Field(
        None, alias="restartPolicy",
        description="What a member failure means without a matching failurePolicy rule: OnFailure (default) and "
                    "Always restart the gang, Never fails the job, ExitCode restarts on 128+ and fails on 1-127.",
    )
    template: dict[str, Any] = Field(
        default_factory=dict, description="Pod template of this replica type.",
        json_schema_extra={"x-msjob-podtemplate": True}
    )


class ReplicaSpecs(ApiModel):
    scheduler: Optional[ReplicaSpec] = Field(
        None, alias="Scheduler",
        json_schema_extra=rules(cel("!has(self.replicas) || self.replicas == 1",
                                    "msReplicaSpecs.Scheduler.replicas must be 1: a MindSpore cluster has exactly "
                                    "one scheduler.",
                                    field_path=".replicas"), *_REPLICA_RULES["x-kubernetes-validations"]),
    )
    ps: Optional[ReplicaSpec] = Field(None, alias="PS", json_schema_extra=_REPLICA_RULES)
    worker: Optional[ReplicaSpec] = Field(
        None, alias="Worker",
        json_schema_extra=rules(cel("!has(self.replicas) || self.replicas >= 1",
                                    "msReplicaSpecs.Worker.replicas must be at least 1.", field_path=".replicas"),
                                *_REPLICA_RULES["x-kubernetes-validations"]),
    )

    def items(self) -> list[tuple[str, ReplicaSpec]]:
        """(type, spec) for the types present, in creation order."""
        found = {"Scheduler": self.scheduler, "PS": self.ps, "Worker": self.worker}
        return [(t, spec) for t in REPLICA_TYPES if (spec := found[t]) is not None]


_REPLICA_SPECS_RULES = rules(
    cel("has(self.Worker)", "msReplicaSpecs.Worker is required: a job needs at least one Worker replica."),
    cel("!has(self.PS) || has(self.Scheduler)",
        "msReplicaSpecs.PS needs a Scheduler: add msReplicaSpecs.Scheduler with replicas: 1.", field_path=".PS"),
    cel("has(oldSelf.Scheduler) == has(self.Scheduler) && has(oldSelf.PS) == has(self.PS)",
        "msReplicaSpecs: replica types cannot be added or removed after creation; create a new MSJob instead."),
    cel("!has(self.PS) || !has(oldSelf.PS) || (has(self.PS.replicas) ? self.PS.replicas : 1) == "
        "(has(oldSelf.PS.replicas) ? oldSelf.PS.replicas : 1)",
        "msReplicaSpecs.PS.replicas is immutable; create a new MSJob to change the number of parameter servers.",
        field_path=".PS.replicas"),
)


def _strategy(obj: str) -> str:
    return (f"(has({obj}.failurePolicy) && has({obj}.failurePolicy.restartStrategy) ? "
            f"{obj}.failurePolicy.restartStrategy : 'Recreate')")


_IN_PLACE = f"{_strategy('self')} == 'InPlace'"


def _main_container_has_command(replica_type: str) -> str:
    """CEL: the replica type is absent, or its main container (named 'mindspore', else the first) has a command."""
    replica = f"self.msReplicaSpecs.{replica_type}"
    cs = f"{replica}.template.spec.containers"
    return (f"!has({replica}) || !has({replica}.template) || !has({replica}.template.spec) || !has({cs}) || "
            f"size({cs}) == 0 || ({cs}.exists(c, c.name == 'mindspore') ? "
            f"{cs}.exists(c, c.name == 'mindspore' && has(c.command) && size(c.command) > 0) : "
            f"has({cs}[0].command) && size({cs}[0].command) > 0)")


_SPEC_RULES = rules(
    cel(f"!({_IN_PLACE}) || ({' && '.join(f'({_main_container_has_command(t)})' for t in REPLICA_TYPES)})",
        "spec.failurePolicy.restartStrategy InPlace needs an explicit command in the main container (the one named "
        "'mindspore', or the first) of every replica type: the restart agent runs that command, and the image's "
        "ENTRYPOINT is not visible to the operator. Set command (and args), or use restartStrategy Recreate.",
        field_path=".failurePolicy.restartStrategy"),
    cel(f"{_strategy('self')} == {_strategy('oldSelf')}",
        "spec.failurePolicy.restartStrategy is immutable: the members' pods are built for it; create a new MSJob to "
        "change it.", field_path=".failurePolicy.restartStrategy"),
    cel("!has(self.failurePolicy) || !has(self.failurePolicy.rules) || !self.failurePolicy.rules.exists(r, r.action "
        "== 'Ignore') "
        "|| (has(self.enableDynamicWorker) && self.enableDynamicWorker)",
        "spec.failurePolicy.rules with action Ignore need spec.enableDynamicWorker: true: only an elastic job can "
        "run on "
        "after a member failed.", field_path=".failurePolicy.rules"),
    cel("!has(self.mindspore) || !has(self.mindspore.launchMode) || self.mindspore.launchMode != 'RankTable' || "
        "(has(self.mindspore.devices) ? self.mindspore.devices.resource.startsWith('huawei.com/') : "
        "has(self.msReplicaSpecs.Worker) && has(self.msReplicaSpecs.Worker.template) && "
        "has(self.msReplicaSpecs.Worker.template.spec) && "
        "self.msReplicaSpecs.Worker.template.spec.containers.exists(c, has(c.resources) && has(c.resources.limits) && "
        "c.resources.limits.exists(k, k.startsWith('huawei.com/'))))",
        "spec.mindspore.launchMode RankTable needs an Ascend device: set spec.mindspore.devices.resource to a "
        "huawei.com/ "
        "resource (e.g. huawei.com/Ascend910) or request one in the Worker container's limits; the HCCL rank table "
        "lists "
        "NPUs only.", field_path=".mindspore.launchMode"),
    cel("!has(self.mindspore) || !has(self.mindspore.launchMode) || self.mindspore.launchMode == 'Dynamic' || "
        "(!has(self.msReplicaSpecs.Scheduler) && !has(self.msReplicaSpecs.PS))",
        "spec.mindspore.launchMode Msrun and RankTable run Worker replicas only: remove msReplicaSpecs.Scheduler "
        "and PS "
        "(msrun starts the scheduler in worker 0; a rank table needs none).", field_path=".msReplicaSpecs"),
    # Transition rules on a field run only while it exists on both sides; these close the gap.
    cel("has(self.mindspore) == has(oldSelf.mindspore)",
        "spec.mindspore is immutable; create a new MSJob to change MindSpore settings.", field_path=".mindspore"),
    cel("(has(self.runPolicy) && has(self.runPolicy.suspend) && self.runPolicy.suspend) || "
        "((has(self.runPolicy) && has(self.runPolicy.schedulingPolicy)) == (has(oldSelf.runPolicy) && "
        "has(oldSelf.runPolicy.schedulingPolicy)) && "
        "(!(has(self.runPolicy) && has(self.runPolicy.schedulingPolicy)) || self.runPolicy.schedulingPolicy == "
        "oldSelf.runPolicy.schedulingPolicy))",
        "runPolicy.schedulingPolicy can change only while the job is suspended (runPolicy.suspend: true): "
        "a gang scheduler cannot apply a new gang size, queue or priority to a running gang.",
        field_path=".runPolicy.schedulingPolicy"),
    cel("(has(self.runPolicy) && has(self.runPolicy.managedBy) ? self.runPolicy.managedBy : '') == "
        "(has(oldSelf.runPolicy) && has(oldSelf.runPolicy.managedBy) ? oldSelf.runPolicy.managedBy : '')",
        "runPolicy.managedBy is immutable; delete and recreate the job to hand it to another controller.",
        field_path=".runPolicy.managedBy"),
)


class MSJobSpec(ApiModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", use_enum_values=True,
                              json_schema_extra=_SPEC_RULES)

    run_policy: Optional[RunPolicy] = Field(None, alias="runPolicy")
    success_policy: Optional[SuccessPolicy] = Field(
        None, alias="successPolicy", description="'' (default): the job succeeds when worker 0 succeeds; "
                                                 "AllWorkers: when every worker succeeds."
    )
    ms_replica_specs: ReplicaSpecs = Field(
        alias="msReplicaSpecs", description="Scheduler, PS and Worker replicas.", json_schema_extra=_REPLICA_SPECS_RULES
    )
    enable_dynamic_worker: Optional[bool] = Field(
        None, alias="enableDynamicWorker", description="Failed workers may be ignored by failurePolicy rules with "
                                                       "action Ignore (elastic jobs)."
    )
    failure_policy: Optional[FailurePolicy] = Field(None, alias="failurePolicy")
    mindspore: Optional[MindSporeSettings] = Field(
        None, json_schema_extra=rules(cel("self == oldSelf", "spec.mindspore is immutable; create a new MSJob to "
                                                             "change MindSpore settings."))
    )
    health: Optional[HealthSettings] = Field(
        None, json_schema_extra=rules(cel("!has(self.stallTimeoutSeconds) || (has(self.reportProgress) && "
                                          "self.reportProgress)",
                                          "spec.health.stallTimeoutSeconds needs spec.health.reportProgress: true "
                                          "(stalls are seen through progress reports).",
                                          field_path=".stallTimeoutSeconds")),
    )


_ROOT_RULES = rules(
    cel(f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
        f"metadata.name must be at most {MAX_NAME_LENGTH} characters: pod hostnames '<name>-worker-<index>' must "
        "fit the 63-character DNS label limit. Choose a shorter name.",
        field_path=".metadata.name", reason="FieldValueInvalid"),
    cel("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "metadata.name must start with a letter and contain only lowercase letters, digits and '-', because the "
        "job's Services are named after it.",
        field_path=".metadata.name", reason="FieldValueInvalid"),
)


class MSJob(ApiModel):
    api_version: str = Field(API_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: MSJobSpec
    status: Optional[dict[str, Any]] = None

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "default"))


ROOT_VALIDATIONS = _ROOT_RULES
