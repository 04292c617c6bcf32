"""``msjob_runtime`` in any training image: an init container copies it in (pure builders).

Not wired into the pods yet; meant for the restart agent and for ``ProgressCallback`` in images
that do not have the package.  What a pod gets::

    initContainers: install_container(image)     the operator's image runs
                                                 python -m msjob_runtime.install RUNTIME_DIR
    volumes:        runtime_volume()             an emptyDir
    main container: runtime_mount(), runtime_env(container)
                                                 PYTHONPATH gets RUNTIME_DIR: import msjob_runtime works

``with_runtime(pod_spec, image)`` does all of it.  For ``restartStrategy: InPlace`` the main
container's command then runs under the agent: ``agent_command(container, grace)`` and
``agent_env()`` (its identity from the downward API); see docs/in-place-restart.md.  The package is
standard library only, so the image's own Python (3.8 or later) runs it.

PYTHONPATH: Kubernetes cannot see an image's own ``ENV``, so ``runtime_env`` appends RUNTIME_DIR
to the container's ``PYTHONPATH`` when its spec sets one by value, and sets it to RUNTIME_DIR
otherwise (an image whose own ``ENV PYTHONPATH`` matters must repeat it in the template).  A
``PYTHONPATH`` from ``valueFrom`` is left alone: add ``$(MSJOB_RUNTIME_PATH)`` to it yourself.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from msjob_runtime.agent_protocol import (
    AGENT_SCRIPT,
    COMMAND_SEPARATOR,
    POD_NAME_ENV,
    POD_NAMESPACE_ENV,
    POD_UID_ENV,
    agent_grace_seconds,
)

from ..api.template_rules import RUNTIME_CONTAINER
from .containers import main_container, volume_mount
from .reporter import security_context

RUNTIME_VOLUME = "msjob-runtime"
RUNTIME_DIR = "/opt/msjob/runtime"
INSTALL_CONTAINER = RUNTIME_CONTAINER  # a reserved name: no template can take it
INSTALL_MODULE = "msjob_runtime.install"
PATH_ENV = "MSJOB_RUNTIME_PATH"
AGENT_SCRIPT_PATH = f"{RUNTIME_DIR}/{AGENT_SCRIPT}"  # run as a plain script: no PYTHONPATH needed
# Copying about 100 kB of Python files: a few MiB and a blink of CPU.
INSTALL_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}


def runtime_volume() -> dict[str, Any]:
    return {"name": RUNTIME_VOLUME, "emptyDir": {}}


def runtime_mount(read_only: bool = True) -> dict[str, Any]:
    return volume_mount(RUNTIME_VOLUME, RUNTIME_DIR, read_only)


def install_command(directory: str = RUNTIME_DIR) -> list[str]:
    return ["python", "-m", INSTALL_MODULE, directory]


def install_container(image: str, *, run_as_user: Optional[int] = None,
                      run_as_group: Optional[int] = None) -> dict[str, Any]:
    """A regular init container (it runs to completion before the others start) that copies the
    package from ``image`` (one with ``msjob_runtime`` installed: the operator's) into the volume."""
    return {
        "name": INSTALL_CONTAINER,
        "image": image,
        "command": install_command(),
        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        "volumeMounts": [runtime_mount(read_only=False)],
        "resources": {k: dict(v) for k, v in INSTALL_RESOURCES.items()},
        "securityContext": security_context(run_as_user, run_as_group),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def runtime_env(container: dict[str, Any]) -> list[dict[str, Any]]:
    """The container's env with ``MSJOB_RUNTIME_PATH`` and RUNTIME_DIR on ``PYTHONPATH`` (see the module)."""
    env = [dict(e) for e in container.get("env") or [] if e.get("name") != PATH_ENV]
    env.insert(0, {"name": PATH_ENV, "value": RUNTIME_DIR})
    current = next((e for e in env if e.get("name") == "PYTHONPATH"), None)
    if current is None:
        env.append({"name": "PYTHONPATH", "value": RUNTIME_DIR})
    elif "valueFrom" not in current:
        parts = [p for p in str(current.get("value") or "").split(":") if p]
        if RUNTIME_DIR not in parts:
            parts.append(RUNTIME_DIR)
        current["value"] = ":".join(parts)
    return env


def with_runtime(pod_spec: dict[str, Any], image: str, *, run_as_user: Optional[int] = None,
                 run_as_group: Optional[int] = None) -> dict[str, Any]:
    """A copy of ``pod_spec`` whose main container can import ``msjob_runtime`` (idempotent)."""
    spec = copy.deepcopy(pod_spec)
    main = install_runtime(spec, image, run_as_user=run_as_user, run_as_group=run_as_group)
    main["env"] = runtime_env(main)
    return spec


def install_runtime(spec: dict[str, Any], image: str, *, run_as_user: Optional[int] = None,
                    run_as_group: Optional[int] = None) -> dict[str, Any]:
    """Give ``spec`` (changed in place) the runtime's volume and init container, and its main container
    the mount; returns the main container (idempotent)."""
    volumes = spec.setdefault("volumes", [])
    if not any(v.get("name") == RUNTIME_VOLUME for v in volumes):
        volumes.append(runtime_volume())
    inits = spec.setdefault("initContainers", [])
    if not any(c.get("name") == INSTALL_CONTAINER for c in inits):
        # Before the user's own init containers: a native sidecar among them may need the runtime too.
        inits.insert(0, install_container(image, run_as_user=run_as_user, run_as_group=run_as_group))
    main = main_container(spec)
    if main is None:
        raise ValueError("the pod has no container to give the runtime to")
    mounts = main.setdefault("volumeMounts", [])
    if not any(m.get("name") == RUNTIME_VOLUME for m in mounts):
        mounts.append(runtime_mount())
    return main


AGENT_PYTHON = "python3"  # the interpreter the agent runs on: the image's own


def agent_command(container: dict[str, Any], termination_grace_period: Optional[int],
                  python: str = AGENT_PYTHON) -> list[str]:
    """The container's ``command`` wrapped by the in-place restart agent::

        python3 /opt/msjob/runtime/msjob_runtime/agent.py --grace-seconds G -- <command...>

    ``args`` stay the container's: Kubernetes appends them to the command, so they reach the
    training process unchanged (with their ``$(VAR)`` expansion).  G is the pod's
    terminationGracePeriodSeconds minus the agent's margin.  A container without ``command``
    runs its image's ENTRYPOINT, which the operator cannot see: ValueError (validate it first)."""
    command = list(container.get("command") or [])
    if not command:
        raise ValueError(f"container {container.get('name')!r} has no command to run under the in-place restart "
                         "agent (the image's ENTRYPOINT is not visible to the operator)")
    grace = agent_grace_seconds(termination_grace_period)
    return [python, AGENT_SCRIPT_PATH, "--grace-seconds", f"{grace:g}", COMMAND_SEPARATOR, *command]


def agent_env() -> list[dict[str, Any]]:
    """The agent's identity (the downward API; the UID names the pod as its Lease's holder); the job's
    name comes from ``MSJOB_NAME``, which members already get."""
    return [{"name": POD_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": POD_NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": POD_UID_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}]
