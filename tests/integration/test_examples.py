"""Every example MSJob is valid against the CRD (server-side dry run on the real API server)."""

from pathlib import Path

import pytest
import yaml
from kubernetes.client import CustomObjectsApi

from .msjobs import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.cluster

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted(kube, namespace, path):
    api = CustomObjectsApi(kube)
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "MSJob":
            stored = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc, dry_run="All")
            # Admitted without losing anything: every replica keeps its count and its containers.
            for rtype, replica in doc["spec"]["msReplicaSpecs"].items():
                kept = stored["spec"]["msReplicaSpecs"][rtype]
                assert kept["replicas"] == replica.get("replicas", 1)
                kept_main = kept["template"]["spec"]["containers"][0]
                assert kept_main["command"] == replica["template"]["spec"]["containers"][0]["command"]
