"""The ``msjob`` command: submit, inspect, wait for and manage MSJobs from a shell.

    msjob submit -f job.yaml [--wait]       msjob describe NAME          msjob wait NAME [--timeout S]
    msjob get NAME [-o yaml|json]           msjob logs NAME [--type Worker --index 0]
    msjob list [-A] [-l SELECTOR]           msjob delete|suspend|resume NAME

Every command takes ``-n/--namespace``, ``--kubeconfig`` and ``--context``. ``wait`` (and ``submit --wait``)
prints one line per change of state, ready workers or restarts and exits 0 when the job succeeded, 1 when it
failed, 2 on timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Optional, TextIO

import yaml

from ..api.models import GROUP, KIND, MSJob
from .accessors import has_condition, state_of, status_of, to_dict
from .client import MSJobClient
from .describe import describe
from .errors import LogsUnavailableError, MSJobError, MSJobTimeoutError, api_message
from .format import Progress, age, outcome_line, table, workers_of

RESOURCE = f"msjob.{GROUP}"
EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2


def _client(args: argparse.Namespace) -> MSJobClient:
    return MSJobClient(kubeconfig=getattr(args, "kubeconfig", None), namespace=getattr(args, "namespace", None),
                       context=getattr(args, "context", None))


def _job_rows(jobs: list[MSJob], with_namespace: bool) -> str:
    headers = ["NAME", "STATE", "WORKERS", "RESTARTS", "WAITING", "AGE"]
    if with_namespace:
        headers.insert(0, "NAMESPACE")
    rows = []
    for job in jobs:
        st = status_of(job)
        waiting = st.waiting.reason if st.waiting and st.waiting.reason else ""
        row = [job.name, state_of(job), workers_of(job), st.restart_count or 0, waiting,
               age(job.metadata.get("creationTimestamp"))]
        rows.append(([job.namespace] if with_namespace else []) + row)
    return table(headers, rows)


def _wait(client: MSJobClient, name: str, namespace: Optional[str], timeout: float, until: str,
          out: TextIO) -> int:
    progress = Progress(out)
    wanted = ("Succeeded", "Failed") if until in ("Succeeded", "Failed") else (until, "Failed")
    try:
        job = client.wait_for_condition(name, wanted, namespace=namespace, timeout=timeout, callback=progress)
    except MSJobTimeoutError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_TIMEOUT
    print(outcome_line(job), file=out, flush=True)
    return EXIT_OK if has_condition(job, until) else EXIT_FAILED


def _documents(filename: str) -> list[Any]:
    if filename == "-":
        text = sys.stdin.read()
    else:
        with open(filename, encoding="utf-8") as f:
            text = f.read()
    try:
        return [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SystemExit(f"error: {filename} is not valid YAML{where}: {problem}") from None


def cmd_submit(args: argparse.Namespace) -> int:
    docs = _documents(args.filename)
    client = _client(args)
    if not docs:
        raise SystemExit(f"error: no MSJob in {args.filename}")
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            got = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
            raise SystemExit(f"error: {args.filename}: expected kind {KIND}, got {got}")
    created = []
    for doc in docs:
        job = client.create(doc)
        created.append(job)
        print(f"{RESOURCE}/{job.name} created", flush=True)
    if not args.wait:
        return EXIT_OK
    code = EXIT_OK
    for job in created:
        code = max(code, _wait(client, job.name, job.namespace, args.timeout, "Succeeded", sys.stdout))
    return code


def cmd_get(args: argparse.Namespace) -> int:
    job = _client(args).get(args.name)
    if args.output in ("yaml", "json"):
        body = to_dict(job)
        if args.output == "yaml":
            print(yaml.safe_dump(body, sort_keys=False), end="")
        else:
            print(json.dumps(body, indent=2))
    else:
        print(_job_rows([job], with_namespace=False))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    jobs = _client(args).list(label_selector=args.selector, all_namespaces=args.all_namespaces)
    if not jobs:
        where = "any namespace" if args.all_namespaces else f"namespace {_client(args).namespace}"
        print(f"No MSJobs found in {where}.", file=sys.stderr)
        return EXIT_OK
    print(_job_rows(jobs, with_namespace=args.all_namespaces))
    return EXIT_OK


def cmd_describe(args: argparse.Namespace) -> int:
    print(describe(_client(args), args.name))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        text = client.get_logs(args.name, replica_type=args.type, index=args.index, container=args.container,
                               tail_lines=args.tail, previous=args.previous)
    except LogsUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    return EXIT_OK


def cmd_wait(args: argparse.Namespace) -> int:
    return _wait(_client(args), args.name, None, args.timeout, args.until, sys.stdout)


def cmd_delete(args: argparse.Namespace) -> int:
    _client(args).delete(args.name, wait=args.wait, timeout=args.timeout)
    print(f"{RESOURCE}/{args.name} deleted")
    return EXIT_OK


def cmd_suspend(args: argparse.Namespace) -> int:
    _client(args).suspend(args.name)
    print(f"{RESOURCE}/{args.name} suspended")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    _client(args).resume(args.name)
    print(f"{RESOURCE}/{args.name} resumed")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", default=argparse.SUPPRESS,
                        help="namespace (default: the kubeconfig context's, else 'default')")
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS,
                        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    common.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context")

    parser = argparse.ArgumentParser(prog="msjob", parents=[common],
                                     description="Submit, watch and manage MindSpore training jobs (MSJob).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("submit", cmd_submit, "create the MSJobs of a YAML file")
    p.add_argument("-f", "--filename", required=True, help="YAML file with one or more MSJobs ('-' reads stdin)")
    p.add_argument("--wait", action="store_true",
                   help="then wait until they finish (exit 0 succeeded, 1 failed, 2 timeout)")
    p.add_argument("--timeout", type=float, default=86400, help="seconds to wait with --wait (default 86400)")

    p = command("get", cmd_get, "show one MSJob")
    p.add_argument("name")
    p.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")

    p = command("list", cmd_list, "list MSJobs")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    p.add_argument("-l", "--selector", help="label selector, e.g. team=vision")

    p = command("describe", cmd_describe,
                "show an MSJob's status, replicas, conditions, last failure, pods and events")
    p.add_argument("name")

    p = command("logs", cmd_logs, "print the log of one replica (default: worker 0)")
    p.add_argument("name")
    p.add_argument("--type", default="Worker", help="replica type: Scheduler, PS or Worker (default Worker)")
    p.add_argument("--index", type=int, default=0, help="replica index (default 0)")
    p.add_argument("-c", "--container", help="container (default: 'mindspore', else the first)")
    p.add_argument("--tail", type=int, help="only the last N lines")
    p.add_argument("-p", "--previous", action="store_true", help="the previous container's log")

    p = command("wait", cmd_wait,
                "wait until an MSJob finishes, printing each change (exit 0 succeeded, 1 failed, 2 timeout)")
    p.add_argument("name")
    p.add_argument("--timeout", type=float, default=86400, help="seconds (default 86400)")
    p.add_argument("--for", dest="until", default="Succeeded",
                   choices=["Succeeded", "Failed", "Running", "Suspended", "Restarting", "Created"],
                   help="condition to wait for (default: the job finishing); a failed job ends any wait")

    p = command("delete", cmd_delete, "delete an MSJob (its pods and Services go with it)")
    p.add_argument("name")
    p.add_argument("--wait", action="store_true", help="return once the MSJob is gone")
    p.add_argument("--timeout", type=float, default=120)

    p = command("suspend", cmd_suspend, "suspend an MSJob: its pods are deleted, the job is kept")
    p.add_argument("name")
    p = command("resume", cmd_resume, "resume a suspended MSJob: its pods are created again")
    p.add_argument("name")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (MSJobError, OSError) as e:  # not found, deletion timeout, unreadable file...
        print(f"error: {e}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - API and configuration errors: one readable line, no traceback
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config.config_exception import ConfigException

        if isinstance(e, ApiException):
            print(f"Error from server ({e.reason}): {api_message(e)}", file=sys.stderr)
        elif isinstance(e, ConfigException):
            print(f"error: no usable cluster configuration: {e}", file=sys.stderr)
        else:
            raise
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
