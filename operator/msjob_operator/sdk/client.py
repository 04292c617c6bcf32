"""``MSJobClient``: create, observe and manage MSJobs from Python.

Built on the official ``kubernetes`` client and shaped like Kubeflow's ``TrainingClient`` (``create_job``,
``wait_for_job_conditions``, ``get_job_logs``...), typed with the same pydantic models the CRD is generated from::

    from msjob_operator.sdk import MSJobClient, new_msjob

    client = MSJobClient(namespace="team-a")
    client.create(new_msjob("train", image="mindspore/mindspore:2.10", command=["python", "train.py"], workers=4))
    job = client.wait_for_job("train", timeout=3600, callback=lambda j: print(status_of(j).state))

Everything here is synchronous; each method is one or a few API calls, except the ``wait_*`` methods, which
watch the job (falling back to polling when the watch is not allowed or keeps failing).
"""

from __future__ import annotations

import builtins
import copy
import logging
import os
import time
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from ..api import naming
from ..api.models import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    REPLICA_TYPES,
    VERSION,
    ConditionType,
    MSJob,
    ReplicaType,
)
from ..api.status import Condition, MSJobStatus

log = logging.getLogger(__name__)

JobLike = Union[MSJob, dict]
_SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_FINISHED = ("Succeeded", "Failed")
# Condition types a job can have (Kubeflow's, plus Stalled and Waiting), for argument checking.
CONDITION_TYPES = tuple(c.value for c in ConditionType)


# ----------------------------------------------------------------------------------------------
# Errors


class MSJobError(RuntimeError):
    """Base class of the SDK's errors."""


class MSJobNotFoundError(MSJobError, LookupError):
    def __init__(self, name: str, namespace: str):
        super().__init__(f"MSJob {namespace}/{name} not found")
        self.name, self.namespace = name, namespace


class MSJobFailedError(MSJobError):
    """The job ended Failed: ``reason`` and ``message`` are those of its ``Failed`` condition."""

    def __init__(self, job: MSJob):
        cond = condition_of(job, "Failed")
        self.job = job
        self.reason = (cond.reason if cond else None) or "Failed"
        self.message = (cond.message if cond else None) or ""
        super().__init__(f"MSJob {job.namespace}/{job.name} failed: {self.reason}: {self.message}".rstrip(": "))


class MSJobTimeoutError(MSJobError, TimeoutError):
    """A wait ran out of time; ``job`` is the last version seen (None if it was never seen)."""

    def __init__(self, message: str, job: Optional[MSJob]):
        super().__init__(message)
        self.job = job


class MSJobDeletedError(MSJobError):
    """The job was deleted while being waited for."""


class LogsUnavailableError(MSJobError):
    """The pod's log cannot be read: no such pod, its container has not started, or its node serves no logs.

    Pods on kwok's fake nodes have no containers and no kubelet log endpoint, so reading their log always
    raises this error (with the API server's answer in ``detail``); on a real cluster it means the pod is not
    there (yet) or is still pending.
    """

    def __init__(self, message: str, pod: Optional[str] = None, node: Optional[str] = None,
                 status: Optional[int] = None, detail: str = ""):
        super().__init__(message)
        self.pod, self.node, self.status, self.detail = pod, node, status, detail


# ----------------------------------------------------------------------------------------------
# Typed accessors (MSJob.status is kept as a plain dict in the API model)


def status_of(job: JobLike) -> MSJobStatus:
    """The job's status as an ``MSJobStatus`` (empty when the operator has not written one yet)."""
    raw = job.status if isinstance(job, MSJob) else job.get("status")
    return MSJobStatus.read(raw or {})


def conditions_of(job: JobLike) -> list[Condition]:
    return list(status_of(job).conditions or [])


def condition_of(job: JobLike, ctype: str) -> Optional[Condition]:
    for cond in conditions_of(job):
        if cond.type == ctype:
            return cond
    return None


def has_condition(job: JobLike, ctype: str) -> bool:
    """True when the job's condition ``ctype`` is ``status: "True"``."""
    cond = condition_of(job, ctype)
    return cond is not None and cond.status == "True"


def state_of(job: JobLike) -> str:
    """The state ``kubectl get msj`` shows; ``Pending`` before the operator first wrote a status."""
    return status_of(job).state or "Pending"


