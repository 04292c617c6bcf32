"""Which accelerator a job's Worker pods use, and how many processes each pod runs."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from ..api.enums import LaunchMode, ReplicaType
from ..api.models import MSJobSpec
from .containers import main_container

ASCEND_PREFIX = "huawei.com/"
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")


@dataclasses.dataclass(frozen=True)
class Devices:
    resource: Optional[str]
    per_pod: int

    @property
    def ascend(self) -> bool:
        return self.resource is not None and self.resource.startswith(ASCEND_PREFIX)

    @property
    def gpu(self) -> bool:
        return self.resource in GPU_RESOURCES


def _is_device(resource: str) -> bool:
    return resource.startswith(ASCEND_PREFIX) or resource in GPU_RESOURCES


def worker_devices(spec: MSJobSpec) -> Devices:
    """spec.mindspore.devices, else the first device resource in the Worker template's limits."""
    settings = spec.mindspore.devices if spec.mindspore else None
    if settings:
        return Devices(settings.resource, settings.per_pod)
    worker = dict(spec.ms_replica_specs.items()).get(ReplicaType.WORKER.value)
    container = main_container((worker.template.get("spec") or {})) if worker else None
    for name, value in ((container or {}).get("resources") or {}).get("limits", {}).items():
        if _is_device(name):
            try:
                return Devices(name, max(int(str(value)), 1))
            except ValueError:  # a fractional or suffixed quantity is not a device count
                continue
    return Devices(None, 1)


def processes_per_pod(spec: MSJobSpec) -> int:
    """One MindSpore process per pod in Dynamic mode; per device (or as set) with msrun or a rank table."""
    mode = (spec.mindspore.launch_mode if spec.mindspore else None) or LaunchMode.DYNAMIC.value
    if mode == LaunchMode.DYNAMIC.value:
        return 1
    if spec.mindspore and spec.mindspore.processes_per_pod:
        return spec.mindspore.processes_per_pod
    return worker_devices(spec).per_pod


def request_devices(container: dict[str, Any], devices: Devices) -> None:
    """Add the device limit when the user named devices but did not request them."""
    if not devices.resource:
        return
    resources = container.setdefault("resources", {})
    limits = resources.setdefault("limits", {})
    limits.setdefault(devices.resource, devices.per_pod)
