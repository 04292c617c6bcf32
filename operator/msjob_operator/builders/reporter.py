"""What worker 0's pod gets for progress reporting: pure builders.

* ``run_volume()``: an emptyDir ``VOLUME_NAME`` shared by the training container and the reporter;
* in the training container: ``run_mount()`` and ``perf_env()`` (turns on MindSpore's step-time
  files and tells ``ProgressCallback`` where to write);
* ``reporter_container(image, interval)``: the reporter, a *native sidecar*: it goes into the pod's
  ``initContainers`` (it carries ``restartPolicy: Always``), so the kubelet starts it before the
  training container and stops it once the training container has exited; the pod then ends
  Succeeded or Failed by the training container alone (as a regular container it would keep the
  pod Running forever).  Needs Kubernetes 1.29 or later.

Give ``perf_env()`` only to containers that also mount ``run_mount()``: MindSpore creates
``PERF_DUMP_PATH`` if it is missing, and on a read-only root file system ``Model.train`` then fails.

File permissions: MindSpore writes its step-time files mode 0400 in a 0700 directory, so the
reporter can read them only as the training container's user.  ``reporter_user(pod_spec)`` works
that user out for ``reporter_container(..., run_as_user=, run_as_group=)``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from msjob_runtime.progress import PERF_DIR, PROGRESS_FILE, RUN_DIR

from ..api.template_rules import REPORTER_CONTAINER
from .containers import main_container, volume_mount

VOLUME_NAME = "msjob-run"  # the emptyDir worker 0's training container and the reporter share

PERF_DUMP_CONFIG = "enable:true,steptime:true,dtpGroup:false"  # MindSpore 2.10 requires all three keys
DEFAULT_INTERVAL = 10
REPORTER_MODULE = "msjob_runtime.reporter"
# Measured: about 70 MiB resident with the kubernetes client; 25 MiB since msjob_runtime uses only the standard
# library (the request is left as it was); a few ms of CPU per report.
REPORTER_RESOURCES = {"requests": {"cpu": "10m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}}


def run_volume() -> dict[str, Any]:
    """The emptyDir shared by the training container and the reporter (no size limit: a limit
    reached would evict the training pod; the files grow by about 40 bytes a step)."""
    return {"name": VOLUME_NAME, "emptyDir": {}}


def run_mount(read_only: bool = False) -> dict[str, Any]:
    return volume_mount(VOLUME_NAME, RUN_DIR, read_only)


def perf_env() -> list[dict[str, Any]]:
    """Env of the training container: MindSpore's step-time files in ``PERF_DIR``, and the
    progress file of ``ProgressCallback``."""
    return [
        {"name": "PERF_DUMP_CONFIG", "value": PERF_DUMP_CONFIG},
        {"name": "PERF_DUMP_PATH", "value": PERF_DIR},
        {"name": "MSJOB_PROGRESS_FILE", "value": PROGRESS_FILE},
    ]


def reporter_user(pod_spec: Mapping[str, Any]) -> tuple[Optional[int], Optional[int]]:
    """``(uid, gid)`` to run the reporter as: the training container's user.

    Its ``runAsUser``/``runAsGroup`` (container, else pod securityContext).  When the user is
    left to the image: ``(0, None)`` (an image without ``USER`` runs as root, as MindSpore's
    images do), unless ``runAsNonRoot`` is set, then ``(None, None)``: the image's non-root user
    is unknown here, the reporter runs as the pod's or its own image's user and sees only what
    ``ProgressCallback`` writes (readable by all).
    """
    pod_sc = pod_spec.get("securityContext") or {}
    main = main_container(dict(pod_spec)) or {}
    sc = main.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if uid is not None:
        return int(uid), (int(gid) if gid is not None else None)
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
        return None, None
    return 0, (int(gid) if gid is not None else None)


def security_context(run_as_user: Optional[int] = None, run_as_group: Optional[int] = None) -> dict[str, Any]:
    """As restricted as the reporter can be: no privilege escalation, no capabilities, the
    runtime's seccomp profile, a read-only root file system; non-root unless it must read a
    root training container's files (``run_as_user=0``)."""
    sc: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if run_as_user is not None:
        sc["runAsUser"] = int(run_as_user)
        sc["runAsNonRoot"] = int(run_as_user) != 0
    if run_as_group is not None:
        sc["runAsGroup"] = int(run_as_group)
    return sc


def reporter_command(interval: int, perf_dir: str = PERF_DIR, progress_file: str = PROGRESS_FILE) -> list[str]:
    return ["python", "-m", REPORTER_MODULE, "--perf-dir", perf_dir, "--progress-file", progress_file,
            "--interval", str(interval)]


def reporter_container(image: str, interval: int = DEFAULT_INTERVAL, *, run_as_user: Optional[int] = None,
                       run_as_group: Optional[int] = None) -> dict[str, Any]:
    """The reporter sidecar, for the pod's ``initContainers`` (``restartPolicy: Always``).

    ``image``: one with ``msjob_runtime`` installed (the operator's own image); ``interval``: seconds
    between reports.  Its pod's name and namespace come from the downward API.
    """
    if int(interval) < 1:
        raise ValueError(f"the reporter's interval must be at least 1 s, not {interval}")
    return {
        "name": REPORTER_CONTAINER,
        "image": image,
        "command": reporter_command(int(interval)),
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "volumeMounts": [run_mount(read_only=True)],
        "resources": {k: dict(v) for k, v in REPORTER_RESOURCES.items()},
        "securityContext": security_context(run_as_user, run_as_group),
        "restartPolicy": "Always",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