def is_finished(job: JobLike) -> bool:
    return has_condition(job, "Succeeded") or has_condition(job, "Failed")


def total_workers(job: JobLike) -> int:
    spec = job.spec if isinstance(job, MSJob) else MSJob.model_validate(job).spec
    worker = spec.ms_replica_specs.worker
    return (worker.replicas if worker and worker.replicas is not None else 1) if worker else 0


def to_dict(job: JobLike) -> dict:
    """The object as the API server takes it (camelCase keys, no unset fields)."""
    if isinstance(job, MSJob):
        return job.model_dump(by_alias=True, exclude_none=True, mode="json")
    return copy.deepcopy(job)


# ----------------------------------------------------------------------------------------------
# Builder


def new_msjob(name: str, image: str, command: Optional[Sequence[str]] = None, *, workers: int = 1,
              scheduler: bool = True, ps: int = 0, args: Optional[Sequence[str]] = None,
              resources: Optional[dict] = None, env: Optional[dict[str, str]] = None, namespace: Optional[str] = None,
              labels: Optional[dict[str, str]] = None, annotations: Optional[dict[str, str]] = None,
              pod_annotations: Optional[dict[str, str]] = None, worker_annotations: Optional[dict[str, str]] = None,
              node_selector: Optional[dict[str, str]] = None, tolerations: Optional[list[dict]] = None,
              restart_policy: Optional[str] = None, backoff_limit: Optional[int] = None,
              active_deadline_seconds: Optional[int] = None, ttl_seconds_after_finished: Optional[int] = None,
              clean_pod_policy: Optional[str] = None, success_policy: Optional[str] = None,
              suspend: Optional[bool] = None, scheduler_port: Optional[int] = None,
              generate_name: bool = False, **spec: Any) -> dict:
    """An MSJob as a dict, for people who would rather not write YAML.

    Every replica runs ``image`` with ``command``/``args`` in a container named ``mindspore`` (the operator injects
    the MindSpore environment there). ``resources`` (a container ``resources`` dict, e.g.
    ``{"limits": {"huawei.com/Ascend910": 8}}``) applies to the workers only: the scheduler and the parameter
    servers need no devices. ``env`` applies to every replica; ``pod_annotations``, ``node_selector`` and
    ``tolerations`` to every pod, ``worker_annotations`` to worker pods. ``generate_name=True`` makes ``name`` a
    ``metadata.generateName`` prefix (the API server appends a random suffix: handy in pipelines that run again).
    Further keyword arguments are added to ``spec`` as they are (e.g. ``failurePolicy={...}``).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if ps and not scheduler:
        raise ValueError("parameter servers need a scheduler")

    def template(role: str) -> dict:
        container: dict[str, Any] = {"name": "mindspore", "image": image}
        if command:
            container["command"] = list(command)
        if args:
            container["args"] = list(args)
        if env:
            container["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
        if resources and role == "Worker":
            container["resources"] = copy.deepcopy(resources)
        if scheduler_port and role == "Scheduler":
            container["ports"] = [{"name": "msjob-port", "containerPort": scheduler_port}]
        pod_spec: dict[str, Any] = {"containers": [container]}
        if node_selector:
            pod_spec["nodeSelector"] = dict(node_selector)
        if tolerations:
            pod_spec["tolerations"] = copy.deepcopy(tolerations)
        meta: dict[str, Any] = {}
        pod_ann = dict(pod_annotations or {})
        if role == "Worker":
            pod_ann.update(worker_annotations or {})
        if pod_ann:
            meta["annotations"] = pod_ann
        return {"metadata": meta, "spec": pod_spec} if meta else {"spec": pod_spec}

    def replica(role: str, count: int) -> dict:
        out: dict[str, Any] = {"replicas": count, "template": template(role)}
        if restart_policy:
            out["restartPolicy"] = restart_policy
        return out

    replicas: dict[str, Any] = {}
    if scheduler:
        replicas["Scheduler"] = replica("Scheduler", 1)
    if ps:
        replicas["PS"] = replica("PS", ps)
    replicas["Worker"] = replica("Worker", workers)

    run_policy = {k: v for k, v in {
        "backoffLimit": backoff_limit, "activeDeadlineSeconds": active_deadline_seconds,
        "ttlSecondsAfterFinished": ttl_seconds_after_finished, "cleanPodPolicy": clean_pod_policy,
        "suspend": suspend}.items() if v is not None}
    body_spec: dict[str, Any] = {"msReplicaSpecs": replicas}
    if run_policy:
        body_spec["runPolicy"] = run_policy
    if success_policy is not None:
        body_spec["successPolicy"] = success_policy
    if scheduler_port:
        body_spec["mindspore"] = {"schedulerPort": scheduler_port}
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(body_spec.get(key), dict):
            body_spec[key] = {**body_spec[key], **value}
        else:
            body_spec[key] = value

    metadata: dict[str, Any] = {"generateName": name if name.endswith("-") else name + "-"} if generate_name else {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": body_spec}


# ----------------------------------------------------------------------------------------------
# The client


def _default_namespace(kubeconfig: Optional[str], context: Optional[str] = None) -> str:
    """The namespace of the kubeconfig's (current) context, else the pod's own (in cluster), else ``default``."""
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            active = next((c for c in contexts if c.get("name") == context), None)
        ns = ((active or {}).get("context") or {}).get("namespace")
        if ns:
            return ns
    except Exception:  # noqa: BLE001 - no kubeconfig: in cluster, or nothing
        pass
    try:
        with open(_SA_NAMESPACE_FILE) as f:
            ns = f.read().strip()
            if ns:
                return ns
    except OSError:
        pass
    return "default"


def _api_message(e: ApiException) -> str:
    """The human part of an API error (the Status ``message``), else its reason."""
    import json

    body = e.body.decode(errors="replace") if isinstance(e.body, bytes) else e.body
    try:
        parsed = json.loads(body or "")
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    except (TypeError, ValueError):
        pass
    return (body or "").strip() or str(e.reason or e.status)


class MSJobClient:
    """A client for MSJobs (``mindspore.gitee.com/v1``).

    ``MSJobClient()`` uses the in-cluster service account when it runs in a pod, else ``$KUBECONFIG`` or
    ``~/.kube/config``; ``kubeconfig=`` names a file; ``api_client=`` reuses a ``kubernetes.client.ApiClient``.
    ``namespace`` is the default for every call (else the kubeconfig context's namespace, the pod's own
    namespace in a cluster, or ``default``); each method also takes ``namespace=``.
    """

    def __init__(self, kubeconfig: Optional[str] = None, namespace: Optional[str] = None,
                 api_client: Optional[k8s.ApiClient] = None, context: Optional[str] = None):
        if api_client is None:
            kubeconfig = os.fspath(kubeconfig) if kubeconfig else None
            if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                api_client = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
            else:
                cfg = k8s.Configuration()
                k8s_config.load_incluster_config(client_configuration=cfg)
                api_client = k8s.ApiClient(cfg)
            namespace = namespace or _default_namespace(kubeconfig, context)
        self.api_client = api_client
        self.namespace = namespace or "default"
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)

    def close(self) -> None:
        self.api_client.close()

    def __enter__(self) -> "MSJobClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ns(self, namespace: Optional[str]) -> str:
        return namespace or self.namespace

    # -- CRUD ------------------------------------------------------------------------------------

    def create(self, job: JobLike, namespace: Optional[str] = None) -> MSJob:
        """Create the job; ``namespace`` beats ``metadata.namespace``, which beats the client's default.

        A dict is sent as it is (fields this SDK does not know are kept); the API server validates it.
        Returns the created job (with its generated name if it used ``generateName``).
        """
        body = to_dict(job)
        body.setdefault("apiVersion", API_VERSION)
        body.setdefault("kind", KIND)
        meta = body.setdefault("metadata", {})
        ns = namespace or meta.get("namespace") or self.namespace
        meta["namespace"] = ns
        body.pop("status", None)
        created = self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        return MSJob.model_validate(created)

    def get(self, name: str, namespace: Optional[str] = None) -> MSJob:
        ns = self._ns(namespace)
        try:
            return MSJob.model_validate(self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name))
        except ApiException as e:
            if e.status == 404:
                raise MSJobNotFoundError(name, ns) from None
            raise

    def list(self, namespace: Optional[str] = None, label_selector: Optional[str] = None,
             all_namespaces: bool = False) -> builtins.list[MSJob]:
        """Jobs of a namespace (or of every namespace), sorted by namespace and name."""
        kwargs = {"label_selector": label_selector} if label_selector else {}
        if all_namespaces:
            items = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)["items"]
        else:
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self._ns(namespace), PLURAL, **kwargs)["items"]
        jobs = [MSJob.model_validate(i) for i in items]
        return sorted(jobs, key=lambda j: (j.namespace, j.name))

    def delete(self, name: str, namespace: Optional[str] = None, wait: bool = False, timeout: float = 120,
               propagation_policy: str = "Background") -> None:
        """Delete the job; its pods and Services follow through the garbage collector.

        ``wait=True`` returns once the MSJob is gone (with ``propagation_policy="Foreground"``, once its pods are
        gone too), raising ``MSJobTimeoutError`` after ``timeout`` seconds. Deleting a missing job raises
        ``MSJobNotFoundError``.
        """
        ns = self._ns(namespace)
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, name, body=k8s.V1DeleteOptions(propagation_policy=propagation_policy))
        except ApiException as e:
            if e.status == 404:
                raise MSJobNotFoundError(name, ns) from None
            raise
        if not wait:
            return
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.get(name, ns)
            except MSJobNotFoundError:
                return
            time.sleep(0.5)
        raise MSJobTimeoutError(f"MSJob {ns}/{name} still exists {timeout:g} s after its deletion", last)

    def patch(self, name: str, patch: dict, namespace: Optional[str] = None) -> MSJob:
        """A JSON merge patch of the job (e.g. ``{"spec": {"runPolicy": {"backoffLimit": 5}}}``)."""
        ns = self._ns(namespace)
        try:
            return MSJob.model_validate(self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch))
        except ApiException as e:
            if e.status == 404:
                raise MSJobNotFoundError(name, ns) from None
            raise

    def suspend(self, name: str, namespace: Optional[str] = None) -> MSJob:
        """Set ``runPolicy.suspend: true``: the operator deletes the job's pods and keeps the job."""
        return self.patch(name, {"spec": {"runPolicy": {"suspend": True}}}, namespace)

    def resume(self, name: str, namespace: Optional[str] = None) -> MSJob:
        """Set ``runPolicy.suspend: false``: the operator creates the pods again (a new gang attempt)."""
        return self.patch(name, {"spec": {"runPolicy": {"suspend": False}}}, namespace)

    # -- status ----------------------------------------------------------------------------------

    def get_status(self, name: str, namespace: Optional[str] = None) -> MSJobStatus:
        return status_of(self.get(name, namespace))

    def get_conditions(self, name: str, namespace: Optional[str] = None) -> builtins.list[Condition]:
        return conditions_of(self.get(name, namespace))

    def is_succeeded(self, name: str, namespace: Optional[str] = None) -> bool:
        return has_condition(self.get(name, namespace), "Succeeded")

    def is_failed(self, name: str, namespace: Optional[str] = None) -> bool:
        return has_condition(self.get(name, namespace), "Failed")

    def is_running(self, name: str, namespace: Optional[str] = None) -> bool:
        return has_condition(self.get(name, namespace), "Running")

    def is_suspended(self, name: str, namespace: Optional[str] = None) -> bool:
        return has_condition(self.get(name, namespace), "Suspended")

    # -- waiting ---------------------------------------------------------------------------------

    def wait_for_condition(self, name: str, conditions: Union[str, Iterable[str]] = _FINISHED,
                           namespace: Optional[str] = None, timeout: float = 600, polling_interval: float = 2,
                           callback: Optional[Callable[[MSJob], None]] = None) -> MSJob:
        """Wait until one of ``conditions`` is true on the job and return the job.

        ``callback(job)`` is called with the first version seen and then with every changed version (every new
        ``resourceVersion``: status updates included). The job is watched; when the watch is refused or breaks it
        is read every ``polling_interval`` seconds instead. If the job fails while ``Failed`` is not among
        ``conditions``, ``MSJobFailedError`` is raised at once; ``MSJobNotFoundError`` if it does not exist,
        ``MSJobDeletedError`` if it is deleted while waiting; ``MSJobTimeoutError`` (a ``TimeoutError``, carrying
        the last job seen) after ``timeout`` seconds.
        """
        wanted = (conditions,) if isinstance(conditions, str) else tuple(conditions)
        unknown = [c for c in wanted if c not in CONDITION_TYPES]
        if not wanted or unknown:
            raise ValueError(f"conditions must be among {', '.join(CONDITION_TYPES)}; got {wanted!r}")
        ns = self._ns(namespace)
        deadline = time.monotonic() + timeout
        last: Optional[MSJob] = None
        seen_version: Optional[str] = None

        def observe(job: MSJob) -> Optional[MSJob]:
            nonlocal last, seen_version
            last = job
            version = job.metadata.get("resourceVersion")
            if callback is not None and (version is None or version != seen_version):
                callback(job)
            seen_version = version
            if any(has_condition(job, c) for c in wanted):
                return job
            if "Failed" not in wanted and has_condition(job, "Failed"):
                raise MSJobFailedError(job)
            return None

        watch_allowed = True
        watch_failures = 0
        while True:
            try:
                job = self.get(name, ns)
            except MSJobNotFoundError:
                if last is not None:
                    raise MSJobDeletedError(f"MSJob {ns}/{name} was deleted while waiting for {'/'.join(wanted)}") from None
                raise
            done = observe(job)
            if done is not None:
                return done
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if watch_allowed:
                try:
                    done = self._watch_until(name, ns, job.metadata.get("resourceVersion"), remaining, observe)
                    watch_failures = 0
                except ApiException as e:
                    if e.status in (401, 403, 405):
                        log.debug("watching MSJob %s/%s is not allowed (%s): polling instead", ns, name, e.status)
                        watch_allowed = False
                    elif e.status != 410:  # 410 Gone: the version expired; get and watch again
                        watch_failures += 1
                except _Propagate as p:  # raised by observe() or the callback: the caller's business
                    raise p.error from None
                except Exception as e:  # noqa: BLE001 - connection reset, read timeout...: poll, then watch again
                    log.debug("watch of MSJob %s/%s broke (%r): polling", ns, name, e)
                    watch_failures += 1
                if done is not None:
                    return done
                if watch_failures >= 3:
                    watch_allowed = False
                if watch_failures:
                    time.sleep(max(0.0, min(polling_interval, deadline - time.monotonic())))
            else:
                time.sleep(max(0.0, min(polling_interval, deadline - time.monotonic())))
            # Next round: read the job again (after the deadline too, so a timeout reports the newest state).
        st = status_of(last) if last is not None else MSJobStatus()
        conds = ", ".join(f"{c.type}={c.status}" for c in st.conditions or []) or "none"
        raise MSJobTimeoutError(
            f"timed out after {timeout:g} s waiting for MSJob {ns}/{name} to be {' or '.join(wanted)}; "
            f"last state: {st.state or 'Pending'}, workers {st.workers or '-'}, restarts {st.restart_count or 0}, "
            f"conditions: {conds}", last)

    def _watch_until(self, name: str, ns: str, resource_version: Optional[str], remaining: float,
                     observe: Callable[[MSJob], Optional[MSJob]]) -> Optional[MSJob]:
        """One watch request (at most ``remaining`` seconds, server side and client side)."""
        w = k8s_watch.Watch()
        server_timeout = max(1, int(min(remaining, 300)))
        kwargs: dict[str, Any] = {"field_selector": f"metadata.name={name}", "timeout_seconds": server_timeout,
                                  "_request_timeout": (10, server_timeout + 10)}
        if resource_version:
            kwargs["resource_version"] = resource_version
        try:
            for event in w.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, **kwargs):
                kind, obj = event.get("type"), event.get("raw_object") or event.get("object")
                if kind == "DELETED":
                    raise _Propagate(MSJobDeletedError(f"MSJob {ns}/{name} was deleted while being waited for"))
                if kind in ("ADDED", "MODIFIED") and isinstance(obj, dict):
                    try:
                        done = observe(MSJob.model_validate(obj))
                    except Exception as e:  # noqa: BLE001 - not a watch failure: pass it on untouched
                        raise _Propagate(e) from e
                    if done is not None:
                        return done
        finally:
            w.stop()
        return None

    def wait_for_job(self, name: str, namespace: Optional[str] = None, timeout: float = 600,
                     polling_interval: float = 2, callback: Optional[Callable[[MSJob], None]] = None) -> MSJob:
        """Wait until the job finishes: return it when it Succeeded, raise ``MSJobFailedError`` (with the
        ``Failed`` condition's reason and message) when it Failed, ``MSJobTimeoutError`` on timeout."""
        job = self.wait_for_condition(name, _FINISHED, namespace, timeout, polling_interval, callback)
        if has_condition(job, "Failed"):
            raise MSJobFailedError(job)
        return job

    # -- pods and logs ---------------------------------------------------------------------------

    def get_pods(self, name: str, namespace: Optional[str] = None, replica_type: Optional[str] = None,
                 index: Optional[int] = None, include_terminating: bool = True) -> builtins.list[k8s.V1Pod]:
        """The job's pods (``kubernetes.client.V1Pod``), ordered Scheduler, PS, Worker and by index."""
        selector = {naming.JOB_NAME_LABEL: name}
        if replica_type:
            selector[naming.REPLICA_TYPE_LABEL] = naming.replica_label(_replica_type(replica_type))
        if index is not None:
            selector[naming.REPLICA_INDEX_LABEL] = str(index)
        pods = self.core.list_namespaced_pod(self._ns(namespace), label_selector=naming.selector_string(selector)).items
        if not include_terminating:
            pods = [p for p in pods if p.metadata.deletion_timestamp is None]
        order = {naming.replica_label(t): i for i, t in enumerate(REPLICA_TYPES)}

        def key(p):
            labels = p.metadata.labels or {}
            idx = labels.get(naming.REPLICA_INDEX_LABEL, "")
            return (order.get(labels.get(naming.REPLICA_TYPE_LABEL), 9), int(idx) if idx.isdigit() else 0, p.metadata.name)
        return sorted(pods, key=key)

    def get_logs(self, name: str, namespace: Optional[str] = None, replica_type: str = "Worker", index: int = 0,
                 container: Optional[str] = None, tail_lines: Optional[int] = None, previous: bool = False) -> str:
        """The log of one replica's container (default: worker 0, container ``mindspore`` else the first).

        Raises ``LogsUnavailableError`` when there is no such pod or the API server cannot give its log (the
        container has not started, or the node serves no logs: always the case on kwok's fake nodes).
        """
        ns = self._ns(namespace)
        rtype = _replica_type(replica_type)
        pods = self.get_pods(name, ns, rtype, index)
        live = [p for p in pods if p.metadata.deletion_timestamp is None] or pods
        if not live:
            raise LogsUnavailableError(f"MSJob {ns}/{name} has no {rtype} {index} pod (not created yet, or deleted)")
        pod = live[0]
        names = [c.name for c in pod.spec.containers]
        if container is None:
            container = "mindspore" if "mindspore" in names else names[0]
        kwargs: dict[str, Any] = {"container": container, "_request_timeout": 60}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        if previous:
            kwargs["previous"] = True
        try:
            return self.core.read_namespaced_pod_log(pod.metadata.name, ns, **kwargs)
        except ApiException as e:
            node = pod.spec.node_name
            detail = _api_message(e)
            raise LogsUnavailableError(
                f"cannot read the log of pod {ns}/{pod.metadata.name} (container {container}, node {node or 'none'}, "
                f"phase {pod.status.phase if pod.status else '?'}): {detail}",
                pod=pod.metadata.name, node=node, status=e.status, detail=detail) from None
        except Exception as e:  # noqa: BLE001 - e.g. the API server cannot reach the node
            node = pod.spec.node_name
            raise LogsUnavailableError(
                f"cannot read the log of pod {ns}/{pod.metadata.name} (container {container}, node {node or 'none'}): {e}",
                pod=pod.metadata.name, node=node, detail=str(e)) from None

    def get_events(self, name: str, namespace: Optional[str] = None) -> builtins.list[k8s.CoreV1Event]:
        """Events about the job itself, oldest first."""
        ns = self._ns(namespace)
        events = self.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name},involvedObject.kind={KIND}").items

        def when(e):  # timestamps have one-second precision: the resourceVersion orders events of one second
            t = e.last_timestamp or e.event_time or e.first_timestamp or e.metadata.creation_timestamp
            rv = e.metadata.resource_version or ""
            return (t.timestamp() if t else 0.0, int(rv) if rv.isdigit() else 0)
        return sorted(events, key=when)


class _Propagate(Exception):
    """Carries an error out of a watch that must not count as the watch failing."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _replica_type(value: str) -> str:
    """``worker``/``Worker``/``WORKER`` -> ``Worker``; ``ps`` -> ``PS``."""
    for t in ReplicaType:
        if value.lower() == t.value.lower():
            return t.value
    raise ValueError(f"unknown replica type {value!r}: use Scheduler, PS or Worker")
