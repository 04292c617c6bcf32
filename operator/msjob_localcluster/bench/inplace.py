"""Recovery in place: one worker's process of a big running InPlace job fails; how long until its gang's
new epoch is released, and until every member runs it.

kwok's pods run no process, so this plays each member's agent on its API side, with real requests
against the real API server (docs/in-place-restart.md): every member lists and watches the gang
ConfigMap by field selector (one watch each, as each agent has), and patches the report annotation of
its member's Lease (holder: its pod's UID): Running at epoch 0, then, when the epoch moves, Waiting for
the new one (one patch, as the agent sends it once its process is stopped), and Running again once the
barrier is lifted. The victim reports Exited(1).

The clock starts when the victim's Exited report is on the server (its patch answered): the moment the
operator can know. Reported: until the barrier is lifted (the first member to see ``released`` move),
until every member's acknowledgement is on the server, and until every member reports the new epoch
running; with the operator's own writes (by its request counters) for that restart.
"""

from __future__ import annotations

import asyncio
import time
from typing import Optional

from msjob_operator.api import naming
from msjob_operator.controller.kube import Kube, core_path, job_path, lease_path
from msjob_operator.sdk.accessors import has_condition
from msjob_runtime import agent_protocol as ap

from .common import PodWatch, create_job, delete_namespace, job_body, new_namespace, quiet_requests, seconds

COMMAND = ["python", "train.py"]  # InPlace needs an explicit command; kwok runs none of it


class Member:
    """One member's agent, on the API side only."""

    def __init__(self, agents: "Agents", pod: str):
        self.agents, self.pod = agents, pod
        self.uid = ""  # the pod's, learnt once it exists (Agents.start)
        self.epoch, self.state = 0, ap.WAITING
        self.ready = asyncio.Event()  # Running at epoch 0 is on the server
        self.task: Optional[asyncio.Task] = None

    async def report(self, state: str, code: Optional[int] = None) -> None:
        self.state = state
        body = ap.report_patch(ap.agent_report(self.epoch, state, exit_code=code, pid=1), self.uid)
        await self.agents.kube.request("PATCH", lease_path(self.agents.namespace, ap.member_lease_name(self.pod)),
                                       body, content_type="application/merge-patch+json")

    async def on_gang(self, gang: ap.Gang) -> None:
        if gang.epoch > self.epoch:
            self.agents.moved()  # a running process is stopped, then one report: Waiting for the new epoch
            self.epoch = gang.epoch
            await self.report(ap.WAITING)
            self.agents.acknowledged(self)
        if self.state == ap.WAITING and gang.released >= self.epoch == gang.epoch:
            if gang.released > 0:
                self.agents.lifted()
            await self.report(ap.RUNNING)
            self.agents.running(self)
            self.ready.set()

    async def run(self) -> None:
        path, selector = core_path("configmaps", self.agents.namespace), f"metadata.name={self.agents.gang}"
        while True:
            _, listed = await self.agents.kube.request("GET", path, query={"fieldSelector": selector})
            version = listed["metadata"]["resourceVersion"]
            for item in listed.get("items") or []:
                await self.on_gang(ap.parse_gang(item.get("data")))
            async for event in self.agents.kube.watch(path, version, timeout_seconds=300, field_selector=selector):
                obj = event.get("object") or {}
                if event.get("type") in ("ADDED", "MODIFIED"):
                    await self.on_gang(ap.parse_gang(obj.get("data")))


