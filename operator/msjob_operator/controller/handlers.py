"""kopf handlers: the only place that touches kopf.  They read, call the controller, and return."""

from __future__ import annotations

import inspect
import logging
import os
import signal
from typing import Any, Optional

import kopf
from prometheus_client import start_http_server

from ..api.models import GROUP, PLURAL, VERSION
from ..config import Config
from . import metrics
from .collector import JobStateCollector
from .kube import Kube, load_configuration
from .leader import LeaderElection
from .reconciler import Controller

log = logging.getLogger("msjob_operator")


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base is read by change handlers (on.create, on.update, ...) only; this operator has
    none (on.event feeds its own work queue), and building it deep-copies every MSJob at every event."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> Optional[kopf.BodyEssence]:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.login()
async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf's own watches use the same credentials as our client (same file, same order)."""
    configuration = await load_configuration(_config(memo).kubeconfig)
    found: Any = configuration.get_api_key_with_prefix("BearerToken")
    header: Optional[str] = (await found) if inspect.isawaitable(found) else found
    scheme, _sep, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Watches behind load balancers can go silent: reconnect on our own schedule.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.persistence.diffbase_storage = NoDiffBase()
    config = _config(memo)
    if config.namespaces:
        # Namespaced mode needs no cluster-wide access: the namespaces are named exactly, so kopf need
        # not list namespaces nor watch CRDs (a CRD installed later needs an operator restart).
        settings.scanning.disabled = True
    kube = await Kube.connect(config.kubeconfig, max_in_flight=config.max_in_flight)
    leader = None
    if config.peering:
        # Several replicas: kopf only feeds every replica's cache; our Lease decides who acts.
        leader = LeaderElection(kube, config.peering_namespace, config.peering_name,
                                lease_seconds=config.peering_lease_seconds)
    controller = Controller(kube, config, leader=leader, on_leadership_lost=lambda: os.kill(os.getpid(),
                                                                                            signal.SIGTERM))
    memo["controller"] = controller
    await controller.start()
    if config.metrics_port:
        metrics.REGISTRY.register(JobStateCollector(controller))
        start_http_server(config.metrics_port, addr=config.metrics_address, registry=metrics.REGISTRY)
        log.info("serving metrics on port %s", config.metrics_port)


def _config(memo: kopf.Memo) -> Config:
    config = memo.get("config")
    return config if isinstance(config, Config) else Config()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.stop()
        await controller.kube.close()


# Handlers are coroutines: kopf runs a plain function in a thread pool, and the work queue and the
# caches it feeds are the event loop's alone (asyncio is not thread-safe), besides the cost of the hop.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def msjob_changed(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.job_event(event.get("type"), dict(event["object"]))


@kopf.on.probe(id="reconcile")
async def reconcile_health(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Readiness that shows work flows: caches synced and the time of the last reconcile."""
    controller: Controller | None = memo.get("controller")
    if controller is None or not controller.synced:
        raise kopf.TemporaryError("the operator's caches are not synced yet", delay=1)
    return controller.health()
