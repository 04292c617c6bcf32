"""RankTable launch mode on fake Ascend nodes, with a stand-in for Ascend's device plugin."""

import json

import pytest

from msjob_localcluster.fake_device_plugin import FakeAscendDevicePlugin

from ..helpers import wait_for
from .msjobs import msjob

pytestmark = pytest.mark.cluster


@pytest.fixture
def device_plugin(cluster):
    plugin = FakeAscendDevicePlugin(cluster.kubeconfig)
    plugin.start()
    yield plugin
    plugin.stop()


def test_rank_table_is_built_from_the_device_plugin_and_mounted(jobs, device_plugin):
    body = msjob("hccl", workers=2, scheduler=False, mindspore={"launchMode": "RankTable"})
    body["spec"]["msReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"huawei.com/Ascend910": 8}}
    jobs.create(body)

    def table():
        cm = jobs.core.read_namespaced_config_map("hccl-ranktable", jobs.ns)
        return json.loads(cm.data["hccl.json"])

    done = wait_for(lambda: (lambda t: t if t["status"] == "completed" else None)(table()), timeout=90,
                    message="hccl.json completed", describe=lambda: (jobs.get("hccl").get("status"), table()))
    assert done["version"] == "1.0" and done["server_count"] == "2"
    ranks = [d["rank_id"] for server in done["server_list"] for d in server["device"]]
    assert ranks == [str(i) for i in range(16)]
    assert len({d["device_ip"] for server in done["server_list"] for d in server["device"]}) == 16
    wait_for(lambda: jobs.get("hccl")["status"].get("rankTable", {}).get("status") == "completed", timeout=30,
             message="status.rankTable completed")

    pods = jobs.wait_pods("hccl", 2)
    worker1 = pods[1]
    env = {e.name: e.value for e in worker1.spec.containers[0].env}
    assert env["RANK_SIZE"] == "16" and env["RANK_START"] == "8"
    assert env["RANK_TABLE_FILE"] == "/etc/msjob/ranktable/hccl.json"
    assert any(v.config_map and v.config_map.name == "hccl-ranktable" for v in worker1.spec.volumes)
    # Server order follows the replica index.
    annotation = pods[0].metadata.annotations["ascend.kubectl.kubernetes.io/ascend-910-configuration"]
    server0 = json.loads(annotation)["server_id"]
    assert done["server_list"][0]["server_id"] == server0
    jobs.wait_event("hccl", "RankTableCompleted")
