"""msjob_runtime.kubeapi against the real API server: get, merge patch, errors with the server's
own status and message, and watches (events from a resourceVersion, ended by timeoutSeconds)."""

from __future__ import annotations

import pytest

from msjob_runtime import kubeapi
from msjob_runtime.kubeconfig import load_kubeconfig


@pytest.fixture
def api(cluster):
    """The runtime's client with the cluster's admin kubeconfig (a client-certificate user)."""
    with kubeapi.Client(load_kubeconfig(str(cluster.kubeconfig))) as client:
        yield client


@pytest.mark.cluster
def test_get_patch_and_errors(api, namespace, core):
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    created = api.request("POST", base, {"metadata": {"name": "cm", "annotations": {"keep": "1", "drop": "2"}},
                                         "data": {"a": "1"}})
    assert created["metadata"]["uid"]
    patched = api.patch(f"{base}/cm", {"metadata": {"annotations": {"drop": None, "new": "3"}}, "data": {"b": "2"}})
    assert patched["metadata"]["annotations"] == {"keep": "1", "new": "3"}  # a merge patch: None removes
    assert patched["data"] == {"a": "1", "b": "2"}
    seen = core.read_namespaced_config_map("cm", namespace)  # what another client sees
    assert seen.metadata.annotations == {"keep": "1", "new": "3"} and seen.data == {"a": "1", "b": "2"}
    assert api.get(f"/api/v1/namespaces/{namespace}")["status"]["phase"] == "Active"
    selected = api.get(base, query={"fieldSelector": "metadata.name=cm"})["items"]
    assert [c["metadata"]["name"] for c in selected] == ["cm"]

    with pytest.raises(kubeapi.ApiError) as e:
        api.get(f"{base}/absent")
    assert (e.value.status, e.value.reason) == (404, "NotFound")
    assert e.value.message == 'configmaps "absent" not found' and e.value.body["kind"] == "Status"
    with pytest.raises(kubeapi.ApiError) as e:
        api.patch(f"{base}/cm", {"data": {"c": 5}})  # a ConfigMap's data are strings
    assert e.value.status in (400, 422) and e.value.message
    with pytest.raises(kubeapi.ApiError) as e:
        api.request("POST", base, {"metadata": {"name": "cm"}})
    assert (e.value.status, e.value.reason) == (409, "AlreadyExists")
    assert api.request("DELETE", f"{base}/cm")["kind"] in ("Status", "ConfigMap")


@pytest.mark.cluster
def test_unauthenticated_and_unverified_calls_fail_clearly(cluster, namespace, tmp_path):
    config = load_kubeconfig(str(cluster.kubeconfig))
    with kubeapi.Client(kubeapi.Config(config.server, token="not-a-token", ca_data=config.ca_data)) as client:
        with pytest.raises(kubeapi.ApiError) as e:
            client.get(f"/api/v1/namespaces/{namespace}")
        assert (e.value.status, e.value.reason) == (401, "Unauthorized")
    # Without the cluster's CA the server's certificate is not trusted: no answer is taken.
    with kubeapi.Client(kubeapi.Config(config.server, token="x")) as client:
        with pytest.raises(kubeapi.TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get("/version")


@pytest.mark.cluster
def test_watch_from_a_resource_version_until_the_server_ends_it(api, namespace):
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    listed = api.get(base)
    since = listed["metadata"]["resourceVersion"]
    api.request("POST", base, {"metadata": {"name": "w"}, "data": {"n": "0"}})
    api.patch(f"{base}/w", {"data": {"n": "1"}})
    api.request("DELETE", f"{base}/w")

    # From the list's version: every change since, in order; the server ends the watch after timeoutSeconds.
    events = []
    for event in api.watch(base, resource_version=since, timeout_seconds=2):
        if event["object"]["metadata"]["name"] == "w":
            events.append((event["type"], (event["object"].get("data") or {}).get("n")))
    assert events == [("ADDED", "0"), ("MODIFIED", "1"), ("DELETED", "1")]

    # Resuming from the last event seen: nothing new until another change.
    last = None
    for event in api.watch(base, resource_version=since, timeout_seconds=5):
        last = event["object"]["metadata"]["resourceVersion"]
        if event["type"] == "DELETED":
            break  # the caller stops: the stream is closed
    api.request("POST", base, {"metadata": {"name": "w2"}})
    resumed = next(iter(api.watch(base, resource_version=last, timeout_seconds=5)))
    assert (resumed["type"], resumed["object"]["metadata"]["name"]) == ("ADDED", "w2")
