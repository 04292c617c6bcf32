"""Find or build the binaries of the local cluster.

Order of preference for each binary: a directory named by ``KUBEBUILDER_ASSETS``,
then ``PATH``, then this project's cache (``$MSJOB_CACHE_DIR`` or
``~/.cache/msjob-operator``); only when none has a fitting version is it built
from its Go module through the Go module proxy, using the wrapper modules
shipped in ``gomods/``.  Builds are cached per version, so only a cold machine
pays for them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

GOMODS = Path(__file__).parent / "gomods"

KUBE_VERSION = "1.37.1"
_KUBE_LDFLAGS = (
    "-s -w"
    f" -X k8s.io/component-base/version.gitVersion=v{KUBE_VERSION}"
    " -X k8s.io/component-base/version.gitMajor=1"
    f" -X k8s.io/component-base/version.gitMinor={KUBE_VERSION.split('.')[1]}"
    f" -X k8s.io/client-go/pkg/version.gitVersion=v{KUBE_VERSION}"
    " -X k8s.io/client-go/pkg/version.gitMajor=1"
    f" -X k8s.io/client-go/pkg/version.gitMinor={KUBE_VERSION.split('.')[1]}"
)

KUEUE_VERSION = "0.17.1"

_HELM_VERSION = "3.21.4"
# As helm's own Makefile does: without these, `helm version` says "v3.21" and `helm template`/`helm lint`
# assume Kubernetes 1.20 (charts that require a newer kubeVersion would not render offline).
_HELM_KUBE = "-X helm.sh/helm/v3/pkg/{pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/{pkg}.k8sVersionMinor=36"
_HELM_LDFLAGS = (
    f"-s -w -X helm.sh/helm/v3/internal/version.version=v{_HELM_VERSION}"
    f" {_HELM_KUBE.format(pkg='chartutil')} {_HELM_KUBE.format(pkg='lint/rules')}"
)


@dataclasses.dataclass(frozen=True)
class SourceEdit:
    """One literal replacement in a file of a tool's main package. The package is copied into
    the wrapper module and built from there: the module cache stays as downloaded (and Go
    refuses overlays of files in it)."""
    file: str  # in the main package's directory
    old: str
    new: str


@dataclasses.dataclass(frozen=True)
class Tool:
    name: str
    wrapper: str  # directory under gomods/
    package: str
    version: str
    ldflags: str = "-s -w"
    tags: str = ""
    # Oldest version found elsewhere (PATH, KUBEBUILDER_ASSETS) that we accept.
    min_version: tuple[int, ...] = ()
    version_args: tuple[str, ...] = ("--version",)
    # Whether a copy on PATH or in KUBEBUILDER_ASSETS may stand in (only for tools that report their version).
    external: bool = True
    edits: tuple[SourceEdit, ...] = ()


# Without internal cert management Kueue's manager reads its metrics certificate from a fixed
# /etc/kueue/metrics/certs, a container's path; a local cluster's Kueue uses its webhook cert dir.
_KUEUE_METRICS_CERTS = SourceEdit(
    "main.go", 'metricsCertPath := "/etc/kueue/metrics/certs"', "metricsCertPath := cfg.Webhook.CertDir",
)

TOOLS: dict[str, Tool] = {
    t.name: t
    for t in [
        Tool("etcd", "etcd", "go.etcd.io/etcd/server/v3", "3.6.16", min_version=(3, 5, 0)),
        Tool(
            "kube-apiserver", "kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver", KUBE_VERSION,
            _KUBE_LDFLAGS, "selinux,notest,grpcnotrace", min_version=(1, 30, 0),
        ),
        Tool(
            "kube-controller-manager", "kubernetes", "k8s.io/kubernetes/cmd/kube-controller-manager",
            KUBE_VERSION, _KUBE_LDFLAGS, "selinux,notest,grpcnotrace", min_version=(1, 30, 0),
        ),
        Tool(
            "kube-scheduler", "kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler", KUBE_VERSION,
            _KUBE_LDFLAGS, "selinux,notest,grpcnotrace", min_version=(1, 30, 0),
        ),
        Tool(
            "kubectl", "kubernetes", "k8s.io/kubernetes/cmd/kubectl", KUBE_VERSION,
            # Not older than the API server it talks to by more than one minor (version skew policy).
            _KUBE_LDFLAGS, "selinux,notest,grpcnotrace", min_version=(1, 36, 0),
            version_args=("version", "--client"),
        ),
        Tool("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", "0.8.0", min_version=(0, 8, 0),
             version_args=("--version",)),
        Tool("vc-scheduler", "volcano", "volcano.sh/volcano/cmd/scheduler", "1.14.1",
             min_version=(1, 14, 1), version_args=("--version",)),
        Tool("helm", "helm", "helm.sh/helm/v3/cmd/helm", _HELM_VERSION, _HELM_LDFLAGS, min_version=(3, 14, 0),
             version_args=("version", "--short")),
        # Its manager has no --version flag: only our own build, cached by version, is used.
        Tool("kueue", "kueue", "sigs.k8s.io/kueue/cmd/kueue", KUEUE_VERSION,
             f"-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=v{KUEUE_VERSION}", external=False,
             edits=(_KUEUE_METRICS_CERTS,)),
    ]
}

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class BinaryError(RuntimeError):
    """A binary is neither available nor buildable; the message says what to do."""


def cache_dir() -> Path:
    base = os.environ.get("MSJOB_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "msjob-operator"


def _parse_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in m.groups()) if m else None


def _version_of(path: Path, tool: Tool) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [str(path), *tool.version_args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return _parse_version(out.stdout + out.stderr)


def _candidates(tool: Tool) -> list[Path]:
    found = []
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found.append(Path(assets) / tool.name)
    on_path = shutil.which(tool.name)
    if on_path:
        found.append(Path(on_path))
    return [p for p in found if p.is_file() and os.access(p, os.X_OK)]


def cached_path(tool: Tool) -> Path:
    return cache_dir() / "bin" / f"{tool.name}-v{tool.version}"


def find(name: str) -> Path | None:
    """Return a usable binary without building, or None."""
    tool = TOOLS[name]
    cached = cached_path(tool)
    if cached.is_file():
        return cached
    for path in _candidates(tool) if tool.external else []:
        version = _version_of(path, tool)
        if version is not None and version >= tool.min_version:
            return path
    return None


class _Ticker:
    """Print a progress line while a long build runs (cold builds take minutes)."""

    def __init__(self, label: str, out: TextIO = sys.stderr, every: float = 15.0):
        self.label, self.out, self.every = label, out, every
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            print(f"  ... still building {self.label} ({self.elapsed():.0f} s)", file=self.out, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def __enter__(self) -> _Ticker:
        print(f"building {self.label} from its Go module (cold builds take minutes)", file=self.out, flush=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def build(name: str) -> Path:
    tool = TOOLS[name]
    go = shutil.which("go")
    if go is None:
        raise BinaryError(
            f"{name} v{tool.version} is needed but not found, and Go is not installed to build it. "
            f"Install Go 1.26+, or put a {name} binary on PATH or in $KUBEBUILDER_ASSETS "
            f"(version >= {'.'.join(map(str, tool.min_version))})."
        )
    # Work in a copy of the wrapper module so the installed package stays read-only.
    src = cache_dir() / "src" / tool.wrapper
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(GOMODS / tool.wrapper, src)
    target = cached_path(tool)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
    cmd = [go, "build", "-trimpath", "-ldflags", tool.ldflags, "-o", str(tmp)]
    if tool.tags:
        cmd += ["-tags", tool.tags]
    cmd.append(_edited_main(go, src, env, tool) if tool.edits else tool.package)
    with _Ticker(f"{name} v{tool.version}") as ticker:
        proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BinaryError(f"building {name} failed:\n{proc.stderr[-4000:]}")
    tmp.rename(target)
    print(f"built {name} v{tool.version} in {ticker.elapsed():.0f} s -> {target}", file=sys.stderr, flush=True)
    return target


def module_dir(go: str, cwd: Path, module: str, env: dict[str, str] | None = None) -> Path:
    """Download ``module`` (``path@version``, or a path the go.mod in ``cwd`` requires) and
    return its directory in the module cache."""
    for cmd in (["mod", "download", "-json"], ["list", "-m", "-json"]):
        proc = subprocess.run([go, *cmd, module], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise BinaryError(f"go {cmd[0]} {module} failed: {proc.stdout}{proc.stderr}")
        if proc.stdout.strip():  # download says nothing of a module replaced by a directory: list does
            return Path(json.loads(proc.stdout)["Dir"])
    raise BinaryError(f"no directory for {module}")


def _edited_main(go: str, src: Path, env: dict[str, str], tool: Tool) -> str:
    """Copy the tool's main package into ``src``, apply its edits (failing if upstream changed
    under them) and return the package's path relative to ``src``."""
    proc = subprocess.run([go, "list", "-f", "{{.Dir}}", tool.package], cwd=src, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise BinaryError(f"go list {tool.package} failed: {proc.stderr}")
    upstream = Path(proc.stdout.strip())
    edited = src / "edited" / upstream.name
    edited.mkdir(parents=True)
    for f in upstream.glob("*.go"):
        if not f.name.endswith("_test.go"):
            shutil.copyfile(f, edited / f.name)  # a new, writable file
    for edit in tool.edits:
        text = (edited / edit.file).read_text()
        if text.count(edit.old) != 1:
            raise BinaryError(f"{tool.package}/{edit.file}: expected {edit.old!r} exactly once; update the edit")
        (edited / edit.file).write_text(text.replace(edit.old, edit.new))
    return f"./{edited.relative_to(src).as_posix()}"


def ensure(*names: str) -> dict[str, Path]:
    """Return paths of the named binaries, building the missing ones."""
    return {name: find(name) or build(name) for name in names}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Find or build the local cluster's binaries.")
    parser.add_argument("names", nargs="*", default=list(CONTROL_PLANE))
    args = parser.parse_args(argv)
    for name, path in ensure(*args.names).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
