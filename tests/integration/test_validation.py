"""Invalid MSJobs are rejected at admission by the CRD's schema and CEL rules, with actionable messages."""

import copy
import json

import pytest
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from .msjobs import GROUP, PLURAL, VERSION, msjob

pytestmark = pytest.mark.cluster


def rejection(kube, namespace, body) -> str:
    api = CustomObjectsApi(kube)
    with pytest.raises(ApiException) as info:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert info.value.status == 422, info.value.body
    return json.loads(info.value.body)["message"]


def with_spec(change) -> dict:
    body = msjob("bad", workers=2)
    change(body["spec"])
    return body


CASES = {
    "two schedulers": (lambda s: s["msReplicaSpecs"]["Scheduler"].update(replicas=2),
                       ["spec.msReplicaSpecs.Scheduler.replicas", "must be 1"]),
    "no worker": (lambda s: s["msReplicaSpecs"].pop("Worker"),
                  ["msReplicaSpecs.Worker is required"]),
    "zero workers": (lambda s: s["msReplicaSpecs"]["Worker"].update(replicas=0),
                     ["spec.msReplicaSpecs.Worker.replicas", "at least 1"]),
    "ps without scheduler": (lambda s: (s["msReplicaSpecs"].pop("Scheduler"),
                                        s["msReplicaSpecs"].update(PS={"replicas": 1, "template": {}})),
                             ["spec.msReplicaSpecs.PS", "needs a Scheduler"]),
    "bad restart policy": (lambda s: s["msReplicaSpecs"]["Worker"].update(restartPolicy="Sometimes"),
                           ["spec.msReplicaSpecs.Worker.restartPolicy", "Unsupported value", "OnFailure"]),
    "negative backoff": (lambda s: s.update(runPolicy={"backoffLimit": -1}),
                         ["spec.runPolicy.backoffLimit", "greater than or equal to 0"]),
    "bad clean pod policy": (lambda s: s.update(runPolicy={"cleanPodPolicy": "Sometimes"}),
                             ["spec.runPolicy.cleanPodPolicy", "Unsupported value"]),
    "bad success policy": (lambda s: s.update(successPolicy="AnyWorker"),
                           ["spec.successPolicy", "Unsupported value"]),
    "bad failure action": (lambda s: s.update(failurePolicy={"rules": [{"action": "Explode"}]}),
                           ["spec.failurePolicy.rules[0].action", "Unsupported value"]),
    "msrun with a scheduler": (lambda s: s.update(mindspore={"launchMode": "Msrun"}),
                               ["launchMode Msrun and RankTable run Worker replicas only"]),
    "bad device resource": (lambda s: s.update(mindspore={"devices": {"resource": "not a resource", "perPod": 8}}),
                            ["spec.mindspore.devices.resource"]),
    "port out of range": (lambda s: s.update(mindspore={"schedulerPort": 70000}),
                          ["spec.mindspore.schedulerPort", "less than or equal to 65535"]),
    # Specs that cannot work (issue: hostile use, item 8).
    "ignore rule for the scheduler": (lambda s: s.update(enableDynamicWorker=True, failurePolicy={"rules": [
        {"action": "Ignore", "replicaTypes": ["Scheduler", "Worker"]}]}),
        ["spec.failurePolicy.rules[0]", "cannot ignore the Scheduler"]),
    "ignore rule for every type": (lambda s: s.update(enableDynamicWorker=True, failurePolicy={"rules": [
        {"action": "Ignore"}]}), ["spec.failurePolicy.rules[0]", "must list replicaTypes"]),
    "ignore without dynamic workers": (lambda s: s.update(failurePolicy={"rules": [
        {"action": "Ignore", "replicaTypes": ["Worker"]}]}), ["enableDynamicWorker: true"]),
    "rank table without an ascend device": (lambda s: (s["msReplicaSpecs"].pop("Scheduler"),
                                                      s.update(mindspore={"launchMode": "RankTable"})),
                                            ["launchMode RankTable needs an Ascend device"]),
    "rank table with a gpu": (lambda s: (s["msReplicaSpecs"].pop("Scheduler"), s.update(mindspore={
        "launchMode": "RankTable", "devices": {"resource": "nvidia.com/gpu", "perPod": 8}})),
        ["launchMode RankTable needs an Ascend device"]),
    "device resource cpu": (lambda s: s.update(mindspore={"devices": {"resource": "cpu", "perPod": 1}}),
                            ["spec.mindspore.devices.resource", "extended resource"]),
    "template label value too long": (lambda s: s["msReplicaSpecs"]["Worker"]["template"]["metadata"]["labels"]
                                      .update(team="x" * 64), ["msReplicaSpecs.Worker.template.metadata.labels", "63"]),
    "template label value not ascii": (lambda s: s["msReplicaSpecs"]["Worker"]["template"]["metadata"]["labels"]
                                       .update(team="équipe"), ["template.metadata.labels", "label value"]),
    "template label key invalid": (lambda s: s["msReplicaSpecs"]["Worker"]["template"]["metadata"]["labels"]
                                   .update({"bad key!": "v"}), ["template.metadata.labels", "label key"]),
    "init container named like a container": (lambda s: s["msReplicaSpecs"]["Worker"]["template"]["spec"].update(
        initContainers=[{"name": "mindspore", "image": "busybox"}]),
        ["template.spec", "container names must be unique"]),
    "container named like the reporter": (lambda s: s["msReplicaSpecs"]["Worker"]["template"]["spec"].update(
        initContainers=[{"name": "msjob-reporter", "image": "busybox"}]), ["template.spec", "reserved"]),
    "deadline beyond ten years": (lambda s: s.update(runPolicy={"activeDeadlineSeconds": 10 ** 12}),
                                  ["spec.runPolicy.activeDeadlineSeconds", "less than or equal to"]),
    "startup deadline beyond ten years": (lambda s: s.update(failurePolicy={"startupDeadlineSeconds": 2 ** 63 - 1}),
                                          ["spec.failurePolicy.startupDeadlineSeconds", "less than or equal to"]),
    "ttl beyond ten years": (lambda s: s.update(runPolicy={"ttlSecondsAfterFinished": 2 ** 63 - 1}),
                             ["spec.runPolicy.ttlSecondsAfterFinished", "less than or equal to"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_spec_is_rejected_with_the_field_named(kube, namespace, case):
    change, expected = CASES[case]
    message = rejection(kube, namespace, with_spec(change))
    for text in expected:
        assert text in message, message


def test_unknown_replica_type_is_rejected_by_kubectl(cluster, namespace):
    # kubectl asks for strict field validation (its default), so unknown fields are errors, not pruned.
    body = with_spec(lambda s: s["msReplicaSpecs"].update(Chief={"replicas": 1}))
    result = cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.msReplicaSpecs.Chief"' in result.stderr, result.stderr


def test_too_long_name_is_rejected_with_the_reason(kube, namespace):
    body = msjob("a" * 51, workers=1)
    message = rejection(kube, namespace, body)
    assert "metadata.name must be at most 50 characters" in message and "shorter name" in message


def test_name_must_start_with_a_letter(kube, namespace):
    message = rejection(kube, namespace, msjob("1job", workers=1))
    assert "must start with a letter" in message


def test_longest_allowed_name_is_accepted(kube, namespace):
    api = CustomObjectsApi(kube)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, msjob("a" * 50, workers=1), dry_run="All")


def test_ms_operator_style_yaml_is_accepted_unchanged(kube, namespace):
    body = {
        "apiVersion": "mindspore.gitee.com/v1", "kind": "MSJob", "metadata": {"name": "ms-operator-sample"},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None"}, "successPolicy": "AllWorkers", "enableDynamicWorker": False,
            "msReplicaSpecs": {
                "Scheduler": {"replicas": 1, "restartPolicy": "Never", "template": {"spec": {"containers": [
                    {"name": "mindspore", "image": "mindspore/mindspore-cpu:1.1.0", "imagePullPolicy": "IfNotPresent",
                     "command": ["/bin/bash", "-c", "python /workspace/test.py"],
                     "ports": [{"containerPort": 2222, "name": "msjob-port"}]}]}}},
                "Worker": {"replicas": 2, "restartPolicy": "Never", "template": {"spec": {"containers": [
                    {"name": "mindspore", "image": "mindspore/mindspore-cpu:1.1.0",
                     "command": ["/bin/bash", "-c", "python /workspace/test.py"]}]}}},
            },
        },
    }
    api = CustomObjectsApi(kube)
    stored = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body, dry_run="All")
    # Nothing of the user's template is pruned.
    sched = stored["spec"]["msReplicaSpecs"]["Scheduler"]["template"]["spec"]["containers"][0]
    assert sched["ports"] == [{"containerPort": 2222, "name": "msjob-port", "protocol": "TCP"}] or \
        sched["ports"] == [{"containerPort": 2222, "name": "msjob-port"}]


