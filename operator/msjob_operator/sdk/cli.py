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
import datetime as dt
import json
import sys
import time
from typing import Any, Iterable, Optional, Sequence, TextIO

import yaml

from ..api import naming
from ..api.models import GROUP, KIND, MSJob
from .client import (
    LogsUnavailableError,
    MSJobClient,
    MSJobError,
    MSJobTimeoutError,
    _api_message,
    condition_of,
    has_condition,
    state_of,
    status_of,
    to_dict,
    total_workers,
)

RESOURCE = f"msjob.{GROUP}"
EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2


# ----------------------------------------------------------------------------------------------
# Formatting (shared with the Kubeflow Pipelines launcher)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "") -> str:
    """Plain-text columns, kubectl style: left-aligned, three spaces apart, no trailing blanks."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row)]
    lines = []
    for row in [list(headers), *rows]:
        cells = [v.ljust(w) for v, w in zip(row, widths)]
        lines.append(indent + "   ".join(cells).rstrip())
    return "\n".join(lines)


def parse_time(value: Any) -> Optional[dt.datetime]:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def age(value: Any, now: Optional[dt.datetime] = None) -> str:
    """``40s``, ``5m``, ``3h``, ``2d`` (kubectl's short form); ``<unknown>`` without a time."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    seconds = int(((now or dt.datetime.now(dt.timezone.utc)) - when).total_seconds())
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def workers_of(job: MSJob) -> str:
    """Ready/total workers as ``kubectl get msj`` shows them."""
    return status_of(job).workers or f"0/{total_workers(job)}"


def training_text(job: MSJob) -> str:
    """``step 37 loss 0.412 2.9 steps/s`` from ``status.progress`` (spec.health.reportProgress); "" without a step."""
    progress = status_of(job).progress
    if progress is None or progress.step is None:
        return ""
    parts = [f"step {progress.step}"]
    if progress.loss is not None:
        parts.append(f"loss {progress.loss:.4g}")
    if progress.steps_per_second is not None:
        parts.append(f"{progress.steps_per_second:.1f} steps/s")
    return "  ".join(parts)


def progress_line(job: MSJob, elapsed: float) -> str:
    """``[ 12.3s] train: Running workers 4/4 restarts 0`` (plus the reason when restarting, failed or suspended,
    and ``step 37  loss 0.412  2.9 steps/s`` when the job reports its training progress)."""
    st = status_of(job)
    state = state_of(job)
    line = f"[{elapsed:5.1f}s] {job.name}: {state} workers {workers_of(job)} restarts {st.restart_count or 0}"
    cond = condition_of(job, state) if state in ("Restarting", "Failed", "Suspended") else None
    if cond is not None and cond.reason:
        line += f" ({cond.reason})"
    elif st.waiting is not None and st.waiting.reason:
        line += f" (waiting: {st.waiting.reason})"
    training = training_text(job)
    return line + (f"  {training}" if training else "")


class Progress:
    """A wait callback printing one ``progress_line`` per change of state, ready workers, restarts or training step."""

    def __init__(self, out: Optional[TextIO] = None, start: Optional[float] = None):
        self.out = out if out is not None else sys.stdout
        self.start = time.monotonic() if start is None else start
        self._last: Optional[tuple] = None
        self.lines: list[str] = []

    def __call__(self, job: MSJob) -> None:
        st = status_of(job)
        key = (job.name, state_of(job), workers_of(job), st.restart_count or 0,
               st.waiting.reason if st.waiting else None, training_text(job))
        if key == self._last:
            return
        self._last = key
        line = progress_line(job, time.monotonic() - self.start)
        self.lines.append(line)
        print(line, file=self.out, flush=True)


def outcome_line(job: MSJob) -> str:
    """The last line of a wait: how the job ended and why."""
    for ctype in ("Failed", "Succeeded"):
        if has_condition(job, ctype):
            cond = condition_of(job, ctype)
            detail = ": ".join(x for x in (cond.reason, cond.message) if x)
            return f"{job.name}: {ctype}" + (f": {detail}" if detail else "")
    return f"{job.name}: {state_of(job)}"


# ----------------------------------------------------------------------------------------------
# Commands


def _client(args: argparse.Namespace) -> MSJobClient:
    return MSJobClient(kubeconfig=getattr(args, "kubeconfig", None), namespace=getattr(args, "namespace", None),
                       context=getattr(args, "context", None))


def _job_rows(jobs: list[MSJob], with_namespace: bool) -> str:
    headers = (["NAMESPACE"] if with_namespace else []) + ["NAME", "STATE", "WORKERS", "RESTARTS", "WAITING", "AGE"]
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


def _documents(filename: str) -> list:
    text = sys.stdin.read() if filename == "-" else open(filename, encoding="utf-8").read()
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
            raise SystemExit(f"error: {args.filename}: expected kind {KIND}, got {doc.get('kind') if isinstance(doc, dict) else type(doc).__name__}")
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
        print(yaml.safe_dump(body, sort_keys=False) if args.output == "yaml" else json.dumps(body, indent=2), end="" if args.output == "yaml" else "\n")
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


def describe(client: MSJobClient, name: str, namespace: Optional[str] = None) -> str:
    """The text of ``msjob describe``: summary, replicas, conditions, last failure, pods and events."""
    job = client.get(name, namespace)
    st = status_of(job)
    meta = job.metadata
    spec = job.spec
    run_policy = spec.run_policy
    backoff_limit = run_policy.backoff_limit if run_policy and run_policy.backoff_limit is not None else 3
    out: list[str] = []

    def field(label: str, value: Any) -> None:
        if value not in (None, ""):
            out.append(f"{label + ':':<18}{value}")

    field("Name", job.name)
    field("Namespace", job.namespace)
    field("State", state_of(job))
    field("Created", f"{meta.get('creationTimestamp')} ({age(meta.get('creationTimestamp'))} ago)")
    field("Start Time", st.start_time)
    field("Completion Time", st.completion_time)
    field("Workers", f"{workers_of(job)} ready")
    field("World Size", st.world_size)
    field("Restarts", f"{st.restart_count or 0} (counted: {st.backoff_count or 0} of backoffLimit {backoff_limit})")
    field("Attempt", st.attempt)
    if run_policy and run_policy.suspend:
        field("Suspend", "true")

    out.append("Replicas:")
    rows = []
    statuses = st.replica_statuses or {}
    for rtype, rspec in spec.ms_replica_specs.items():
        rs = statuses.get(rtype)
        rows.append([rtype, rspec.replicas, rspec.restart_policy or "OnFailure",
                     *((getattr(rs, f) or 0) if rs else 0 for f in ("active", "ready", "succeeded", "failed", "restarts"))])
    out.append(table(["TYPE", "REPLICAS", "RESTART POLICY", "ACTIVE", "READY", "SUCCEEDED", "FAILED", "RESTARTS"], rows, "  "))

    out.append("Conditions:")
    if st.conditions:
        out.append(table(["TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"],
                         [[c.type, c.status, c.reason, c.last_transition_time, c.message] for c in st.conditions], "  "))
    else:
        out.append("  <none>")

    if st.waiting is not None:
        out.append("Waiting:")
        out.append(f"  {'Reason:':<12}{st.waiting.reason}  (since {st.waiting.since})")
        rows = [[rtype, w.reason, w.pods, w.message] for rtype, w in (st.waiting.replica_types or {}).items()]
        out.append(table(["TYPE", "REASON", "PODS", "MESSAGE"], rows, "  "))

    out.append("Last Failure:")
    lf = st.last_failure
    if lf is None:
        out.append("  <none>")
    else:
        for label, value in (("Pod", lf.pod), ("Replica", f"{lf.replica_type} {lf.index}" if lf.replica_type else None),
                             ("Container", lf.container), ("Exit Code", lf.exit_code), ("Reason", lf.reason),
                             ("Node", lf.node), ("Time", lf.time), ("Action", lf.action)):
            if value not in (None, ""):
                out.append(f"  {label + ':':<12}{value}")
        if lf.message:
            out.append("  Message:")
            out.extend("    " + line for line in lf.message.splitlines())

    out.append("Pods:")
    pods = client.get_pods(name, namespace)
    if pods:
        rows = []
        for p in pods:
            labels = p.metadata.labels or {}
            phase = "Terminating" if p.metadata.deletion_timestamp else (p.status.phase if p.status else "")
            rows.append([p.metadata.name, phase, p.spec.node_name or "<none>", labels.get(naming.ATTEMPT_LABEL, ""),
                         age(p.metadata.creation_timestamp)])
        out.append(table(["NAME", "PHASE", "NODE", "ATTEMPT", "AGE"], rows, "  "))
    else:
        out.append("  <none>")

    out.append("Events:")
    events = client.get_events(name, namespace)
    if events:
        rows = []
        for e in events:
            when = e.last_timestamp or e.event_time or e.first_timestamp or e.metadata.creation_timestamp
            rows.append([age(when), e.type, e.reason, (f"(x{e.count}) " if (e.count or 1) > 1 else "") + (e.message or "")])
        out.append(table(["LAST SEEN", "TYPE", "REASON", "MESSAGE"], rows, "  "))
    else:
        out.append("  <none>")
    return "\n".join(out)


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
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    common.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context")

    parser = argparse.ArgumentParser(prog="msjob", parents=[common],
                                     description="Submit, watch and manage MindSpore training jobs (MSJob).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("submit", cmd_submit, "create the MSJobs of a YAML file")
    p.add_argument("-f", "--filename", required=True, help="YAML file with one or more MSJobs ('-' reads stdin)")
    p.add_argument("--wait", action="store_true", help="then wait until they finish (exit 0 succeeded, 1 failed, 2 timeout)")
    p.add_argument("--timeout", type=float, default=86400, help="seconds to wait with --wait (default 86400)")

    p = command("get", cmd_get, "show one MSJob")
    p.add_argument("name")
    p.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")

    p = command("list", cmd_list, "list MSJobs")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    p.add_argument("-l", "--selector", help="label selector, e.g. team=vision")

    p = command("describe", cmd_describe, "show an MSJob's status, replicas, conditions, last failure, pods and events")
    p.add_argument("name")

    p = command("logs", cmd_logs, "print the log of one replica (default: worker 0)")
    p.add_argument("name")
    p.add_argument("--type", default="Worker", help="replica type: Scheduler, PS or Worker (default Worker)")
    p.add_argument("--index", type=int, default=0, help="replica index (default 0)")
    p.add_argument("-c", "--container", help="container (default: 'mindspore', else the first)")
    p.add_argument("--tail", type=int, help="only the last N lines")
    p.add_argument("-p", "--previous", action="store_true", help="the previous container's log")

    p = command("wait", cmd_wait, "wait until an MSJob finishes, printing each change (exit 0 succeeded, 1 failed, 2 timeout)")
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
    try:
        return args.func(args)
    except (MSJobError, OSError) as e:  # not found, deletion timeout, unreadable file...
        print(f"error: {e}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - API and configuration errors: one readable line, no traceback
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config.config_exception import ConfigException

        if isinstance(e, ApiException):
            print(f"Error from server ({e.reason}): {_api_message(e)}", file=sys.stderr)
        elif isinstance(e, ConfigException):
            print(f"error: no usable cluster configuration: {e}", file=sys.stderr)
        else:
            raise
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
