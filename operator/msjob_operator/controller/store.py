"""In-memory caches of MSJobs and their children, fed by watches and by our own write responses."""

from __future__ import annotations

import sys
from collections import OrderedDict, defaultdict
from typing import Any, Optional, ValuesView

from ..api import naming
from ..api.models import GROUP, KIND
from ..reconcile.observed import controller_owner

Key = tuple[str, str]  # (namespace, job name)


def job_owner(obj: dict[str, Any]) -> Optional[Key]:
    """(namespace, name) of the MSJob that is the object's controller, if one is."""
    meta = obj.get("metadata") or {}
    ref = controller_owner(meta)
    if ref and ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
        return str(meta.get("namespace")), str(ref.get("name"))
    return None


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def newer(candidate: dict[str, Any], known: Optional[dict[str, Any]]) -> bool:
    """True when candidate is at least as new as known.

    resourceVersions are opaque by contract, but on every etcd-backed API server they are
    increasing integers; comparing them lets our own write responses win over older watch events.
    """
    return known is None or _rv(candidate) >= _rv(known)


SHARED_STRING_MAX = 64


def compact(value: Any) -> Any:
    """A deep copy whose keys and short strings are shared with every other cached object (sys.intern).

    json.loads makes new strings for every watch event, and thousands of pods repeat the same keys,
    labels and reasons: sharing them takes a cached pod from about 9 KB to about 4 KB.
    """
    if isinstance(value, dict):
        return {sys.intern(k): compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_STRING_MAX:
        return sys.intern(value)
    return value


class ChildStore:
    """Pods or Services grouped by the job that owns them."""

    # How many removed UIDs to remember: a response to our own DELETE can arrive after the
    # watch already reported the object gone, and must not bring it back.
    TOMBSTONES = 20000

    def __init__(self, keep_spec: Optional[tuple[str, ...]] = None) -> None:
        # Only these spec fields are kept (None: the whole spec). A pod's spec is most of its size and the
        # reconcile reads only nodeName: with thousands of pods cached, that is most of the operator's memory.
        self.keep_spec = keep_spec
        self._by_job: dict[Key, dict[str, dict[str, Any]]] = defaultdict(dict)
        # uid -> resourceVersion of its removal. Only older states are refused: a removal can also be
        # a member that lost its labels, and the watch shows it again (newer) once they are back.
        self._tombstones: OrderedDict[str, int] = OrderedDict()

    def _bury(self, obj: dict[str, Any]) -> None:
        uid = obj["metadata"].get("uid")
        if uid:
            self._tombstones[uid] = _rv(obj)
            while len(self._tombstones) > self.TOMBSTONES:
                self._tombstones.popitem(last=False)

    @staticmethod
    def job_key(obj: dict[str, Any]) -> Optional[Key]:
        """The job the object belongs to: its controller, else (for objects no MSJob owns, such as the
        orphans of an earlier job of the same name) its job-name label."""
        owner = job_owner(obj)
        if owner is not None:
            return owner
        meta = obj.get("metadata") or {}
        job = (meta.get("labels") or {}).get(naming.JOB_NAME_LABEL)
        return (str(meta.get("namespace")), str(job)) if job else None

    def upsert(self, obj: dict[str, Any]) -> Optional[Key]:
        key = self.job_key(obj)
        if key is None:
            return None
        buried = self._tombstones.get(obj["metadata"].get("uid"))
        if buried is not None and _rv(obj) <= buried:
            return key
        name = obj["metadata"]["name"]
        known = self._by_job[key].get(name)
        # The newer write wins the name, whichever incarnation it belongs to: a late watch event of
        # a deleted pod must not replace the pod we just created under the same name.
        if known is not None and not newer(obj, known):
            return key
        self._by_job[key][name] = self._slim(obj)
        return key

    def _slim(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A compact copy without what the reconcile never reads (managedFields, most of a pod's spec)."""
        meta = obj["metadata"]
        if "managedFields" in meta:
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        if self.keep_spec is not None and "spec" in obj:
            obj = {**obj, "spec": {k: v for k, v in obj["spec"].items() if k in self.keep_spec}}
        slim: dict[str, Any] = compact(obj)
        return slim

    def remove(self, obj: dict[str, Any]) -> Optional[Key]:
        key = self.job_key(obj)
        if key is None:
            return None
        self._bury(obj)
        children = self._by_job.get(key)
        if children is not None:
            known = children.get(obj["metadata"]["name"])
            # Only the incarnation that was deleted: a new pod may already have the name.
            if known is not None and known["metadata"].get("uid") == obj["metadata"].get("uid"):
                del children[obj["metadata"]["name"]]
            if not children:
                del self._by_job[key]
        return key

    def replace_all(self, objects: list[dict[str, Any]]) -> set[Key]:
        """After a (re)list: the list is the truth.  Returns every job key touched."""
        before = set(self._by_job)
        self._by_job = defaultdict(dict)
        for obj in objects:
            self.upsert(obj)
        return before | set(self._by_job)

    def replace_jobs(self, keys: set[Key], objects: list[dict[str, Any]]) -> None:
        """After a relist of part of the world (one namespace): these jobs' children are exactly ``objects``.
        No tombstones: what was cached and is listed again still exists."""
        for key in keys:
            self._by_job.pop(key, None)
        for obj in objects:
            self.upsert(obj)

    def for_job(self, key: Key) -> list[dict[str, Any]]:
        return list(self._by_job.get(key, {}).values())

    def count(self) -> int:
        return sum(len(children) for children in self._by_job.values())


class JobStore:
    def __init__(self) -> None:
        self._jobs: dict[Key, dict[str, Any]] = {}

    def upsert(self, job: dict[str, Any]) -> Key:
        key = (job["metadata"]["namespace"], job["metadata"]["name"])
        known = self._jobs.get(key)
        if known is None or known["metadata"].get("uid") != job["metadata"].get("uid") or newer(job, known):
            self._jobs[key] = job
        return key

    def remove(self, key: Key) -> None:
        self._jobs.pop(key, None)

    def get(self, key: Key) -> Optional[dict[str, Any]]:
        return self._jobs.get(key)

    def __len__(self) -> int:
        return len(self._jobs)

    def values(self) -> ValuesView[dict[str, Any]]:
        return self._jobs.values()
