"""Every flag of `msjob-operator run` can be set from the Helm chart: a value in values.yaml and in
values.schema.json, passed by the Deployment's args."""

import json
from pathlib import Path

import yaml

from msjob_operator.cli import build_parser

CHART = Path(__file__).resolve().parents[2] / "charts" / "msjob-operator"
# Flag -> the value that sets it. The Lease's namespace is the release's own (where the chart grants leases).
FLAG_VALUES = {
    "--namespace": "watchNamespaces",
    "--kubeconfig": "kubeconfig",
    "--metrics-port": "metrics.port",
    "--metrics-address": "metrics.address",
    "--health-port": "health.port",
    "--workers": "workers",
    "--max-in-flight": "maxInFlight",
    "--max-replicas-per-job": "maxReplicasPerJob",
    "--gang-scheduler": "gangScheduling.scheduler",
    "--gang-scheduling": "gangScheduling.mode",
    "--gang-scheduler-name": "gangScheduling.schedulerName",
    "--kueue": "kueue.enabled",
    "--reporter-image": "reporterImage",
    "--peering": "peering.enabled",
    "--peering-namespace": None,
    "--peering-name": "peering.name",
    "--peering-lease-seconds": "peering.leaseSeconds",
    "--log-format": "log.format",
    "--verbose": "log.level",
}


def run_flags() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    run = sub.choices["run"]
    return {s for action in run._actions for s in action.option_strings if s.startswith("--") and s != "--help"}


def test_every_flag_has_a_chart_value():
    assert set(FLAG_VALUES) == run_flags(), "map each flag of `msjob-operator run` to a chart value here"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    template = (CHART / "templates" / "deployment.yaml").read_text()
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()  # e.g. the Lease's name
    for flag, path in FLAG_VALUES.items():
        assert flag in template, f"the Deployment does not pass {flag}"
        if path is None:
            continue
        node, props = values, schema
        for part in path.split("."):
            assert part in node, f"values.yaml has no {path} (for {flag})"
            assert part in props.get("properties", {}), f"values.schema.json has no {path} (for {flag})"
            node, props = node[part], props["properties"][part]
        assert f".Values.{path}" in template + helpers, f"the Deployment does not read .Values.{path} (for {flag})"
    assert ".Release.Namespace" in template.split("--peering-namespace", 1)[1].splitlines()[0]
