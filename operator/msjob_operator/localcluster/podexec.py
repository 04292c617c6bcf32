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
"workingDir", "argv", "env", "startErrorFile"}.
"""

import ctypes
import json
import os
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source, target, flags):
    if _libc.mount(source.encode() if source else None, target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _start_error(spec, message, code=128):
    print(f"process node: cannot start the container: {message}", file=sys.stderr, flush=True)
    try:
        with open(spec["startErrorFile"], "w") as out:
            out.write(message)
    except OSError:
        pass
    os._exit(code)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != spec["parent_pid"]:  # the node died while we were starting
        os._exit(137)
    try:
        socket.sethostname(spec["hostname"])
        for mount in spec["mounts"]:
            target = mount["target"]
            if not os.path.lexists(target):  # inside another volume: create it there
                if os.path.isdir(mount["source"]):
                    os.makedirs(target, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    open(target, "a").close()
            _mount(mount["source"], target, MS_BIND | MS_REC)
            if mount.get("readOnly"):
                _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY)
        for target, source in spec.get("etc", {}).items():
            if os.path.exists(target):
                _mount(source, target, MS_BIND)
        workdir = spec.get("workingDir") or "/"
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
    except OSError as exc:
        _start_error(spec, str(exc))
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        _start_error(spec, f'exec: "{argv[0]}": {exc.strerror}', 128)


if __name__ == "__main__":
    main()
