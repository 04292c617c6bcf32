"""Hostile and malformed MSJobs against the real API server and operator.

Property-based (hypothesis, derandomized so CI is reproducible): every invalid object is refused at
admission with the offending field's path in the message, every valid one is admitted; odd but valid
jobs created for real never crash or wedge the operator. Plus the replica caps, names at the length
limit, and a user's env that the operator must keep.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from msjob_operator.api.limits import MAX_COUNT, MAX_REPLICAS, MAX_SECONDS

from ..helpers import wait_for
from .msjobs import GROUP, PLURAL, VERSION, msjob, template

pytestmark = pytest.mark.cluster
NAME_RE = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


def _set(path: tuple, value):
    def apply(body: dict) -> None:
        node = body
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return apply


SCHEMA, CEL = "schema", "cel"  # which check refuses a value: the OpenAPI schema (or ObjectMeta), or a CEL rule


def field(path: tuple, values: st.SearchStrategy, refused_by) -> st.SearchStrategy:
    """A change of one field: (apply, the path the API server names, SCHEMA/CEL/None for valid, value)."""
    dotted = ".".join(path)
    return values.map(lambda v: (_set(path, v), dotted, refused_by(v), v))


def enum(*allowed):
    return lambda v: None if v in allowed else SCHEMA


def at_least(low: int, high: int | None = None):
    return lambda v: None if low <= v and (high is None or v <= high) else SCHEMA


def name_check(v: str):
    if len(v) > 253 or not re.fullmatch(DNS_SUBDOMAIN, v):
        return SCHEMA  # Kubernetes' own ObjectMeta validation
    return None if len(v) <= 50 and re.fullmatch(NAME_RE, v) else CEL


REPLICAS = ("spec", "msReplicaSpecs")
FIELDS = {
    "worker replicas": field(REPLICAS + ("Worker", "replicas"),
                             st.one_of(st.integers(-3, 4), st.integers(MAX_REPLICAS - 2, MAX_REPLICAS + 2)),
                             lambda v: SCHEMA if v < 0 or v > MAX_REPLICAS else (CEL if v == 0 else None)),
    "scheduler replicas": field(REPLICAS + ("Scheduler", "replicas"), st.integers(-1, 3),
                                lambda v: SCHEMA if v < 0 else (None if v == 1 else CEL)),
    "restart policy": field(REPLICAS + ("Worker", "restartPolicy"),
                            st.sampled_from(["Always", "OnFailure", "Never", "ExitCode", "Sometimes", "never", ""]),
                            enum("Always", "OnFailure", "Never", "ExitCode")),
    "backoff limit": field(("spec", "runPolicy", "backoffLimit"),
                           st.one_of(st.integers(-5, 5), st.integers(MAX_COUNT - 1, MAX_COUNT + 1)),
                           at_least(0, MAX_COUNT)),
    "active deadline": field(("spec", "runPolicy", "activeDeadlineSeconds"),
                             st.one_of(st.integers(-2, 3), st.integers(MAX_SECONDS - 1, MAX_SECONDS + 1),
                                       st.just(2 ** 63 - 1)),
                             at_least(1, MAX_SECONDS)),
    "startup deadline": field(("spec", "failurePolicy", "startupDeadlineSeconds"),
                              st.one_of(st.integers(-1, 2), st.integers(MAX_SECONDS - 1, MAX_SECONDS + 1)),
                              at_least(1, MAX_SECONDS)),
    "ttl": field(("spec", "runPolicy", "ttlSecondsAfterFinished"),
                 st.one_of(st.integers(-1, 2), st.integers(MAX_SECONDS - 1, MAX_SECONDS + 1)),
                 at_least(0, MAX_SECONDS)),
    "clean pod policy": field(("spec", "runPolicy", "cleanPodPolicy"),
                              st.sampled_from(["None", "Running", "All", "Some", "all"]),
                              enum("None", "Running", "All")),
    "success policy": field(("spec", "successPolicy"), st.sampled_from(["", "AllWorkers", "AnyWorker", "allworkers"]),
                            enum("", "AllWorkers")),
    "scheduler port": field(("spec", "mindspore", "schedulerPort"),
                            st.one_of(st.integers(-2, 3), st.integers(65533, 65538)), at_least(1, 65535)),
    "name": field(("metadata", "name"),
                  st.one_of(st.from_regex(NAME_RE, fullmatch=True), st.text("abz09-.A_", min_size=1, max_size=60))
                  .filter(lambda v: 0 < len(v) <= 253), name_check),
}


def _changes() -> st.SearchStrategy:
    # Up to three distinct fields changed at once, each to a valid or an invalid value.
    return st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3, unique=True).flatmap(
        lambda keys: st.tuples(*(FIELDS[k] for k in keys)))


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(changes=_changes())
def test_invalid_fields_are_refused_at_admission_and_named(kube, namespace, changes):
    body = msjob("probe", workers=2)
    for apply, _, _, _ in changes:
        apply(body)
    refused = {level: [(path, value) for _, path, by, value in changes if by == level] for level in (SCHEMA, CEL)}
    api = CustomObjectsApi(kube)
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body, dry_run="All")
    except ApiException as e:
        assert e.status == 422, e.body
        assert refused[SCHEMA] or refused[CEL], f"a valid object was refused: {e.body}"
        message = json.loads(e.body)["message"]
        for path, value in refused[SCHEMA]:
            assert path in message, f"{path}={value!r} not named in: {message}"
        # CEL rules run only on an object the schema accepts; the API server then says so.
        deferred = refused[SCHEMA] and "some validation rules were not checked" in message
        for path, value in refused[CEL]:
            assert path in message or deferred, f"{path}={value!r} not named in: {message}"
    else:
        assert not refused[SCHEMA] and not refused[CEL], f"admitted although {refused} are invalid"


def _container_env() -> st.SearchStrategy:
    names = st.sampled_from(["MS_ROLE", "MS_WORKER_NUM", "MS_SCHED_HOST", "MSJOB_NAME", "MY_VAR", "PATH"])
    return st.lists(st.tuples(names, st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                                             max_size=40)), max_size=4, unique_by=lambda kv: kv[0])


@st.composite
def odd_valid_jobs(draw, index: int = 0) -> dict:
    """Admissible jobs that stress the operator: odd templates, policies and user env."""
    env = [{"name": k, "value": v} for k, v in draw(_container_env())]
    container = {"name": draw(st.sampled_from(["mindspore", "trainer", "x"])), "image": "img", "env": env}
    extra = draw(st.lists(st.sampled_from(["side", "car"]), max_size=2, unique=True))
    containers = [container] + [{"name": n, "image": "img"} for n in extra]
    spec = template(annotations=draw(st.dictionaries(st.sampled_from(["a", "b.example/c"]), st.text(max_size=20))),
                    containers=containers)
    spec["metadata"]["labels"].update(draw(st.dictionaries(st.sampled_from(["team", "x.io/y"]),
                                                           st.from_regex(r"[a-z0-9]{0,10}", fullmatch=True))))
    job = msjob(f"odd-{index}", workers=draw(st.integers(1, 3)), scheduler=draw(st.booleans()))
    job["spec"]["msReplicaSpecs"]["Worker"]["template"] = spec
    job["spec"]["msReplicaSpecs"]["Worker"]["restartPolicy"] = draw(
        st.sampled_from(["Always", "OnFailure", "Never", "ExitCode"]))
    job["spec"]["successPolicy"] = draw(st.sampled_from(["", "AllWorkers"]))
    job["spec"]["runPolicy"] = {"backoffLimit": draw(st.integers(0, 3)),
                                "cleanPodPolicy": draw(st.sampled_from(["None", "Running", "All"])),
                                "suspend": draw(st.booleans())}
    if draw(st.booleans()):
        actions = ["FailJob", "RestartJob", "Ignore", "RestartReplica", "RestartJobIgnoreBudget"]
        codes = draw(st.lists(st.integers(1, 255), min_size=1, max_size=3))
        rule = {"action": draw(st.sampled_from(actions)), "onExitCodes": {"operator": "In", "values": codes}}
        if rule["action"] == "Ignore":  # admitted only for workers of an elastic job
            rule["replicaTypes"] = ["Worker"]
            job["spec"]["enableDynamicWorker"] = True
        job["spec"]["failurePolicy"] = {"rules": [rule], "uncountedRestartLimit": draw(st.integers(0, 10000)),
                                        "startupDeadlineSeconds": draw(st.sampled_from([1, 600, MAX_SECONDS]))}
    # The largest admitted durations are safe to reconcile.
    job["spec"]["runPolicy"]["activeDeadlineSeconds"] = draw(st.sampled_from([MAX_SECONDS, 86400]))
    job["spec"]["runPolicy"]["ttlSecondsAfterFinished"] = draw(st.sampled_from([3600, MAX_SECONDS]))  # kept to be read
    return job


def test_odd_valid_jobs_never_crash_or_wedge_the_operator(jobs, running_operator):
    created: list[str] = []

    @settings(max_examples=20, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def create(data):
        job = data.draw(odd_valid_jobs(index=len(created)))
        jobs.create(job)  # admitted: these are valid
        created.append(job["metadata"]["name"])

    create()
    # Every one is reconciled (it gets a state) and the operator is still alive afterwards...
    for name in created:
        wait_for(lambda name=name: (jobs.get(name).get("status") or {}).get("state"), timeout=120,
                 message=f"{name} reconciled", describe=lambda name=name: jobs.get(name))
    assert running_operator.proc.poll() is None
    # ...and still does its job for a known-good job.
    jobs.create(msjob("known-good", workers=1))
    jobs.wait_condition("known-good", "Running", timeout=120)
    assert running_operator.proc.poll() is None


def test_replicas_over_the_crd_maximum_are_refused(kube, namespace):
    api = CustomObjectsApi(kube)
    with pytest.raises(ApiException) as info:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                            msjob("huge", workers=MAX_REPLICAS + 1), dry_run="All")
    message = json.loads(info.value.body)["message"]
    assert "spec.msReplicaSpecs.Worker.replicas" in message and f"less than or equal to {MAX_REPLICAS}" in message


def test_job_over_the_operator_cap_fails_without_pods(jobs):
    jobs.create(msjob("too-big", workers=5000))  # admitted by the CRD, refused by the default cap of 4096
    failed = jobs.wait_condition("too-big", "Failed", timeout=60)
    assert failed["reason"] == "TooManyReplicas" and "5001 pods" in failed["message"]
    assert not jobs.pods("too-big") and not jobs.services("too-big")


def test_longest_name_runs_for_real(jobs):
    name = "l" * 50  # pods '<name>-scheduler-0' are 62 characters: still a DNS label
    jobs.create(msjob(name, workers=1))
    pods = jobs.wait_pods(name, 2)
    assert {p.metadata.name for p in pods} == {f"{name}-scheduler-0", f"{name}-worker-0"}
    jobs.wait_condition(name, "Running")


def test_env_the_user_set_is_kept(jobs):
    body = msjob("own-env", workers=2)
    container = body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "MS_WORKER_NUM", "value": "7"}, {"name": "MS_SCHED_PORT", "value": "3333"},
                        {"name": "MSJOB_NAME", "value": "mine"}]
    jobs.create(body)
    for pod in jobs.wait_pods("own-env", 3):
        if pod.metadata.labels["training.kubeflow.org/replica-type"] != "worker":
            continue
        env = [(e.name, e.value) for e in next(c for c in pod.spec.containers if c.name == "mindspore").env]
        names = [n for n, _ in env]
        assert len(names) == len(set(names)), env  # no duplicates either
        values = dict(env)
        assert values["MS_WORKER_NUM"] == "7" and values["MS_SCHED_PORT"] == "3333" and values["MSJOB_NAME"] == "mine"
        assert values["MS_ROLE"] == "MS_WORKER"  # what the user left unset is still injected
