"""``msjob-local up|down|status|kubeconfig|demo``: the local platform's own command.

A local cluster that outlives the command (``up``/``down``), and the operator's main job end to end on it
(``demo``, what ``make run`` runs). Also ``python -m msjob_localcluster``.
``up --process-node`` adds a node whose pods run as real local processes (processnode.py),
detached like the cluster's components: ``local down`` stops it and removes its network namespaces.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .cluster import ClusterError, LocalCluster, default_root

if TYPE_CHECKING:
    from .processnode import ProcessNode

PROCESS_NODE_NAME = "process-node-0"
# What argparse's add_subparsers() returns (typeshed names it so).
SubParsers = argparse._SubParsersAction
Command = Callable[[argparse.Namespace], int]


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add up, down, status and kubeconfig to an argparse ``add_subparsers()`` object."""

    def add(name: str, func: Command, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--name", default="default", help="cluster name (default: %(default)s)")
        p.set_defaults(func=func)
        return p

    up = add("up", _up, "start a cluster; it keeps running after this command exits")
    up.add_argument("--nodes", type=int, default=4, help="fake nodes to create (default: %(default)s)")
    up.add_argument("--volcano", action="store_true", help="also run Volcano's scheduler")
    up.add_argument("--process-node", action="store_true",
                    help="also run a node whose pods are real local processes (needs root; select it with "
                         "nodeSelector msjob.test/process-node=true and tolerate "
                         "msjob.test/process-node=true:NoSchedule)")
    up.add_argument("--kueue", action="store_true", help="also run Kueue's controller-manager")
    up.add_argument("--workload-api", action="store_true",
                    help="turn on Kubernetes' gang scheduling (scheduling.k8s.io Workload/PodGroup)")
    add("down", _down, "stop a cluster started with `msjob-local up`")
    add("status", _status, "show components, PIDs, ports and nodes")
    add("kubeconfig", _kubeconfig, "print the kubeconfig path")


def _attached(name: str) -> LocalCluster | None:
    root = default_root(name)
    return LocalCluster.attach(root) if (root / "state.json").exists() else None


def process_node_problem() -> str | None:
    """Why this machine cannot run a process node (not root, no network namespaces), or None. As root, the
    host tools it needs (iproute2, nftables) are installed first when missing, as the process node does."""
    from . import netns

    if os.geteuid() == 0:
        try:
            netns.ensure_host_tools()
        except netns.NetworkError as e:
            return str(e)
    return netns.can_create_namespaces()


def process_node_root(root: Path) -> Path:
    return root / "process-node"


def _attached_process_node(root: Path) -> ProcessNode | None:
    from .processnode import STATE_FILE, ProcessNode

    node_root = process_node_root(root)
    return ProcessNode.attach(node_root) if (node_root / STATE_FILE).exists() else None


def _stop_process_node(root: Path) -> None:
    node = _attached_process_node(root)
    if node is None:
        return
    was_running = node.running()
    left = node.stop()
    leftovers = f" (the agent had left {', '.join(left)})" if left else ""
    print(f"process node {node.name} {'stopped' if was_running else 'was not running'}; "
          f"network namespaces {node.prefix}-* removed{leftovers}")


def _up(args: argparse.Namespace) -> int:
    root = default_root(args.name)
    if args.process_node:
        problem = process_node_problem()
        if problem:
            print(f"error: cannot run a process node here: {problem}", file=sys.stderr)
            return 1
        existing = _attached(args.name)
        if existing is not None and any(existing.running().values()):
            print(f"error: cluster {args.name!r} is already running: stop it first (local down --name {args.name})",
                  file=sys.stderr)
            return 1
        _stop_process_node(root)  # what a crashed earlier run may have left
    cluster = LocalCluster(root, name=args.name, nodes=args.nodes, volcano=args.volcano,
                           kueue=args.kueue, workload_api=args.workload_api)
    cluster.start(detached=True)
    print(f"cluster {args.name!r} up in {cluster.start_seconds:.1f} s at {cluster.server}")
    if args.process_node:
        from .processnode import ProcessNode

        try:
            node = ProcessNode(cluster.kubeconfig, PROCESS_NODE_NAME, process_node_root(root), detached=True).start()
        except BaseException:
            cluster.stop()
            raise
        print(f"process node {node.name} ready in {node.start_seconds:.1f} s (pid {node.pid}, log {node.log_path}): "
              "pods with nodeSelector msjob.test/process-node=true and a toleration of "
              "msjob.test/process-node=true:NoSchedule run here as local processes")
    print(f"kubeconfig: {cluster.kubeconfig}")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print("the fake nodes accept ordinary pods (kwok.msjob.test/* annotations steer their fake containers)")
    return 0


def _down(args: argparse.Namespace) -> int:
    root = default_root(args.name)
    _stop_process_node(root)
    cluster = _attached(args.name)
    if cluster is None:
        print(f"cluster {args.name!r} is not running")
        return 0
    cluster.stop()
    print(f"cluster {args.name!r} stopped (logs kept in {cluster.root / 'logs'})")
    return 0


def _status(args: argparse.Namespace) -> int:
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
    node = _attached_process_node(cluster.root)
    if node is not None:
        running["process-node"] = node.running()
        state = "running" if running["process-node"] else "NOT RUNNING"
        print(f"  {'process-node':<24} pid {node.pid:<8} {state:<12}namespaces {node.prefix}-*")
    if running.get("kube-apiserver"):
        print(cluster.kubectl("get", "nodes", "-o", "wide", check=False).stdout.rstrip())
    return 0 if all(running.values()) else 1


def _kubeconfig(args: argparse.Namespace) -> int:
    cluster = _attached(args.name)
    if cluster is None:
        print(f"cluster {args.name!r} is not running", file=sys.stderr)
        return 1
    print(cluster.kubeconfig)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import demo

    parser = argparse.ArgumentParser(prog="msjob-local", description="The local platform of msjob-operator: a real "
                                     "Kubernetes control plane on this machine, fake and process nodes, the demo.")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    demo.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
