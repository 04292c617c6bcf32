"""The program inside the Kubeflow Pipelines step: submit an MSJob, follow it, report how it ended.

    python -m msjob_operator.kfp.launcher --msjob-yaml "$(cat job.yaml)" [--namespace NS] [--delete-after-done true]
    python -m msjob_operator.kfp.launcher --name train --image IMG --command '["python", "train.py"]' --workers 4

It is plain Python on ``MSJobClient`` (no kfp needed at run time), so the step's whole behaviour is testable
against any cluster:

- the job comes from YAML text (``--msjob-yaml``/``--msjob-file``) or from parameters (``new_msjob``);
  ``--name`` overrides the YAML's name, ``--generate-name true`` makes it a prefix the API server completes
  (a pipeline run again then never collides with its previous job);
- while the job runs, one progress line per change goes to stdout (``[ 12.3s] train: Running workers 4/4 restarts 0``);
- the final status (JSON: name, namespace, state, succeeded, reason, message, restartCount and the full
  ``status``) is printed and written to ``--status-output`` (a KFP output parameter) and ``--status-artifact``;
- exit codes: 0 succeeded; 1 the job failed (stderr carries its reason and message) or could not be created;
  2 timeout (the job is deleted); 128+signal when cancelled: SIGTERM (what Kubeflow Pipelines sends when a
  run is cancelled) or SIGINT delete the MSJob before exiting;
- ``--delete-after-done true`` deletes the job once it has finished either way.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Optional, TextIO

import yaml

from ..api.models import KIND, MSJob
from ..sdk import (
    MSJobClient,
    MSJobError,
    MSJobFailedError,
    MSJobNotFoundError,
    MSJobTimeoutError,
    condition_of,
    has_condition,
    new_msjob,
    state_of,
    status_of,
)
from ..sdk.errors import api_message
from ..sdk.format import Progress, outcome_line

EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2


class Cancelled(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT. A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way (the SDK's watch retries) swallows it."""

    def __init__(self, signum: int):
        super().__init__(f"cancelled by signal {signal.Signals(signum).name}")
        self.signum = signum


class LaunchError(Exception):
    """A problem with the launcher's input (no job given, bad YAML or JSON parameter)."""


def parse_bool(value: Any) -> bool:
    """Booleans as Kubeflow Pipelines renders them (``true``/``false``), and the usual spellings."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "on"):
        return True
    if text in ("false", "0", "no", "n", "off", "", "none", "null"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {value!r}")


def parse_int(value: Any) -> int:
    """An integer, also in the ``2.0`` form a pipeline spec may carry for integer parameters."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number != int(number):
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}")
    return int(number)


def parse_json(value: Any, what: str) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as e:
        raise LaunchError(f"{what} must be JSON: {e}: {value!r}") from None


def parse_command(value: Any) -> Optional[list[str]]:
    """A JSON list (``["python", "train.py"]``) or a shell-like string (``python train.py --epochs 3``)."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        parsed = parse_json(text, "command")
        if not isinstance(parsed, list):
            raise LaunchError(f"command must be a JSON list of strings: {value!r}")
        return [str(v) for v in parsed]
    return shlex.split(text)


def build_job(msjob_yaml: Optional[str] = None, *, name: Optional[str] = None, generate_name: bool = False,
              image: Optional[str] = None, command: Any = None, args: Any = None, workers: int = 1,
              scheduler: bool = True, ps: int = 0, resources: Any = None, env: Any = None, node_selector: Any = None,
              tolerations: Any = None, worker_annotations: Any = None, backoff_limit: Optional[int] = None,
              labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The MSJob to submit: from YAML text if given, else from the parameters (``image`` is then required)."""
    if msjob_yaml and msjob_yaml.strip():
        try:
            docs = [d for d in yaml.safe_load_all(msjob_yaml) if d]
        except yaml.YAMLError as e:
            raise LaunchError(f"msjob_yaml is not valid YAML: {e}") from None
        if len(docs) != 1 or not isinstance(docs[0], dict) or docs[0].get("kind") != KIND:
            raise LaunchError(f"msjob_yaml must hold exactly one object of kind {KIND}")
        job: dict[str, Any] = docs[0]
        meta = job.setdefault("metadata", {})
        if name:
            meta["name"] = name
        if generate_name:
            stem = meta.pop("name", None) or meta.get("generateName") or "msjob"
            meta["generateName"] = stem if stem.endswith("-") else stem + "-"
        if not meta.get("name") and not meta.get("generateName"):
            meta["generateName"] = "msjob-"
    else:
        if not image:
            raise LaunchError(
                "give msjob_yaml, or image (with name, command, workers...) to build the job from parameters")
        job = new_msjob(name or "msjob", image, parse_command(command), args=parse_command(args), workers=int(workers),
                        scheduler=scheduler, ps=int(ps or 0), resources=parse_json(resources, "resources"),
                        env=parse_json(env, "env"), node_selector=parse_json(node_selector, "node_selector"),
                        tolerations=parse_json(tolerations, "tolerations"),
                        worker_annotations=parse_json(worker_annotations, "worker_annotations"),
                        backoff_limit=backoff_limit, generate_name=generate_name or not name)
    if labels:
        job.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    return job


