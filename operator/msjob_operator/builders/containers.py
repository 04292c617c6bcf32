"""Which container of a pod runs MindSpore."""

from __future__ import annotations

from typing import Any

MAIN_CONTAINER = "mindspore"


def main_container(pod_spec: dict[str, Any]) -> dict[str, Any] | None:
    """The container named 'mindspore', else the first."""
    containers: list[dict[str, Any]] = pod_spec.get("containers") or []
    for container in containers:
        if container.get("name") == MAIN_CONTAINER:
            return container
    return containers[0] if containers else None


def volume_mount(name: str, path: str, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    return mount