class Agents:
    def __init__(self, kube: Kube, namespace: str, job: str, pods: list[str]):
        self.kube, self.namespace, self.job, self.gang = kube, namespace, job, ap.gang_configmap_name(job)
        self.members = {pod: Member(self, pod) for pod in pods}
        self.lifted_at: Optional[float] = None
        self.moved_at: Optional[float] = None  # the first member saw the epoch move
        self._acks: dict[str, float] = {}
        self._running: dict[int, dict[str, float]] = {}

    def moved(self) -> None:
        self.moved_at = self.moved_at or time.monotonic()

    def lifted(self) -> None:
        self.lifted_at = self.lifted_at or time.monotonic()

    def acknowledged(self, member: Member) -> None:
        self._acks[member.pod] = time.monotonic()

    def running(self, member: Member) -> None:
        self._running.setdefault(member.epoch, {})[member.pod] = time.monotonic()

    def all_running(self, epoch: int) -> Optional[float]:
        runs = self._running.get(epoch, {})
        return max(runs.values()) if len(runs) == len(self.members) else None

    def all_acknowledged(self) -> Optional[float]:
        return max(self._acks.values()) if len(self._acks) == len(self.members) else None

    async def start(self, timeout: float) -> None:
        uids = await _uids(self.kube, self.namespace, self.job)
        for member in self.members.values():
            member.uid = uids[member.pod]
            member.task = asyncio.create_task(member.run())
        await asyncio.wait_for(asyncio.gather(*(m.ready.wait() for m in self.members.values())), timeout)

    async def stop(self) -> None:
        tasks = [m.task for m in self.members.values() if m.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _until(check, timeout: float, what: str, poll: float = 0.01) -> float:
    deadline = time.monotonic() + timeout
    while (found := check()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(poll)
    return found


async def _job_running(kube: Kube, namespace: str, name: str, timeout: float) -> None:
    async def running() -> bool:
        _, job = await kube.request("GET", job_path(namespace, name))
        return has_condition(job, "Running")
    deadline = time.monotonic() + timeout
    while not await running():
        if time.monotonic() > deadline:
            raise TimeoutError(f"MSJob {name} Running not reached within {timeout} s")
        await asyncio.sleep(0.2)


async def _uids(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    items, _ = await kube.list(core_path("pods", namespace), f"{naming.JOB_NAME_LABEL}={name}")
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in items}


async def _timed_patches(kube: Kube, paths: list[str], patch: dict) -> float:
    """Seconds for a merge patch of every path at once (``kube``'s own bound on requests in flight)."""
    began = time.monotonic()
    await asyncio.gather(*(kube.request("PATCH", path, patch, content_type="application/merge-patch+json")
                           for path in paths))
    return seconds(time.monotonic() - began)


async def _patch_limit(kube: Kube, namespace: str, pods: list[str]) -> float:
    """What the agents' acknowledgements cost on their pods, where they were reported before the member
    Leases: the same number of pod patches (one per member) by a plain bulk client."""
    return await _timed_patches(kube, [core_path("pods", namespace, pod) for pod in pods],
                                {"metadata": {"annotations": {"bench.msjob.test/touch": "1"}}})


async def _lease_patch_limit(kube: Kube, namespace: str, pods: list[str]) -> float:
    """The floor of the agents' acknowledgements: the same number of Lease patches by a plain bulk client,
    on Leases of its own (one per member, created first, not timed) that nothing watches."""
    names = [f"{pod}-ack" for pod in pods]
    await asyncio.gather(*(kube.request("POST", lease_path(namespace), {"metadata": {"name": name},
                                                                        "spec": {"holderIdentity": "epoch-0"}},
                                        ok_statuses=(409,)) for name in names))
    return await _timed_patches(kube, [lease_path(namespace, name) for name in names],
                                {"spec": {"holderIdentity": "epoch-1"}})


async def measure_in_place(kube: Kube, kubeconfig: str, workers: int, timeout: float, metrics=None,
                           settle: bool = True) -> dict:
    name, count = "inplace", workers + 1
    namespace = await new_namespace(kube, "bench-inplace")
    body = job_body(name, workers, failurePolicy={"restartStrategy": "InPlace"})
    for replica in body["spec"]["msReplicaSpecs"].values():
        replica["template"]["spec"]["containers"][0]["command"] = list(COMMAND)
    pods = [naming.pod_name(name, "Scheduler", 0)] + [naming.pod_name(name, "Worker", i) for i in range(workers)]
    # The agents' own client: a connection per watch, as every agent has its own.
    agent_kube = await Kube.connect(kubeconfig, max_in_flight=count + 64)
    agents = Agents(agent_kube, namespace, name, pods)
    try:
        watch = await PodWatch(kube, namespace, f"{naming.JOB_NAME_LABEL}={name}").start()
        try:
            await create_job(kube, namespace, body)
            await watch.until(lambda w: w.total_running >= count, timeout, f"{count} pods Running")
        finally:
            await watch.stop()
        await agents.start(timeout)  # every member reports its epoch-0 process running
        await _job_running(kube, namespace, name, timeout)  # the operator has seen them all
        uids = {member.pod: member.uid for member in agents.members.values()}  # as the agents learnt them
        before = await quiet_requests(metrics, timeout) if metrics else None
        victim = agents.members[naming.pod_name(name, "Worker", workers // 2)]
        await victim.report(ap.EXITED, 1)
        failed = time.monotonic()
        moved = await _until(lambda: agents.moved_at, timeout, "the epoch moved")
        lifted = await _until(lambda: agents.lifted_at, timeout, "the barrier lifted")
        acked = await _until(agents.all_acknowledged, timeout, "every member acknowledged")
        running = await _until(lambda: agents.all_running(1), timeout, "every member running epoch 1")
        _, job = await kube.request("GET", job_path(namespace, name))
        result = {"workers": workers, "pods": count, "victim": victim.pod,
                  "epoch_moved_s": seconds(moved - failed), "barrier_lifted_s": seconds(lifted - failed),
                  "all_acknowledged_s": seconds(acked - failed),
                  "all_running_s": seconds(running - failed),
                  "last_restart": (job.get("status") or {}).get("lastRestart"),
                  "restart_count": (job.get("status") or {}).get("restartCount"),
                  "same_pods": await _uids(kube, namespace, name) == uids}
        if before is not None and metrics is not None:
            after = await quiet_requests(metrics, timeout)  # the operator has caught up with the restart
            result["operator_writes"] = {f"{verb} {resource}": n for (verb, resource), n in (after - before).items()
                                         if verb in ("create", "patch", "update", "delete")}
        result["limit_patches_s"] = await _patch_limit(kube, namespace, pods)  # after: not counted above
        result["limit_lease_patches_s"] = await _lease_patch_limit(kube, namespace, pods)
        return result
    finally:
        await agents.stop()
        await agent_kube.close()
        await delete_namespace(kube, namespace, wait=timeout if settle else 0)


def table(r: dict) -> str:
    writes = ", ".join(f"{k} {v}" for k, v in sorted((r.get("operator_writes") or {}).items())) or "n/a"
    return "\n".join([
        f"recovery in place, {r['workers']} workers: one worker's process fails; seconds from its report to",
        f"  the epoch moved (decided)   {r['epoch_moved_s']:>7.2f} s",
        f"  the barrier lifted          {r['barrier_lifted_s']:>7.2f} s",
        f"  every member acknowledged   {r['all_acknowledged_s']:>7.2f} s",
        f"  every member running again  {r['all_running_s']:>7.2f} s",
        f"  (limit: {r['pods']} Lease patches, one per member, by a plain bulk client "
        f"{r['limit_lease_patches_s']:.2f} s;",
        f"   the same on the pods, where agents reported before: {r['limit_patches_s']:.2f} s)",
        f"  the operator's writes for it: {writes}",
    ])
