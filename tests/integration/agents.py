"""The in-place restart agents' side of the protocol, played by the test for pods on kwok's fake nodes.

kwok runs no process, so no agent runs there. ``FakeAgents`` does with real requests what each member's
agent does with the API server (docs/in-place-restart.md): it reads the gang ConfigMap and writes the
member's report (a patch of the annotation of the member's Lease, holder: the pod's UID), following the
agent's state machine: Waiting until the epoch is released, Running, Stopped when the epoch moves (then
Waiting for the new one), Exited when the test makes the process fail or succeed, and at ``final`` the pod's
end (through the kwok exit-code annotation). It also checks the operator's side: no member may still report
Running at an epoch below the one the operator released (``violations``).
"""

from __future__ import annotations

import threading
from typing import Optional

from kubernetes.client import CoordinationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from msjob_operator.api import naming
from msjob_runtime import agent_protocol as ap

from ..helpers import member_report
from .msjobs import EXIT


class FakeAgents:
    def __init__(self, core: CoreV1Api, namespace: str, interval: float = 0.2):
        self.core, self.ns, self.interval = core, namespace, interval
        self.leases = CoordinationV1Api(core.api_client)
        self.violations: list[str] = []
        self.reports = 0
        self._ends: dict[str, tuple[int, str]] = {}  # pod uid -> (exit code, output) of its current epoch
        self.held: set[str] = set()  # pod names whose agent is slow to stop: it ignores epoch moves meanwhile
        self._lock = threading.Lock()
        self._turn = threading.Lock()  # one agent step at a time: the test's and the loop's
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    # -- what the test makes the processes do
    def exit(self, pod_name: str, code: int, output: str = "") -> None:
        """The process of that member's current epoch exits with ``code`` (0: the agent exits, the pod succeeds)."""
        pod = self.core.read_namespaced_pod(pod_name, self.ns)
        with self._lock:
            self._ends[pod.metadata.uid] = (code, output)
        self._step(pod, self._gangs().get(pod.metadata.labels[naming.JOB_NAME_LABEL]))

    def __enter__(self) -> "FakeAgents":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    # -- the loop
    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                gangs = self._gangs()
                for pod in self.core.list_namespaced_pod(self.ns, label_selector=naming.CHILD_SELECTOR).items:
                    self._step(pod, gangs.get(pod.metadata.labels.get(naming.JOB_NAME_LABEL, "")))
            except Exception:  # noqa: BLE001 - the API server may be slow or the pod gone: the next turn sees
                continue

    def _gangs(self) -> dict[str, ap.Gang]:
        out = {}
        for cm in self.core.list_namespaced_config_map(self.ns).items:
            if cm.metadata.name.endswith(ap.GANG_CONFIGMAP_SUFFIX):
                try:
                    out[cm.metadata.name[: -len(ap.GANG_CONFIGMAP_SUFFIX)]] = ap.parse_gang(cm.data)
                except ValueError:
                    continue
        return out

    def _post(self, pod, epoch: int, state: str, code: Optional[int] = None, output: str = "") -> None:
        report = ap.agent_report(epoch, state, exit_code=code, output=output, pid=1)
        try:
            self.leases.patch_namespaced_lease(ap.member_lease_name(pod.metadata.name), self.ns,
                                               ap.report_patch(report, pod.metadata.uid))
            self.reports += 1
        except ApiException as e:
            if e.status != 404:
                raise

    def _end_pod(self, pod, code: int) -> None:
        try:
            self.core.patch_namespaced_pod(pod.metadata.name, self.ns, {"metadata": {"annotations": {EXIT: str(code)}}})
        except ApiException as e:
            if e.status != 404:
                raise

    def _step(self, pod, gang: Optional[ap.Gang]) -> None:
        with self._turn:
            self._act(pod, gang)

    def _act(self, pod, gang: Optional[ap.Gang]) -> None:
        if gang is None or pod.metadata.deletion_timestamp or pod.status.phase != "Running":
            return
        if (pod.metadata.annotations or {}).get(EXIT) is not None:
            return  # this agent has exited: the pod is ending
        report = member_report(self.core, pod)
        with self._lock:
            end = self._ends.get(pod.metadata.uid)
        if report is not None and report["state"] == ap.RUNNING and report["epoch"] < gang.released:
            self.violations.append(f"{pod.metadata.name} runs epoch {report['epoch']} with {gang.released} released")
        if report is None:
            self._post(pod, gang.epoch, ap.WAITING)
        elif gang.final:
            if report["state"] == ap.RUNNING:
                self._post(pod, report["epoch"], ap.STOPPED, 143)
            failed = report["exitCode"] if report["state"] == ap.EXITED else None
            self._end_pod(pod, failed or 0)
        elif report["state"] == ap.RUNNING and end is not None:
            with self._lock:
                self._ends.pop(pod.metadata.uid, None)
            self._post(pod, report["epoch"], ap.EXITED, end[0], end[1])
            if end[0] == 0:
                self._end_pod(pod, 0)
        elif report["state"] == ap.RUNNING and gang.epoch > report["epoch"]:
            if pod.metadata.name not in self.held:
                self._post(pod, gang.epoch, ap.WAITING)  # stopped: one report, as the agent does
        elif report["state"] in (ap.STOPPED, ap.EXITED, ap.WAITING) and gang.epoch > report["epoch"]:
            self._post(pod, gang.epoch, ap.WAITING)
        elif report["state"] == ap.WAITING and gang.epoch == report["epoch"] and gang.released >= report["epoch"]:
            self._post(pod, report["epoch"], ap.RUNNING)


def in_place(body: dict) -> dict:
    """The MSJob with restartStrategy InPlace."""
    body["spec"].setdefault("failurePolicy", {})["restartStrategy"] = "InPlace"
    return body


def barrier(jobs, name: str) -> dict:
    """status.gang's epoch and released."""
    gang = (jobs.get(name).get("status") or {}).get("gang") or {}
    return {k: gang[k] for k in ("epoch", "released") if k in gang}


def all_run(jobs, name: str, epoch: int, members: int = 3) -> bool:
    """Every member's agent reports its process of ``epoch`` running."""
    pods = jobs.pods(name, include_terminating=False)
    reports = [member_report(jobs.core, p) for p in pods]
    return len(pods) == members and all(r is not None and r["epoch"] == epoch and r["state"] == ap.RUNNING
                                        for r in reports)
