"""Prometheus metrics of the operator and of the jobs it runs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

JOBS_CREATED = Counter("msjob_jobs_created_total", "MSJobs the operator started handling.", ["namespace"],
                       registry=REGISTRY)
JOBS_SUCCEEDED = Counter("msjob_jobs_succeeded_total", "MSJobs that succeeded.", ["namespace"], registry=REGISTRY)
JOBS_FAILED = Counter("msjob_jobs_failed_total", "MSJobs that failed, by reason.", ["namespace", "reason"],
                      registry=REGISTRY)
JOBS_RESTARTED = Counter(
    "msjob_jobs_restarted_total", "Gang or member restarts, by reason.", ["namespace", "reason"], registry=REGISTRY)
JOBS_SUSPENDED = Counter("msjob_jobs_suspended_total", "Times a job was suspended.", ["namespace"], registry=REGISTRY)
JOBS_STALLED = Counter("msjob_jobs_stalled_total", "Times a job was found stalled (no training step in time).",
                       ["namespace"], registry=REGISTRY)
PODS_CREATED = Counter("msjob_pods_created_total", "Pods created by the operator.", ["namespace"], registry=REGISTRY)
PODS_DELETED = Counter("msjob_pods_deleted_total", "Pods deleted by the operator.", ["namespace"], registry=REGISTRY)
RECONCILE_SECONDS = Histogram(
    "msjob_reconcile_duration_seconds", "Time of one reconcile pass (plan and apply).", registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
STATUS_MISMATCHES = Counter(
    "msjob_status_write_mismatches_total", "Status writes after which the server's status differed from the plan.",
    registry=REGISTRY)
RECONCILE_ERRORS = Counter("msjob_reconcile_errors_total", "Reconcile passes that failed and were retried.",
                           registry=REGISTRY)
TIME_TO_RUNNING = Histogram(
    "msjob_time_to_running_seconds", "Seconds from an attempt's start to all its pods running.", ["namespace"],
    registry=REGISTRY, buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800))
RESTART_PHASE_SECONDS = Histogram(
    "msjob_restart_phase_seconds", "Seconds from a gang restart's decision to each of its phases: stopped (no process "
    "or pod of the old gang left), released (InPlace: the new epoch released), running (every member runs again), "
    "first_step (the first training step after it).", ["namespace", "strategy", "phase"], registry=REGISTRY,
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600))
QUEUE_DEPTH = Gauge("msjob_workqueue_depth", "Jobs waiting to be reconciled.", registry=REGISTRY)
LAST_RECONCILE = Gauge("msjob_last_reconcile_timestamp_seconds", "Unix time of the last successful reconcile.",
                       registry=REGISTRY)
API_REQUESTS = Counter(
    "msjob_api_requests_total", "Requests the operator's own client sent to the API server (kopf's MSJob watch "
                                "excluded).",
    ["verb", "resource"], registry=REGISTRY)
