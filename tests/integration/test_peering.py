"""Two replicas with --peering: one acts, the other stands by; kill the leader and the other takes over."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import pytest
from kubernetes.client import CoordinationV1Api

from msjob_localcluster.operator_process import OperatorProcess

from ..helpers import wait_for
from .msjobs import msjob

pytestmark = pytest.mark.cluster
LEASE_SECONDS = 4


def health(replica: OperatorProcess) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{replica.health_port}/healthz", timeout=5) as resp:
        return json.loads(resp.read())["reconcile"]


def holder_pid(jobs, lease: str) -> int | None:
    """The PID in the Lease holder's identity (host_pid_random), while the Lease is held."""
    spec = CoordinationV1Api(jobs.custom.api_client).read_namespaced_lease(lease, jobs.ns).spec
    return int(spec.holder_identity.split("_")[-2]) if spec.holder_identity else None


def pods_created(replica: OperatorProcess, namespace: str) -> float:
    prefix = f'msjob_pods_created_total{{namespace="{namespace}"}} '
    return next((float(line[len(prefix):]) for line in replica.metrics().splitlines() if line.startswith(prefix)), 0.0)


def test_only_the_lease_holder_acts_and_a_standby_takes_over(cluster, jobs, running_operator, tmp_path):
    lease = f"msjob-operator-{uuid.uuid4().hex[:6]}"
    args = ["--peering", "--peering-namespace", jobs.ns, "--peering-name", lease,  # this test's own Lease
            "--peering-lease-seconds", str(LEASE_SECONDS)]
    running_operator.stop()  # only the two replicas may act during this test
    first = OperatorProcess(cluster.kubeconfig, tmp_path / "a", extra_args=args)
    second = OperatorProcess(cluster.kubeconfig, tmp_path / "b", extra_args=args)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    try:
        first.start()
        wait_for(lambda: holder_pid(jobs, lease) == first.proc.pid, timeout=60, message="the first replica leads")
        second.start()  # caches synced, but standing by
        assert health(second)["leader"] is False

        jobs.create(msjob("led", workers=2))
        jobs.wait_pods("led", 3)
        jobs.wait_condition("led", "Running")
        assert pods_created(first, jobs.ns) == 3 and pods_created(second, jobs.ns) == 0
        assert health(second)["leader"] is False

        first.kill()
        wait_for(lambda: holder_pid(jobs, lease) == second.proc.pid, timeout=60, message="the standby takes over")
        jobs.create(msjob("taken-over", workers=1))
        jobs.wait_pods("taken-over", 2)
        jobs.wait_condition("taken-over", "Running")
        assert pods_created(second, jobs.ns) == 2
        # The job the old leader made is kept, not recreated.
        assert len(jobs.pods("led")) == 3 and jobs.get("led")["status"]["restartCount"] == 0
    finally:
        first.stop()
        second.stop()
        running_operator.start()


def test_candidates_racing_for_a_lease_never_both_win(cluster, namespace):
    """The compare-and-swap under the election, against the real API server: create, then take-over."""
    from msjob_operator.controller.kube import Kube
    from msjob_operator.controller.leader import LeaderElection

    async def race() -> list[list[bool]]:
        kube = await Kube.connect(str(cluster.kubeconfig))
        try:
            rounds = []
            for i in range(5):
                candidates = [LeaderElection(kube, namespace, f"race-{i}", identity=f"c{n}", lease_seconds=1)
                              for n in range(3)]
                rounds.append(list(await asyncio.gather(*(c.try_acquire_or_renew() for c in candidates))))
                # The winner stops renewing: once the others have seen its record unchanged for a
                # lease duration (their own clocks), exactly one of them takes over.
                losers = [c for c, won in zip(candidates, rounds[-1], strict=True) if not won]
                assert not any(await asyncio.gather(*(c.try_acquire_or_renew() for c in losers)))  # held
                await asyncio.sleep(1.2)
                rounds.append(list(await asyncio.gather(*(c.try_acquire_or_renew() for c in losers))))
            return rounds
        finally:
            await kube.close()

    for outcome in asyncio.run(race()):
        assert outcome.count(True) == 1, outcome
