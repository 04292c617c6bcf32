"""Chaos: 56 job lifecycles while the operator is SIGKILLed and restarted at random moments.

Afterwards: no pod was created twice for the same member and attempt, no pod outlives its job,
every job ends in the state its lifecycle calls for, and each status agrees with the pods.
Set MSJOB_CHAOS_SEED to replay another schedule of kills (the seed is printed).

Two of the seven lifecycles use restartStrategy InPlace. No process runs on kwok's nodes, so the test
plays the members' agents (agents.FakeAgents: real reads of the gang ConfigMap, real report patches):
that exercises the operator's whole side of the protocol (epoch, barrier, final) under the kills, and
checks that no member ever ran an older epoch than the one the operator had released and that an
in-place restart recreated no pod.
"""

from __future__ import annotations

import os
import random
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import config, watch
from kubernetes.client import CoreV1Api

from msjob_localcluster.operator_process import OperatorProcess
from msjob_operator.api import naming

from ..helpers import wait_for
from .agents import FakeAgents, all_run, barrier, in_place
from .msjobs import EXIT, MSJobs, msjob

pytestmark = pytest.mark.cluster

LIFECYCLES = 56
CONCURRENT = 25
TIMEOUT = 180  # per step, generous: the operator is down part of the time and the machine is shared


def succeed(jobs: MSJobs, name: str) -> None:
    jobs.create(msjob(name, workers=2))
    jobs.wait_pods(name, 3, timeout=TIMEOUT)
    jobs.annotate_pod(f"{name}-worker-0", {EXIT: "0"})
    jobs.wait_condition(name, "Succeeded", timeout=TIMEOUT)


def restart_then_succeed(jobs: MSJobs, name: str) -> None:
    jobs.create(msjob(name, workers=2))
    jobs.wait_pods(name, 3, timeout=TIMEOUT, attempt=0)
    jobs.annotate_pod(f"{name}-worker-1", {EXIT: "137"})
    jobs.wait_pods(name, 3, timeout=TIMEOUT, attempt=1)
    jobs.annotate_pod(f"{name}-worker-0", {EXIT: "0"})
    jobs.wait_condition(name, "Succeeded", timeout=TIMEOUT)


def fail(jobs: MSJobs, name: str) -> None:
    jobs.create(msjob(name, workers=2, runPolicy={"backoffLimit": 0}))
    jobs.wait_pods(name, 3, timeout=TIMEOUT)
    jobs.annotate_pod(f"{name}-worker-0", {EXIT: "3"})
    jobs.wait_condition(name, "Failed", timeout=TIMEOUT)


def suspend_resume(jobs: MSJobs, name: str) -> None:
    jobs.create(msjob(name, workers=2))
    jobs.wait_pods(name, 3, timeout=TIMEOUT)
    jobs.patch(name, {"spec": {"runPolicy": {"suspend": True}}})
    jobs.wait_condition(name, "Suspended", timeout=TIMEOUT)
    wait_for(lambda: not jobs.pods(name), timeout=TIMEOUT, message=f"{name} holds no pods while suspended")
    jobs.patch(name, {"spec": {"runPolicy": {"suspend": False}}})
    jobs.wait_pods(name, 3, timeout=TIMEOUT, attempt=1)
    jobs.wait_condition(name, "Running", timeout=TIMEOUT)


def delete(jobs: MSJobs, name: str) -> None:
    jobs.create(msjob(name, workers=2))
    jobs.wait_pods(name, 3, timeout=TIMEOUT)
    jobs.delete(name)


def wait_all_run(jobs: MSJobs, name: str, epoch: int) -> None:
    wait_for(lambda: all_run(jobs, name, epoch), timeout=TIMEOUT, message=f"{name}: every member runs epoch {epoch}")


def restart_in_place_then_succeed(jobs: MSJobs, name: str) -> None:
    jobs.create(in_place(msjob(name, workers=2)))
    jobs.wait_pods(name, 3, timeout=TIMEOUT, attempt=0)
    wait_all_run(jobs, name, 0)
    jobs.agents.exit(f"{name}-worker-1", 137)
    wait_for(lambda: barrier(jobs, name) == {"epoch": 1, "released": 1}, timeout=TIMEOUT,
             message=f"{name}: epoch 1 released")
    wait_all_run(jobs, name, 1)
    jobs.agents.exit(f"{name}-worker-0", 0)
    jobs.wait_condition(name, "Succeeded", timeout=TIMEOUT)


