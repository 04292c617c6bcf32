"""Probes suited to training: a liveness probe never kills a slow start."""

from msjob_operator.api.models import MSJobSpec
from msjob_operator.builders.pods import build_pod
from msjob_operator.builders.probes import DEFAULT_STARTUP_GRACE_SECONDS, startup_grace, tolerate_slow_start

from .jobs import job

LIVENESS = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 20, "timeoutSeconds": 3,
            "failureThreshold": 3}


def test_liveness_without_startup_probe_gets_one_for_the_grace_period():
    container = {"name": "mindspore", "livenessProbe": dict(LIVENESS)}
    tolerate_slow_start(container, 1800)
    assert container["startupProbe"] == {"httpGet": {"path": "/healthz", "port": 8080}, "timeoutSeconds": 3,
                                         "periodSeconds": 20, "failureThreshold": 90}
    assert container["livenessProbe"] == LIVENESS  # the user's probe is unchanged


def test_users_startup_probe_and_probe_less_containers_are_left_alone():
    own = {"exec": {"command": ["true"]}, "failureThreshold": 2}
    container = {"name": "mindspore", "livenessProbe": dict(LIVENESS), "startupProbe": dict(own)}
    tolerate_slow_start(container, 1800)
    assert container["startupProbe"] == own
    bare = {"name": "mindspore"}
    tolerate_slow_start(bare, 1800)
    assert bare == {"name": "mindspore"}


def test_grace_rounds_up_and_defaults():
    container = {"name": "m", "livenessProbe": {"tcpSocket": {"port": 2222}}}  # default period 10 s
    tolerate_slow_start(container, 45)
    assert container["startupProbe"] == {"tcpSocket": {"port": 2222}, "periodSeconds": 10, "failureThreshold": 5}
    spec = MSJobSpec.model_validate(job()["spec"])
    assert startup_grace(spec) == DEFAULT_STARTUP_GRACE_SECONDS
    spec = MSJobSpec.model_validate(job(health={"startupGraceSeconds": 600})["spec"])
    assert startup_grace(spec) == 600


def test_pods_of_a_job_get_the_startup_probe():
    body = job(health={"startupGraceSeconds": 600})
    body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["livenessProbe"] = dict(LIVENESS)
    spec = MSJobSpec.model_validate(body["spec"])
    pod = build_pod(body, spec, "Worker", spec.ms_replica_specs.worker, 0, attempt=0, scheduler_ip="10.0.0.42")
    probe = pod["spec"]["containers"][0]["startupProbe"]
    assert probe["failureThreshold"] * probe["periodSeconds"] >= 600 and probe["httpGet"] == LIVENESS["httpGet"]
