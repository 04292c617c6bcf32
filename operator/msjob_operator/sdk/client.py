"""``MSJobClient``: create, observe and manage MSJobs from Python.

Built on the official ``kubernetes`` client and shaped like Kubeflow's ``TrainingClient`` (``create_job``,
``wait_for_job_conditions``, ``get_job_logs``...), typed with the same pydantic models the CRD is generated from::

    from msjob_operator.sdk import MSJobClient, new_msjob

    client = MSJobClient(namespace="team-a")
    client.create(new_msjob("train", image="mindspore/mindspore:2.10", command=["python", "train.py"], workers=4))
    job = client.wait_for_job("train", timeout=3600, callback=lambda j: print(status_of(j).state))

Everything here is synchronous; each method is one or a few API calls, except the ``wait_*`` methods, which
watch the job (falling back to polling when the watch is not allowed or keeps failing: ``sdk/waiting.py``).
"""

from __future__ import annotations

import builtins
import os
import time
from typing import Any, Callable, Iterable, Optional, Union

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from ..api import naming
from ..api.enums import REPLICA_TYPES, ReplicaType
from ..api.models import API_VERSION, GROUP, KIND, PLURAL, VERSION, MSJob
from ..api.status import Condition, MSJobStatus
from . import waiting
from .accessors import FINISHED, JobLike, conditions_of, has_condition, status_of, to_dict
from .errors import LogsUnavailableError, MSJobFailedError, MSJobNotFoundError, MSJobTimeoutError, api_message

_SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _default_namespace(kubeconfig: Optional[str], context: Optional[str] = None) -> str:
    """The namespace of the kubeconfig's (current) context, else the pod's own (in cluster), else ``default``."""
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            active = next((c for c in contexts if c.get("name") == context), None)
        ns = ((active or {}).get("context") or {}).get("namespace")
        if ns:
            return str(ns)
    except Exception:  # noqa: BLE001 - no kubeconfig: in cluster, or nothing
        pass
    try:
        with open(_SA_NAMESPACE_FILE) as f:
            own = f.read().strip()
            if own:
                return own
    except OSError:
        pass
    return "default"


def _replica_type(value: str) -> str:
    """``worker``/``Worker``/``WORKER`` -> ``Worker``; ``ps`` -> ``PS``."""
    for t in ReplicaType:
        if value.lower() == t.value.lower():
            return t.value
    raise ValueError(f"unknown replica type {value!r}: use Scheduler, PS or Worker")


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

    def __enter__(self) -> MSJobClient:
        return self

    def __exit__(self, *exc: object) -> None:
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
            answer = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)
        else:
            answer = self.custom.list_namespaced_custom_object(GROUP, VERSION, self._ns(namespace), PLURAL, **kwargs)
        jobs = [MSJob.model_validate(i) for i in answer["items"]]
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

    def patch(self, name: str, patch: dict[str, Any], namespace: Optional[str] = None) -> MSJob:
        """A JSON merge patch of the job (e.g. ``{"spec": {"runPolicy": {"backoffLimit": 5}}}``)."""
        ns = self._ns(namespace)
        try:
            patched = self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch)
        except ApiException as e:
            if e.status == 404:
                raise MSJobNotFoundError(name, ns) from None
            raise
        return MSJob.model_validate(patched)

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

    def wait_for_condition(self, name: str, conditions: Union[str, Iterable[str]] = FINISHED,
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
        wanted = waiting.wanted_conditions(conditions)
        return waiting.wait_for_condition(self, name, wanted, self._ns(namespace), timeout, polling_interval,
                                          callback)

    def wait_for_job(self, name: str, namespace: Optional[str] = None, timeout: float = 600,
                     polling_interval: float = 2, callback: Optional[Callable[[MSJob], None]] = None) -> MSJob:
        """Wait until the job finishes: return it when it Succeeded, raise ``MSJobFailedError`` (with the
        ``Failed`` condition's reason and message) when it Failed, ``MSJobTimeoutError`` on timeout."""
        job = self.wait_for_condition(name, FINISHED, namespace, timeout, polling_interval, callback)
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
        selector_text = naming.selector_string(selector)
        pods = self.core.list_namespaced_pod(self._ns(namespace), label_selector=selector_text).items
        if not include_terminating:
            pods = [p for p in pods if p.metadata.deletion_timestamp is None]
        order = {naming.replica_label(t): i for i, t in enumerate(REPLICA_TYPES)}

        def key(p: k8s.V1Pod) -> tuple[int, int, str]:
            labels: dict[str, str] = p.metadata.labels or {}
            idx = labels.get(naming.REPLICA_INDEX_LABEL, "")
            rank = order.get(labels.get(naming.REPLICA_TYPE_LABEL, ""), 9)
            return rank, int(idx) if idx.isdigit() else 0, str(p.metadata.name)
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
        pod_name, node = pod.metadata.name, pod.spec.node_name
        where = f"pod {ns}/{pod_name} (container {container}, node {node or 'none'}"
        try:
            return str(self.core.read_namespaced_pod_log(pod_name, ns, **kwargs))
        except ApiException as e:
            detail = api_message(e)
            phase = pod.status.phase if pod.status else "?"
            raise LogsUnavailableError(f"cannot read the log of {where}, phase {phase}): {detail}",
                                       pod=pod_name, node=node, status=e.status, detail=detail) from None
        except Exception as e:  # noqa: BLE001 - e.g. the API server cannot reach the node
            raise LogsUnavailableError(f"cannot read the log of {where}): {e}",
                                       pod=pod_name, node=node, detail=str(e)) from None

    def get_events(self, name: str, namespace: Optional[str] = None) -> builtins.list[k8s.CoreV1Event]:
        """Events about the job itself, oldest first."""
        ns = self._ns(namespace)
        selector = f"involvedObject.name={name},involvedObject.kind={KIND}"
        events = self.core.list_namespaced_event(ns, field_selector=selector).items

        def when(e: k8s.CoreV1Event) -> tuple[float, int]:
            # Timestamps have one-second precision: the resourceVersion orders the events of one second.
            t = e.last_timestamp or e.event_time or e.first_timestamp or e.metadata.creation_timestamp
            rv = e.metadata.resource_version or ""
            return (t.timestamp() if t else 0.0, int(rv) if rv.isdigit() else 0)
        return sorted(events, key=when)