def fail_in_place(jobs: MSJobs, name: str) -> None:
    jobs.create(in_place(msjob(name, workers=2, runPolicy={"backoffLimit": 0})))
    jobs.wait_pods(name, 3, timeout=TIMEOUT)
    wait_all_run(jobs, name, 0)
    jobs.agents.exit(f"{name}-worker-0", 3)
    jobs.wait_condition(name, "Failed", timeout=TIMEOUT)


LIFECYCLE = {"ok": succeed, "rs": restart_then_succeed, "fl": fail, "sr": suspend_resume, "dl": delete,
             "ri": restart_in_place_then_succeed, "fi": fail_in_place}
IN_PLACE = ("ri", "fi")


class PodLedger:
    """Every pod incarnation created in the namespace: (name, attempt) -> UIDs, from a watch."""

    def __init__(self, core: CoreV1Api, namespace: str):
        self.core, self.ns = core, namespace
        self.uids: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._stop = threading.Event()
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rv = self.core.list_namespaced_pod(self.ns).metadata.resource_version
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(self.core.list_namespaced_pod, self.ns, resource_version=rv,
                                                timeout_seconds=30, label_selector=naming.CHILD_SELECTOR):
                    pod = event["object"]
                    rv = pod.metadata.resource_version
                    attempt = pod.metadata.labels.get(naming.ATTEMPT_LABEL)
                    self.uids[(pod.metadata.name, attempt)].add(pod.metadata.uid)
            except Exception:  # noqa: BLE001 - a broken stream resumes from the last version seen
                if self._stop.is_set():
                    return

    def __enter__(self) -> "PodLedger":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._watch.stop()
        self._thread.join(timeout=60)


class Killer:
    """SIGKILLs the operator at seeded random moments and starts it again, until told to stop."""

    def __init__(self, operator: OperatorProcess, seed: int):
        self.operator, self.rng = operator, random.Random(seed)
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(0.2, 2.5)):
            self.operator.kill()
            self.kills += 1
            self.operator.start(timeout=120)

    def __enter__(self) -> "Killer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=180)


