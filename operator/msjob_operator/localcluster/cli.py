"""``local up|down|status|kubeconfig``: a local cluster that outlives the command.

Standalone: ``python -m msjob_operator.localcluster.cli local up --nodes 4``.
"""

from __future__ import annotations

import argparse
import sys

from .cluster import ClusterError, LocalCluster, default_root


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``local`` command group to an argparse ``add_subparsers()`` object."""
    local = subparsers.add_parser("local", help="a local Kubernetes control plane with fake nodes")
    sub = local.add_subparsers(dest="local_command", required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--name", default="default", help="cluster name (default: %(default)s)")
        p.set_defaults(func=func)
        return p

    up = add("up", _up, "start a cluster; it keeps running after this command exits")
    up.add_argument("--nodes", type=int, default=4, help="fake nodes to create (default: %(default)s)")
    up.add_argument("--volcano", action="store_true", help="also run Volcano's scheduler")
    up.add_argument("--kueue", action="store_true", help="also run Kueue's controller-manager")
    up.add_argument("--workload-api", action="store_true",
                    help="turn on Kubernetes' gang scheduling (scheduling.k8s.io Workload/PodGroup)")
    add("down", _down, "stop a cluster started with `local up`")
    add("status", _status, "show components, PIDs, ports and nodes")
    add("kubeconfig", _kubeconfig, "print the kubeconfig path")
    return local


def _attached(name: str) -> LocalCluster | None:
    root = default_root(name)
    return LocalCluster.attach(root) if (root / "state.json").exists() else None


def _up(args) -> int:
    cluster = LocalCluster(default_root(args.name), name=args.name, nodes=args.nodes, volcano=args.volcano,
                           kueue=args.kueue, workload_api=args.workload_api)
    cluster.start(detached=True)
    print(f"cluster {args.name!r} up in {cluster.start_seconds:.1f} s at {cluster.server}")
    print(f"kubeconfig: {cluster.kubeconfig}")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print("pods for the fake nodes must tolerate kwok.x-k8s.io/node=fake:NoSchedule")
    return 0


def _down(args) -> int:
    cluster = _attached(args.name)
    if cluster is None:
        print(f"cluster {args.name!r} is not running")
        return 0
    cluster.stop()
    print(f"cluster {args.name!r} stopped (logs kept in {cluster.root / 'logs'})")
    return 0


def _status(args) -> int:
    cluster = _attached(args.name)
    if cluster is None:
        print(f"cluster {args.name!r} is not running")
        return 1
    running = cluster.running()
    print(f"cluster {args.name!r}: {cluster.server}  kubeconfig {cluster.kubeconfig}")
    for name, pid in cluster.pids.items():
        port = cluster.ports.get(name)
        print(f"  {name:<24} pid {pid:<8} {'running' if running[name] else 'NOT RUNNING':<12}"
              f"{f'port {port}' if port else ''}")
    if running.get("kube-apiserver"):
        print(cluster.kubectl("get", "nodes", "-o", "wide", check=False).stdout.rstrip())
    return 0 if all(running.values()) else 1


def _kubeconfig(args) -> int:
    cluster = _attached(args.name)
    if cluster is None:
        print(f"cluster {args.name!r} is not running", file=sys.stderr)
        return 1
    print(cluster.kubeconfig)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msjob-operator")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
