"""``new_msjob``: an MSJob body from keyword arguments, for people who would rather not write YAML."""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

from ..api.models import API_VERSION, KIND


def new_msjob(name: str, image: str, command: Optional[Sequence[str]] = None, *, workers: int = 1,
              scheduler: bool = True, ps: int = 0, args: Optional[Sequence[str]] = None,
              resources: Optional[dict[str, Any]] = None, env: Optional[dict[str, str]] = None,
              namespace: Optional[str] = None, labels: Optional[dict[str, str]] = None,
              annotations: Optional[dict[str, str]] = None, pod_annotations: Optional[dict[str, str]] = None,
              worker_annotations: Optional[dict[str, str]] = None, node_selector: Optional[dict[str, str]] = None,
              tolerations: Optional[list[dict[str, Any]]] = None, restart_policy: Optional[str] = None,
              backoff_limit: Optional[int] = None, active_deadline_seconds: Optional[int] = None,
              ttl_seconds_after_finished: Optional[int] = None, clean_pod_policy: Optional[str] = None,
              success_policy: Optional[str] = None, suspend: Optional[bool] = None,
              scheduler_port: Optional[int] = None, generate_name: bool = False, **spec: Any) -> dict[str, Any]:
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

    def template(role: str) -> dict[str, Any]:
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

    def replica(role: str, count: int) -> dict[str, Any]:
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

    metadata: dict[str, Any]
    if generate_name:
        metadata = {"generateName": name if name.endswith("-") else name + "-"}
    else:
        metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": body_spec}
