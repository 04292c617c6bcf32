"""Last step before a process-node container's command runs (standard library only).

The process node starts every container as::

    ip netns exec <pod netns> unshare --uts -- python -I podexec.py <spec.json>

``ip netns exec`` enters the pod's network namespace and a private mount namespace (mounts made
here do not reach the machine), ``unshare --uts`` gives the pod its own host name; both exec,
so the PID the node recorded stays the container's. This script then, as a container runtime
would: asks for SIGKILL when the node dies, sets the host name, bind-mounts the volumes on their
mountPaths and the pod's ``/etc/hosts`` and ``/etc/hostname``, changes to the working directory
and execs the command with the resolved environment.

spec.json: {"parent_pid", "hostname", "mounts": [{"source", "target", "readOnly"}], "etc": {"/etc/hosts": FILE, ...},
"workingDir" (the container's, seen after the mounts; may be null), "podWorkingDir" (the node's directory for
the pod, used without a workingDir), "argv", "env", "startErrorFile", "imageLacks"}.
"""

import ctypes
import json
import os
import signal
import socket
import sys
from typing import Any, NoReturn, Optional

PR_SET_PDEATHSIG = 1
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: Optional[str], target: str, flags: int, shown: Optional[str] = None) -> None:
    if _libc.mount(source.encode() if source else None, target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {shown or source} on {target}: {os.strerror(err)}")


def _start_error(spec: dict[str, Any], message: str, code: int = 128) -> NoReturn:
    print(f"process node: cannot start the container: {message}", file=sys.stderr, flush=True)
    try:
        with open(spec["startErrorFile"], "w") as out:
            out.write(message)
    except OSError:
        pass
    os._exit(code)


def main() -> None:
    with open(sys.argv[1]) as f:
        spec: dict[str, Any] = json.load(f)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != spec["parent_pid"]:  # the node died while we were starting
        os._exit(137)
    try:
        socket.sethostname(spec["hostname"])
        # Every source is opened before the first mount: a volume mounted on a directory that holds
        # the sources (an emptyDir on /tmp, with the node's pod directories under /tmp) hides them.
        sources = {path: os.open(path, os.O_PATH | os.O_CLOEXEC)
                   for path in [m["source"] for m in spec["mounts"]] + list(spec.get("etc", {}).values())}
        pod_workdir: Optional[int] = None
        if not spec.get("workingDir"):
            os.makedirs(spec["podWorkingDir"], exist_ok=True)
            pod_workdir = os.open(spec["podWorkingDir"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

        def source_of(path: str) -> str:
            return f"/proc/self/fd/{sources[path]}"

        for mount in spec["mounts"]:
            target = mount["target"]
            if not os.path.lexists(target):  # inside another volume: create it there
                if os.path.isdir(source_of(mount["source"])):
                    os.makedirs(target, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    open(target, "a").close()
            _mount(source_of(mount["source"]), target, MS_BIND | MS_REC, shown=mount["source"])
            if mount.get("readOnly"):
                _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY)
        for target, source in spec.get("etc", {}).items():
            if os.path.exists(target):
                _mount(source_of(source), target, MS_BIND, shown=source)
        for fd in sources.values():
            os.close(fd)
        if pod_workdir is not None:
            os.fchdir(pod_workdir)
            os.close(pod_workdir)
        else:
            os.makedirs(spec["workingDir"], exist_ok=True)
            os.chdir(spec["workingDir"])
    except OSError as exc:
        _start_error(spec, str(exc))
    argv = spec["argv"]
    if os.path.basename(argv[0]) in spec.get("imageLacks", ()):  # as runc says it
        _start_error(spec, f'exec: "{argv[0]}": executable file not found in $PATH', 128)
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        _start_error(spec, f'exec: "{argv[0]}": {exc.strerror}', 128)


if __name__ == "__main__":
    main()