def test_template_labels_and_annotations_are_kept(kube, namespace):
    body = msjob("keep", workers=1)
    body["spec"]["msReplicaSpecs"]["Worker"]["template"]["metadata"] = {"labels": {"a": "b"}, "annotations": {"c": "d"}}
    api = CustomObjectsApi(kube)
    stored = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body, dry_run="All")
    assert stored["spec"]["msReplicaSpecs"]["Worker"]["template"]["metadata"] == {"labels": {"a": "b"},
                                                                                 "annotations": {"c": "d"}}


def test_immutable_fields_cannot_change(kube, namespace):
    api = CustomObjectsApi(kube)
    body = msjob("frozen", workers=2, mindspore={"schedulerPort": 3000}, runPolicy={"managedBy": ""})
    worker_template = body["spec"]["msReplicaSpecs"]["Worker"]["template"]
    body["spec"]["msReplicaSpecs"]["PS"] = {"replicas": 1, "template": copy.deepcopy(worker_template)}
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def update_rejected(patch: dict) -> str:
        with pytest.raises(ApiException) as info:
            api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "frozen", patch)
        assert info.value.status == 422, info.value.body
        return json.loads(info.value.body)["message"]

    assert "spec.mindspore is immutable" in update_rejected({"spec": {"mindspore": {"schedulerPort": 3001}}})
    assert "managedBy is immutable" in update_rejected(
        {"spec": {"runPolicy": {"managedBy": "kueue.x-k8s.io/multikueue"}}})
    assert "PS.replicas is immutable" in update_rejected({"spec": {"msReplicaSpecs": {"PS": {"replicas": 2}}}})
    assert "cannot be added or removed" in update_rejected({"spec": {"msReplicaSpecs": {"PS": None}}})
    # Worker replicas may change (the scale subresource), and so may suspend.
    api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "frozen",
                                       {"spec": {"msReplicaSpecs": {"Worker": {"replicas": 3}},
                                                 "runPolicy": {"suspend": True}}})
