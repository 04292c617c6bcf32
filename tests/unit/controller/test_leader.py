"""Leader election on a Lease, against a tiny Lease store with compare-and-swap, on a fake clock."""

import asyncio
import copy

import pytest

from msjob_operator.controller import leader as leader_module
from msjob_operator.controller.kube import KubeError
from msjob_operator.controller.leader import LeaderElection

from .fakekube import Call, FakeClock, FakeKube

LEASES = "/apis/coordination.k8s.io/v1/namespaces/ops/leases"
LEASE = f"{LEASES}/msjob-operator"


class LeaseServer:
    """One Lease; a PUT must carry the resourceVersion it read (as the API server enforces)."""

    def __init__(self) -> None:
        self.lease = None
        self.rv = 0

    def hold(self, holder, renew_time="2000-01-01T00:00:00.000000Z", transitions=3) -> None:
        self._store({"metadata": {"name": "msjob-operator"},
                     "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renew_time,
                              "acquireTime": "2000-01-01T00:00:00.000000Z", "leaseTransitions": transitions}})

    def _store(self, lease: dict) -> dict:
        self.rv += 1
        self.lease = copy.deepcopy(lease)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.lease)

    def __call__(self, call: Call):
        if call.method == "GET":
            return (404, {"reason": "NotFound"}) if self.lease is None else (200, copy.deepcopy(self.lease))
        if call.method == "POST":
            return (409, {"reason": "AlreadyExists"}) if self.lease else (201, self._store(call.body))
        if call.method == "PUT":
            if self.lease is None:
                return 404, {"reason": "NotFound"}
            if call.body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
                return 409, {"reason": "Conflict"}
            return 200, self._store(call.body)
        raise AssertionError(call)

    @property
    def holder(self):
        return self.lease and self.lease["spec"]["holderIdentity"]


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(leader_module, "time", clock)
    monkeypatch.setattr(leader_module, "asyncio", clock.asyncio())
    return clock


def setup(identity="me"):
    kube, server = FakeKube(), LeaseServer()
    kube.route(LEASES, server)
    return kube, server, LeaderElection(kube, "ops", "msjob-operator", identity=identity, lease_seconds=15)


def test_an_absent_lease_is_created_and_then_renewed(clock):
    kube, server, election = setup()
    assert asyncio.run(election.try_acquire_or_renew())
    assert [c.method for c in kube.calls] == ["GET", "POST"] and kube.calls[1].path == LEASES
    first = copy.deepcopy(server.lease["spec"])
    assert first["holderIdentity"] == "me" and first["leaseTransitions"] == 0 and first["leaseDurationSeconds"] == 15
    assert asyncio.run(election.try_acquire_or_renew())
    renewed = server.lease["spec"]
    assert kube.calls[-1].method == "PUT"
    # Our own renewal is no transition and keeps the acquire time.
    assert renewed["leaseTransitions"] == 0 and renewed["acquireTime"] == first["acquireTime"]


def test_a_live_holder_is_respected_for_a_lease_duration_on_our_own_clock(clock):
    kube, server, election = setup()
    server.hold("peer")  # renewTime far in the past by the peer's clock: not trusted

    async def scenario():
        assert not await election.try_acquire_or_renew()  # first seen now
        clock.now += 14
        assert not await election.try_acquire_or_renew()
        server.hold("peer", renew_time="2000-01-01T00:00:14.000000Z")  # the peer renewed
        clock.now += 14
        assert not await election.try_acquire_or_renew()  # 28 s since first seen, but only 14 since the renewal
        clock.now += 15
        assert await election.try_acquire_or_renew()  # unchanged for a whole duration: expired
    asyncio.run(scenario())
    assert not [c for c in kube.calls[:-1] if c.method != "GET"]  # no write before the takeover
    assert server.holder == "me" and server.lease["spec"]["leaseTransitions"] == 4
    assert server.lease["spec"]["acquireTime"] != "2000-01-01T00:00:00.000000Z"


def test_a_lost_compare_and_swap_is_not_a_win(clock):
    kube, server, election = setup()
    server.hold("peer")

    async def scenario():
        assert not await election.try_acquire_or_renew()
        clock.now += 16
        # We read the expired Lease, then a rival takes it before our write: the write carries a stale
        # resourceVersion and the server answers 409.
        kube.answer("GET", LEASE, (200, copy.deepcopy(server.lease)))
        server.hold("rival")
        return await election.try_acquire_or_renew()
    assert asyncio.run(scenario()) is False
    assert server.holder == "rival" and kube.calls[-1].method == "PUT"


def test_a_concurrent_create_is_not_a_win(clock):
    kube, server, election = setup()
    kube.answer("POST", LEASES, (409, {"reason": "AlreadyExists"}))
    assert asyncio.run(election.try_acquire_or_renew()) is False


def test_acquire_keeps_trying_through_errors_until_the_lease_is_free(clock):
    kube, server, election = setup()
    server.hold("peer")
    kube.answer("GET", LEASE, KubeError(503, "unavailable", "GET"))
    asyncio.run(election.acquire())
    assert election.leading and server.holder == "me"
    assert clock.slept and set(clock.slept) == {election.renew_every}


def test_hold_returns_once_renewals_fail_past_the_deadline(clock):
    kube, server, election = setup()
    asyncio.run(election.acquire())
    renewed_at: list[float] = []
    original = election.try_acquire_or_renew

    async def renew():
        if len(renewed_at) < 2:
            renewed_at.append(clock.now)
            return await original()
        raise KubeError(500, "etcd timeout", "GET")
    election.try_acquire_or_renew = renew
    asyncio.run(election.hold())
    assert not election.leading
    # It kept trying after the first failure, and stopped before a peer may consider the Lease expired.
    assert len(clock.slept) >= 4
    assert election.lease_seconds - election.renew_every <= clock.now - renewed_at[-1] < election.lease_seconds


def test_hold_returns_when_another_replica_holds_the_lease(clock):
    kube, server, election = setup()
    asyncio.run(election.acquire())
    server.hold("usurper")  # e.g. after this replica was paused longer than a lease duration
    asyncio.run(election.hold())
    assert not election.leading and server.holder == "usurper"


def test_release_gives_up_only_our_own_lease(clock):
    kube, server, election = setup()
    asyncio.run(election.release())
    assert kube.calls == []  # not leading: nothing to give up
    asyncio.run(election.acquire())
    asyncio.run(election.release())
    assert server.holder is None and not election.leading

    kube, server, election = setup()
    asyncio.run(election.acquire())
    server.hold("peer")
    asyncio.run(election.release())
    assert server.holder == "peer" and kube.calls[-1].method == "GET"

    kube, server, election = setup()
    asyncio.run(election.acquire())
    kube.answer("PUT", LEASE, (409, {"reason": "Conflict"}))
    asyncio.run(election.release())  # lost the race to give it up: no error
    assert server.holder == "me"
