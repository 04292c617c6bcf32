"""The Kubernetes PodTemplateSpec as a structural CRD schema.

``podtemplatespec.json`` (package data next to this module) is generated from the OpenAPI v3 spec
of ``k8s.io/kubernetes`` by ``scripts/update_podtemplate_schema.py``; see that script for how
references, IntOrString, Quantity, ObjectMeta and defaults are turned into a schema a CRD accepts.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

DATA_FILE = "podtemplatespec.json"


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    text = resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def kubernetes_version() -> str:
    """The Kubernetes version whose PodTemplateSpec the schema describes, e.g. ``v1.37.1``."""
    return str(_document()["kubernetesVersion"])


def pod_template_schema() -> dict[str, Any]:
    """A fresh copy of the structural PodTemplateSpec schema (callers may modify it)."""
    return copy.deepcopy(_document()["schema"])
