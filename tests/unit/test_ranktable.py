"""The Ascend rank table (hccl.json) built from the device plugin's pod annotations."""

from __future__ import annotations

import json

import pytest

from msjob_operator.api import naming
from msjob_operator.builders import ranktable as rt

from .jobs import job


def annotation(pod: str, server: str, devices, *, super_pod=None, superpod=False) -> str:
    body = {"pod_name": pod, "server_id": server,
            "devices": [{"device_id": str(d), "device_ip": f"192.168.{server.split('.')[-1]}.{d}",
                         **({"super_device_id": str(100 + d)} if superpod else {})} for d in devices]}
    if super_pod is not None:
        body["super_pod_id"] = super_pod
    return json.dumps(body)


def pod(index: int, value: str | None = None, job_name: str = "demo") -> dict:
    meta = {"name": naming.pod_name(job_name, "Worker", index), "namespace": "ns",
            "labels": {**naming.replica_labels(job_name, "Worker"), naming.REPLICA_INDEX_LABEL: str(index)},
            "annotations": {rt.ANNOTATION: value} if value else {}}
    return {"metadata": meta, "spec": {}}


def all_strings(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and all_strings(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(all_strings(v) for v in obj)
    return isinstance(obj, str)


def test_version_1_0_exactly_as_documented():
    pods = [pod(0, annotation("demo-worker-0", "10.0.0.1", [1, 0])),
            pod(1, annotation("demo-worker-1", "10.0.0.2", [0, 1]))]
    table = rt.build_rank_table(pods, expected_pods=2)
    assert table == {
        "version": "1.0",
        "server_count": "2",
        "server_list": [
            {"server_id": "10.0.0.1", "host_nic_ip": "reserve", "device": [
                {"device_id": "0", "device_ip": "192.168.1.0", "rank_id": "0"},
                {"device_id": "1", "device_ip": "192.168.1.1", "rank_id": "1"}]},
            {"server_id": "10.0.0.2", "host_nic_ip": "reserve", "device": [
                {"device_id": "0", "device_ip": "192.168.2.0", "rank_id": "2"},
                {"device_id": "1", "device_ip": "192.168.2.1", "rank_id": "3"}]},
        ],
        "status": "completed",
    }
    assert all_strings(table)  # HCCL wants every value a string, counts and ids included
    assert "super_pod_list" not in table


def test_servers_follow_replica_index_and_devices_their_numeric_id():
    # Listed out of order, on hosts whose IPs sort the other way; device ids beyond 9.
    pods = [pod(2, annotation("demo-worker-2", "10.0.0.1", [10, 2, 9])),
            pod(0, annotation("demo-worker-0", "10.0.0.9", [3, 1, 0])),
            pod(1, annotation("demo-worker-1", "10.0.0.5", [7, 5, 6]))]
    table = rt.build_rank_table(pods, 3)
    assert [s["server_id"] for s in table["server_list"]] == ["10.0.0.9", "10.0.0.5", "10.0.0.1"]
    assert [[d["device_id"] for d in s["device"]] for s in table["server_list"]] == \
        [["0", "1", "3"], ["5", "6", "7"], ["2", "9", "10"]]
    ranks = [d["rank_id"] for s in table["server_list"] for d in s["device"]]
    assert ranks == [str(i) for i in range(9)]
    # Deterministic: the same table whatever order the pods come in.
    assert rt.build_rank_table(list(reversed(pods)), 3) == table


def test_ranks_agree_with_rank_env():
    pods = [pod(i, annotation(f"demo-worker-{i}", f"10.0.0.{i + 1}", range(8))) for i in range(3)]
    table = rt.build_rank_table(pods, 3)
    for i, server in enumerate(table["server_list"]):
        env = {e["name"]: e["value"] for e in rt.rank_env(i, 8, 24)}
        start = int(env["RANK_START"])
        assert [d["rank_id"] for d in server["device"]] == [str(start + k) for k in range(8)]
        assert [rt.per_process_env(start, k)["RANK_ID"] for k in range(8)] == [d["rank_id"] for d in server["device"]]


def test_initializing_until_every_pod_reported():
    pods = [pod(0), pod(1, annotation("demo-worker-1", "10.0.0.2", [0, 1])), pod(2)]
    table = rt.build_rank_table(pods, 3)
    assert table["status"] == "initializing"
    assert table["server_count"] == "1"
    assert [s["server_id"] for s in table["server_list"]] == ["10.0.0.2"]

    pods[0] = pod(0, annotation("demo-worker-0", "10.0.0.1", [0, 1]))
    assert rt.build_rank_table(pods, 3)["status"] == "initializing"
    pods[2] = pod(2, annotation("demo-worker-2", "10.0.0.3", [0, 1]))
    table = rt.build_rank_table(pods, 3)
    assert table["status"] == "completed" and table["server_count"] == "3"
    assert rt.rank_count(table) == 6

    empty = rt.build_rank_table([], 2)
    assert empty == {"version": "1.0", "server_count": "0", "server_list": [], "status": "initializing"}


def test_version_1_2_with_superpod_data():
    pods = [pod(0, annotation("demo-worker-0", "10.0.0.1", [0, 1], super_pod=0, superpod=True)),
            pod(1, annotation("demo-worker-1", "10.0.0.2", [0, 1], super_pod=0, superpod=True)),
            pod(2, annotation("demo-worker-2", "10.0.0.3", [0, 1], super_pod="1", superpod=True))]
    table = rt.build_rank_table(pods, 3)
    assert table["version"] == "1.2" and table["status"] == "completed"
    assert table["server_list"][0]["device"] == [
        {"device_id": "0", "device_ip": "192.168.1.0", "rank_id": "0", "super_device_id": "100"},
        {"device_id": "1", "device_ip": "192.168.1.1", "rank_id": "1", "super_device_id": "101"}]
    assert table["super_pod_list"] == [
        {"super_pod_id": "0", "server_list": [{"server_id": "10.0.0.1"}, {"server_id": "10.0.0.2"}]},
        {"super_pod_id": "1", "server_list": [{"server_id": "10.0.0.3"}]}]
    assert all_strings(table)


def test_superpod_id_on_devices_or_missing():
    value = json.dumps({"pod_name": "p", "server_id": "10.0.0.1",
                        "devices": [{"device_id": 0, "device_ip": "1.1.1.1", "super_device_id": 7, "super_pod_id": 3}]})
    table = rt.build_rank_table([pod(0, value)], 1)
    assert table["super_pod_list"] == [{"super_pod_id": "3", "server_list": [{"server_id": "10.0.0.1"}]}]
    assert table["server_list"][0]["device"][0]["super_device_id"] == "7"

    value = json.dumps({"pod_name": "p", "server_id": "10.0.0.1", "super_pod_id": -1,
                        "devices": [{"device_id": 0, "device_ip": "1.1.1.1", "super_device_id": 7}]})
    assert rt.build_rank_table([pod(0, value)], 1)["super_pod_list"][0]["super_pod_id"] == "0"


def test_superpod_id_without_super_device_ids_stays_1_0():
    # The real plugin writes super_pod_id on every pod; without super_device_id it is no SuperPoD.
    table = rt.build_rank_table([pod(0, annotation("p", "10.0.0.1", [0], super_pod=0))], 1)
    assert table["version"] == "1.0" and "super_pod_list" not in table


def test_parse_is_tolerant_of_int_ids():
    alloc = rt.parse_annotation(json.dumps({"pod_name": "p", "server_id": "10.0.0.7",
                                            "devices": [{"device_id": 3, "device_ip": "192.168.0.3"},
                                                        {"device_id": "1", "device_ip": "192.168.0.1"}]}))
    assert alloc.server_id == "10.0.0.7"
    assert [(d.device_id, d.device_ip) for d in alloc.devices] == [("1", "192.168.0.1"), ("3", "192.168.0.3")]
    assert not alloc.superpod and alloc.super_pod_id is None


@pytest.mark.parametrize("value", [
    "not json",
    "[]",
    json.dumps({"server_id": "10.0.0.1", "devices": []}),
    json.dumps({"server_id": "10.0.0.1"}),
    json.dumps({"devices": [{"device_id": "0", "device_ip": "x"}]}),
    json.dumps({"server_id": "10.0.0.1", "devices": [{"device_ip": "x"}]}),
    json.dumps({"server_id": "10.0.0.1", "devices": [{"device_id": "0"}, {"device_id": 0}]}),
    json.dumps({"server_id": "10.0.0.1", "devices": [{"device_id": True}]}),
])
def test_unusable_annotations_are_named(value):
    with pytest.raises(rt.RankTableError, match="demo-worker-0"):
        rt.build_rank_table([pod(0, value)], 1)


def test_mixed_superpod_reports_are_refused():
    pods = [pod(0, annotation("a", "10.0.0.1", [0], superpod=True)), pod(1, annotation("b", "10.0.0.2", [0]))]
    with pytest.raises(rt.RankTableError, match="SuperPoD"):
        rt.build_rank_table(pods, 2)


def test_pods_sharing_a_host_share_a_server():
    pods = [pod(0, annotation("a", "10.0.0.1", [4, 5])), pod(1, annotation("b", "10.0.0.1", [0, 1])),
            pod(2, annotation("c", "10.0.0.2", [0, 1]))]
    table = rt.build_rank_table(pods, 3)
    assert table["server_count"] == "2"
    first = table["server_list"][0]
    assert [(d["device_id"], d["rank_id"]) for d in first["device"]] == [("4", "0"), ("5", "1"), ("0", "2"), ("1", "3")]
    clash = [pod(0, annotation("a", "10.0.0.1", [0, 1])), pod(1, annotation("b", "10.0.0.1", [1, 2]))]
    with pytest.raises(rt.RankTableError, match="another pod"):
        rt.build_rank_table(clash, 2)


def test_pod_name_falls_back_to_the_pods_own():
    value = json.dumps({"server_id": "10.0.0.1", "devices": [{"device_id": "0", "device_ip": "1.1.1.1"}]})
    assert rt.pod_allocation(pod(0, value)).pod_name == "demo-worker-0"


def test_rank_env_one_device_per_pod():
    env = {e["name"]: e["value"] for e in rt.rank_env(3, 1, 4)}
    assert env == {"RANK_TABLE_FILE": "/etc/msjob/ranktable/hccl.json", "RANK_SIZE": "4", "RANK_START": "3",
                   "DEVICE_NUM": "1", "RANK_ID": "3", "DEVICE_ID": "0"}
    assert all(isinstance(e["value"], str) for e in rt.rank_env(3, 1, 4))


def test_rank_env_several_devices_per_pod():
    env = {e["name"]: e["value"] for e in rt.rank_env(2, 8, 32)}
    assert env == {"RANK_TABLE_FILE": "/etc/msjob/ranktable/hccl.json", "RANK_SIZE": "32", "RANK_START": "16",
                   "DEVICE_NUM": "8"}
    assert rt.per_process_env(16, 0) == {"RANK_ID": "16", "DEVICE_ID": "0"}
    assert rt.per_process_env(16, 7) == {"RANK_ID": "23", "DEVICE_ID": "7"}
    with pytest.raises(ValueError):
        rt.rank_env(0, 0, 8)


def test_configmap_volume_and_mount():
    j = job("demo", workers=2, scheduler=False)
    table = rt.build_rank_table([pod(0, annotation("demo-worker-0", "10.0.0.1", [0]))], 2)
    cm = rt.configmap(j, table)
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "demo-ranktable" and cm["metadata"]["namespace"] == "ns"
    assert cm["metadata"]["labels"] == naming.job_labels("demo")
    assert cm["metadata"]["ownerReferences"] == [naming.owner_reference(j)]
    text = cm["data"]["hccl.json"]
    assert list(cm["data"]) == ["hccl.json"]
    assert json.loads(text) == table
    assert text == json.dumps(table, indent=2, sort_keys=True) + "\n"  # stable bytes: no needless updates

    vol, mount = rt.volume("demo"), rt.volume_mount()
    assert vol == {"name": "msjob-ranktable", "configMap": {"name": "demo-ranktable"}}
    assert mount == {"name": "msjob-ranktable", "mountPath": "/etc/msjob/ranktable", "readOnly": True}
    assert "subPath" not in mount  # ConfigMap updates reach the pod only without subPath
    assert rt.RANK_TABLE_FILE == f"{mount['mountPath']}/hccl.json"
