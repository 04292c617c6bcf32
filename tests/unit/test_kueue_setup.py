"""How the local cluster wires Kueue: which webhooks, which CRDs convert, the edited main package."""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import subprocess

import pytest
import yaml

from msjob_localcluster import binaries, kueue

CA = b"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"


def hook(name: str, group: str, path: str) -> dict:
    return {"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
            "clientConfig": {"service": {"name": "webhook-service", "namespace": "system", "path": path}},
            "rules": [{"apiGroups": [group], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["x"]}]}


@pytest.fixture
def kueue_src(tmp_path, monkeypatch):
    webhook = tmp_path / "config" / "components" / "webhook"
    bases = tmp_path / "config" / "components" / "crd" / "bases"
    webhook.mkdir(parents=True)
    bases.mkdir(parents=True)
    webhook.joinpath("manifests.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": "mutating-webhook-configuration"},
         "webhooks": [hook("mpod.kb.io", "", "/mutate--v1-pod"),
                      hook("mworkload.kb.io", kueue.GROUP, "/mutate-kueue-x-k8s-io-v1beta2-workload")]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "validating-webhook-configuration"},
         "webhooks": [hook("vjob.kb.io", "batch", "/validate-batch-v1-job"),
                      hook("vcq.kb.io", kueue.GROUP, "/validate-kueue-x-k8s-io-v1beta2-clusterqueue")]},
    ]))
    for plural in ("workloads", "resourceflavors"):
        bases.joinpath(f"{kueue.GROUP}_{plural}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{kueue.GROUP}"}, "spec": {"names": {"plural": plural}}}))
    monkeypatch.setenv("MSJOB_KUEUE_SRC", str(tmp_path))
    return tmp_path


def test_only_the_webhooks_of_kueues_own_group_are_registered_by_url(kueue_src):
    configs = {c["kind"]: c for c in kueue.webhook_configurations(9443, CA)}
    mutating, validating = configs["MutatingWebhookConfiguration"], configs["ValidatingWebhookConfiguration"]
    assert [h["name"] for h in mutating["webhooks"]] == ["mworkload.kb.io"]  # no pod webhook: pods never wait on Kueue
    assert [h["name"] for h in validating["webhooks"]] == ["vcq.kb.io"]
    assert mutating["metadata"]["name"] == "kueue-mutating-webhook-configuration"
    assert mutating["webhooks"][0]["clientConfig"] == {
        "url": "https://127.0.0.1:9443/mutate-kueue-x-k8s-io-v1beta2-workload",
        "caBundle": base64.b64encode(CA).decode()}


def test_multi_version_crds_convert_through_the_manager(kueue_src):
    crds = {c["spec"]["names"]["plural"]: c for c in kueue.crds(9443, CA)}
    assert crds["workloads"]["spec"]["conversion"]["webhook"]["clientConfig"]["url"] == "https://127.0.0.1:9443/convert"
    assert "conversion" not in crds["resourceflavors"]["spec"]  # upstream leaves it to strategy None


def test_the_configuration_keeps_everything_on_loopback_and_off_the_defaults_that_need_a_pod(tmp_path):
    ports = {"kueue-webhook": 1, "kueue-metrics": 2, "kueue-health": 3}
    cfg = kueue.configuration(ports, tmp_path)
    assert cfg["apiVersion"] == "config.kueue.x-k8s.io/v1beta2"
    assert cfg["webhook"] == {"host": "127.0.0.1", "port": 1, "certDir": str(tmp_path)}
    assert cfg["metrics"]["bindAddress"] == "127.0.0.1:2" and cfg["health"]["healthProbeBindAddress"] == "127.0.0.1:3"
    assert cfg["internalCertManagement"] == {"enable": False} and cfg["leaderElection"] == {"leaderElect": False}
    assert cfg["integrations"]["frameworks"]  # an empty list would mean batch/job anyway


def test_a_source_edit_builds_an_edited_copy_of_the_main_package_and_refuses_a_stale_one(tmp_path):
    go = shutil.which("go")
    assert go, "Go builds the local cluster's binaries: install Go 1.26+"
    module = tmp_path / "dep"
    (module / "cmd" / "tool").mkdir(parents=True)
    (module / "go.mod").write_text("module example.com/dep\n\ngo 1.22\n")
    upstream = module / "cmd" / "tool" / "main.go"
    upstream.write_text('package main\n\nfunc main() { println("/etc/fixed") }\n')
    src = tmp_path / "wrapper"
    src.mkdir()
    (src / "go.mod").write_text("module wrapper\n\ngo 1.22\n\nrequire example.com/dep v0.0.0\n\n"
                                f"replace example.com/dep => {module}\n")
    env = dict(os.environ, GOFLAGS="-mod=mod")
    tool = binaries.Tool("tool", "unused", "example.com/dep/cmd/tool", "0.0.0",
                         edits=(binaries.SourceEdit("main.go", '"/etc/fixed"', '"/run/ours"'),))
    package = binaries._edited_main(go, src, env, tool)
    out = subprocess.run([go, "run", package], cwd=src, env=env, capture_output=True, text=True, timeout=300)
    assert out.stderr.strip().endswith("/run/ours"), out.stderr
    assert "/etc/fixed" in upstream.read_text()  # the original is untouched

    stale = dataclasses.replace(tool, edits=(binaries.SourceEdit("main.go", "absent", "x"),))
    shutil.rmtree(src / "edited")
    with pytest.raises(binaries.BinaryError, match="exactly once"):
        binaries._edited_main(go, src, env, stale)