def test_fifty_lifecycles_survive_random_operator_kills(cluster, namespace, running_operator, tmp_path, capsys):
    seed = int(os.environ.get("MSJOB_CHAOS_SEED", "20261122"))
    with capsys.disabled():
        print(f"\nchaos seed: {seed} (MSJOB_CHAOS_SEED)")
    rng = random.Random(seed)
    kinds = list(LIFECYCLE) * (LIFECYCLES // len(LIFECYCLE))
    rng.shuffle(kinds)
    names = {f"{kind}-{i}": kind for i, kind in enumerate(kinds)}

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = CONCURRENT + 4
    jobs, core = MSJobs(api, namespace), CoreV1Api(api)
    running_operator.stop()  # this test's operator is the only one acting
    chaotic = OperatorProcess(cluster.kubeconfig, tmp_path).start()
    try:
        with PodLedger(core, namespace) as ledger, FakeAgents(core, namespace, interval=0.3) as agents, \
                Killer(chaotic, seed) as killer:
            jobs.agents = agents
            with ThreadPoolExecutor(CONCURRENT) as pool:
                for future in [pool.submit(LIFECYCLE[kind], jobs, name) for name, kind in names.items()]:
                    future.result()
        with capsys.disabled():
            print(f"chaos: {killer.kills} operator kills during {LIFECYCLES} lifecycles")
        assert killer.kills >= 3, "too few kills to prove anything"
        assert chaotic.proc.poll() is None

        # Settled: jobs in their final states, with the pods those states call for.
        def settled():
            return all(final_state_ok(jobs, name, kind) for name, kind in names.items())
        wait_for(settled, timeout=TIMEOUT, message="every job in its final state",
                 describe=lambda: {n: final_state_problem(jobs, n, k) for n, k in names.items()
                                   if not final_state_ok(jobs, n, k)})

        # No member was ever created twice for one attempt; an in-place restart created no pod at all; no
        # agent ran an epoch older than the one released.
        duplicates = {key: uids for key, uids in ledger.uids.items() if len(uids) > 1}
        assert not duplicates, duplicates
        assert len(ledger.uids) >= LIFECYCLES * 3
        in_place_attempts = {key for key in ledger.uids if any(key[0].startswith(f"{name}-") for name, kind in
                                                               names.items() if kind in IN_PLACE)}
        assert in_place_attempts and {attempt for _, attempt in in_place_attempts} == {"0"}, in_place_attempts
        assert not agents.violations, agents.violations
        with capsys.disabled():
            print(f"chaos: {agents.reports} agent reports played")

        # No orphans: every pod belongs to a job that exists (the garbage collector has caught up).
        def orphans():
            live = {j["metadata"]["uid"] for j in jobs.custom.list_namespaced_custom_object(
                "mindspore.gitee.com", "v1", namespace, "msjobs")["items"]}
            return [p.metadata.name for p in core.list_namespaced_pod(namespace).items
                    if not any(o.uid in live for o in p.metadata.owner_references or [])]
        wait_for(lambda: not orphans(), timeout=TIMEOUT, message="no orphaned pods", describe=orphans)
    finally:
        chaotic.stop()
        api.close()
        running_operator.start()


def final_state_problem(jobs: MSJobs, name: str, kind: str) -> str | None:
    """What is wrong with the job's end state, or None."""
    if kind == "dl":
        return "job still exists" if jobs.exists(name) else None
    status = jobs.get(name).get("status") or {}
    pods = jobs.pods(name)
    pod_names = [p.metadata.name for p in pods]
    expected_state = {"ok": "Succeeded", "rs": "Succeeded", "fl": "Failed", "sr": "Running", "ri": "Succeeded",
                      "fi": "Failed"}[kind]
    if status.get("state") != expected_state:
        return f"state {status.get('state')}, expected {expected_state}"
    restarts = {"rs": 1, "ri": 1}.get(kind, 0)
    if (status.get("restartCount") or 0) != restarts:
        return f"restartCount {status.get('restartCount')}, expected {restarts}"
    if kind in ("ok", "rs", "fl", "ri", "fi"):
        # cleanPodPolicy Running: only the member that ended the job is left.
        if pod_names != [f"{name}-worker-0"]:
            return f"pods {pod_names}"
        worker = status["replicaStatuses"]["Worker"]
        ended = {"succeeded": 1, "failed": 0} if kind not in ("fl", "fi") else {"succeeded": 0, "failed": 1}
        if {k: worker.get(k) for k in ended} != ended or worker.get("active"):
            return f"replicaStatuses.Worker {worker}, pods {pod_names}"
        return None
    # Resumed and running: one full gang of the resumed attempt, counted in the status.
    attempts = {p.metadata.labels.get(naming.ATTEMPT_LABEL) for p in pods}
    if len(pods) != 3 or attempts != {str(status.get("attempt"))} or status.get("attempt") != 1:
        return f"pods {pod_names} of attempts {attempts}, status attempt {status.get('attempt')}"
    if status.get("workers") != "2/2" or status["replicaStatuses"]["Worker"]["active"] != 2:
        return f"status workers {status.get('workers')}, replicaStatuses {status.get('replicaStatuses')}"
    return None


def final_state_ok(jobs: MSJobs, name: str, kind: str) -> bool:
    return final_state_problem(jobs, name, kind) is None


def test_member_that_vanishes_unseen_restarts_the_gang(jobs, running_operator):
    """A pod removed while the operator is down leaves no trace of why: a new pod alone would join
    a MindSpore cluster that has broken up, so the whole gang restarts (uncounted: no known fault)."""
    jobs.create(msjob("vanish", workers=2, runPolicy={"backoffLimit": 0}))
    first = {p.metadata.name: p.metadata.uid for p in jobs.wait_pods("vanish", 3)}
    jobs.wait_condition("vanish", "Running")
    running_operator.kill()
    try:
        jobs.core.delete_namespaced_pod("vanish-worker-1", jobs.ns, grace_period_seconds=0)
        wait_for(lambda: len(jobs.pods("vanish")) == 2, timeout=60, message="the member is gone")
    finally:
        running_operator.start()
    new = jobs.wait_pods("vanish", 3, attempt=1)
    assert all(p.metadata.uid != first[p.metadata.name] for p in new)  # every member is new
    jobs.wait_condition("vanish", "Running")
    status = jobs.get("vanish")["status"]
    assert status["restartCount"] == 1 and not status.get("backoffCount")
    assert status["lastFailure"]["pod"] == "vanish-worker-1" and status["lastFailure"]["reason"] == "Lost"