def final_status(job: MSJob) -> dict[str, Any]:
    """What the step outputs: the job's identity, how it ended and its whole status."""
    st = status_of(job)
    state = state_of(job)
    cond = condition_of(job, state)
    return {
        "name": job.name,
        "namespace": job.namespace,
        "state": state,
        "succeeded": has_condition(job, "Succeeded"),
        "reason": cond.reason if cond else None,
        "message": cond.message if cond else None,
        "restartCount": st.restart_count or 0,
        "startTime": st.start_time,
        "completionTime": st.completion_time,
        "status": job.status or {},
    }


def _write(path: Optional[str], text: str) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


class _Signals:
    """SIGTERM/SIGINT raise ``Cancelled`` in the main thread, except while the job is being created: a signal
    arriving then is held until ``create`` returned, so the launcher always knows the name of what to delete."""

    def __init__(self) -> None:
        self.pending: Optional[int] = None
        self.holding = False
        self.cancelled = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.cancelled:
            return  # a second signal must not interrupt the clean-up of the first
        if self.holding:
            self.pending = signum
            return
        self.cancelled = True
        raise Cancelled(signum)

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.holding = False
        if self.pending is not None:
            signum, self.pending = self.pending, None
            self.cancelled = True
            raise Cancelled(signum)


def run(job: dict[str, Any], client: MSJobClient, *, namespace: Optional[str] = None, timeout: float = 86400,
        delete_after_done: bool = False, status_output: Optional[str] = None, status_artifact: Optional[str] = None,
        out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Submit ``job``, follow it to the end, write the outputs; returns the exit code (see the module doc)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    signals = _Signals()
    created = None
    with signals:
        try:
            signals.hold()
            try:
                created = client.create(job, namespace)
            finally:
                signals.release()
            name, ns = created.name, created.namespace
            print(f"submitted MSJob {ns}/{name}", file=out, flush=True)
            progress = Progress(out)
            try:
                done = client.wait_for_condition(name, ("Succeeded", "Failed"), namespace=ns, timeout=timeout,
                                                 callback=progress)
            except MSJobTimeoutError as e:
                print(f"error: {e}; deleting the MSJob", file=err, flush=True)
                _delete(client, name, ns, err)
                return EXIT_TIMEOUT
            print(outcome_line(done), file=out, flush=True)
            result = final_status(done)
            text = json.dumps(result, indent=2, sort_keys=False, default=str)
            print(text, file=out, flush=True)
            _write(status_output, text)
            _write(status_artifact, text)
            if delete_after_done:
                _delete(client, name, ns, err)
                print(f"deleted MSJob {ns}/{name}", file=out, flush=True)
            if has_condition(done, "Failed"):
                failure = MSJobFailedError(done)
                print(f"error: {failure}", file=err, flush=True)
                return EXIT_FAILED
            return EXIT_OK
        except Cancelled as c:
            if created is not None:
                print(f"{c}: deleting MSJob {created.namespace}/{created.name}", file=err, flush=True)
                _delete(client, created.name, created.namespace, err)
            else:
                print(f"{c} before the MSJob was created", file=err, flush=True)
            return 128 + c.signum


def _delete(client: MSJobClient, name: str, namespace: str, err: TextIO) -> None:
    try:
        client.delete(name, namespace)
    except MSJobNotFoundError:
        pass
    except Exception as e:  # noqa: BLE001 - reported; the step's outcome does not change
        print(f"warning: could not delete MSJob {namespace}/{name}: {e}", file=err, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m msjob_operator.kfp.launcher",
                                description="Submit an MSJob, wait for it while printing progress, "
                                            "output its final status.")
    src = p.add_argument_group("the job, from YAML")
    src.add_argument("--msjob-yaml", default="", help="the MSJob as YAML text")
    src.add_argument("--msjob-file", default="", help="a file holding the MSJob's YAML")
    par = p.add_argument_group("the job, from parameters (without YAML)")
    par.add_argument("--name", default="", help="job name (with YAML: overrides metadata.name)")
    par.add_argument("--generate-name", type=parse_bool, default=False,
                     help="true: the name is a prefix completed by the API server (unique per run)")
    par.add_argument("--image", default="")
    par.add_argument("--command", default="", help='JSON list or shell-like string, e.g. \'["python", "train.py"]\'')
    par.add_argument("--args", default="", help="container args, same forms as --command")
    par.add_argument("--workers", type=parse_int, default=1)
    par.add_argument("--scheduler", type=parse_bool, default=True)
    par.add_argument("--ps", type=parse_int, default=0)
    par.add_argument("--resources", default="",
                     help='worker container resources as JSON, e.g. {"limits": {"huawei.com/Ascend910": 8}}')
    par.add_argument("--env", default="", help='environment of every replica as a JSON object')
    par.add_argument("--node-selector", default="", help="JSON object")
    par.add_argument("--tolerations", default="", help="JSON list")
    par.add_argument("--worker-annotations", default="", help="JSON object")
    par.add_argument("--backoff-limit", default="", help="runPolicy.backoffLimit")
    run_opts = p.add_argument_group("running")
    run_opts.add_argument("--namespace", default="", help="default: the launcher pod's own namespace")
    run_opts.add_argument("--kubeconfig", default="", help="default: in-cluster service account")
    run_opts.add_argument("--timeout", type=float, default=86400,
                          help="seconds before giving up (the job is then deleted)")
    run_opts.add_argument("--delete-after-done", type=parse_bool, default=False, help="delete the job once finished")
    run_opts.add_argument("--status-output", default="",
                          help="file to write the final status JSON to (KFP output parameter)")
    run_opts.add_argument("--status-artifact", default="", help="file to write the final status JSON to (KFP artifact)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        text = args.msjob_yaml
        if not (text and text.strip()) and args.msjob_file:
            text = Path(args.msjob_file).read_text()
        job = build_job(
            text, name=args.name or None, generate_name=args.generate_name, image=args.image or None,
            command=args.command, args=args.args, workers=args.workers, scheduler=args.scheduler, ps=args.ps,
            resources=args.resources, env=args.env, node_selector=args.node_selector, tolerations=args.tolerations,
            worker_annotations=args.worker_annotations,
            backoff_limit=parse_int(args.backoff_limit) if str(args.backoff_limit).strip() else None)
        client = MSJobClient(kubeconfig=args.kubeconfig or None, namespace=args.namespace or None)
    except (LaunchError, OSError, ValueError, argparse.ArgumentTypeError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    try:
        return run(job, client, namespace=args.namespace or None, timeout=args.timeout,
                   delete_after_done=args.delete_after_done, status_output=args.status_output or None,
                   status_artifact=args.status_artifact or None)
    except MSJobError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except Exception as e:  # noqa: BLE001 - API errors (e.g. the job is invalid): one readable line
        from kubernetes.client.exceptions import ApiException

        if isinstance(e, ApiException):
            print(f"error: the API server refused: {api_message(e)}", file=sys.stderr, flush=True)
            return EXIT_FAILED
        raise
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
