"""msjob_runtime.kubeapi without the API server: credentials, errors, timeouts and the transport's
corner cases (a silent peer, a keep-alive connection the server closed, a cut watch stream) on
local sockets.  What the API server itself does is tested in tests/cluster/test_kubeapi.py."""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from msjob_runtime import kubeapi
from msjob_runtime.kubeapi import ApiError, Client, Config, ConfigError, TransportError, load_config


def service_account_dir(tmp_path, token: str = "t0") -> str:
    d = tmp_path / "sa"
    d.mkdir(exist_ok=True)
    (d / "token").write_text(token + "\n")
    (d / "ca.crt").write_text("")
    return str(d)


def test_in_cluster_config(tmp_path):
    d = service_account_dir(tmp_path)
    c = Config.in_cluster(d, {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert (c.server, c.token_file, c.ca_file) == ("https://10.0.0.1:443", f"{d}/token", f"{d}/ca.crt")
    c = Config.in_cluster(d, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"})
    assert c.server == "https://[fd00::1]:6443"
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        Config.in_cluster(d, {})
    with pytest.raises(ConfigError, match="no ServiceAccount token"):
        Config.in_cluster(str(tmp_path / "none"), {"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"})


def test_load_config_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    explicit = load_config("ignored", server="https://s:1", token_file="/t", ca_file="/c", environ={})
    assert (explicit.server, explicit.token_file, explicit.ca_file) == ("https://s:1", "/t", "/c")
    with pytest.raises(ConfigError, match="needs a server"):
        load_config(token_file="/t", environ={})
    with pytest.raises(ConfigError, match="no Kubernetes credentials"):
        load_config(environ={})

    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump({
        "current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "clusters": [{"name": "x", "cluster": {"server": "https://from-file:1"}}],
        "users": [{"name": "x", "user": {"token": "file-token"}}]}))
    assert load_config(str(kubeconfig), environ={}).server == "https://from-file:1"
    assert load_config(environ={"KUBECONFIG": f"/absent{os.pathsep}{kubeconfig}"}).token == "file-token"
    # In a pod the ServiceAccount wins over $KUBECONFIG.
    monkeypatch.setattr(kubeapi, "SERVICE_ACCOUNT_DIR", service_account_dir(tmp_path))
    env = {"KUBECONFIG": str(kubeconfig), "KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert load_config(environ=env).server == "https://10.0.0.1:443"


def test_token_file_is_read_again_when_it_changes(tmp_path):
    d = service_account_dir(tmp_path, "first")
    token = kubeapi._Token(None, f"{d}/token")
    assert token.get() == "first"
    (tmp_path / "sa" / "token.new").write_text("second-token")
    os.replace(tmp_path / "sa" / "token.new", tmp_path / "sa" / "token")  # as the kubelet swaps it: a new inode
    assert token.get() == "second-token"
    os.unlink(tmp_path / "sa" / "token")
    with pytest.raises(ConfigError, match="cannot read the token file"):
        token.get()


def test_api_error_carries_the_servers_status():
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
              "message": 'pods "x" not found'}
    e = ApiError.from_response(404, "Not Found", json.dumps(status).encode())
    assert (e.status, e.reason, e.message, e.body) == (404, "NotFound", 'pods "x" not found', status)
    assert str(e) == 'HTTP 404 NotFound: pods "x" not found'
    e = ApiError.from_response(502, "Bad Gateway", b"<html>upstream down</html>")
    assert (e.status, e.reason, e.message, e.body) == (502, "Bad Gateway", "<html>upstream down</html>", None)


def test_bad_server_urls_are_refused():
    for url in ("127.0.0.1:6443", "ftp://h", "https://"):
        with pytest.raises(ConfigError, match="bad API server URL"):
            Client(Config(url))


@pytest.fixture
def silent_peer():
    """A TCP port that accepts connections and never says anything."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_every_call_times_out(silent_peer, scheme):
    client = Client(Config(f"{scheme}://127.0.0.1:{silent_peer}", insecure_skip_tls_verify=True, timeout=0.3))
    with pytest.raises(TransportError, match="no answer within 0.3 s"):
        client.get("/api/v1/namespaces")
    with pytest.raises(TransportError, match="no answer within 0.2 s"):
        client.patch("/api/v1/namespaces/a/pods/b", {"metadata": {}}, timeout=0.2)
    with pytest.raises(TransportError, match="no answer within"):
        next(client.watch("/api/v1/pods", timeout_seconds=1, read_timeout=0.3))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    seen: list = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        if "watch=true" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            events = [{"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "5"}}},
                      {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                   "message": "too old resource version: 1 (5)"}}]
            for e in events:
                line = (json.dumps(e) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
            return
        body = json.dumps({"kind": "Pod", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True  # without saying so: the client's next call finds it closed


@pytest.fixture
def http_server():
    _Handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prefix"
    server.shutdown()
    server.server_close()


def test_a_closed_keep_alive_connection_is_opened_again(http_server):
    with Client(Config(http_server, token="abc", timeout=5)) as client:
        assert client.get("/api/v1/x", query={"a": "b c"})["path"] == "/prefix/api/v1/x?a=b+c"
        assert client.get("api/v1/y")["path"] == "/prefix/api/v1/y"
    assert _Handler.seen == [("/prefix/api/v1/x?a=b+c", "Bearer abc"), ("/prefix/api/v1/y", "Bearer abc")]


def test_watch_yields_events_and_raises_on_an_error_event(http_server):
    client = Client(Config(http_server, timeout=5))
    events = client.watch("/api/v1/pods", resource_version="1", timeout_seconds=10, allow_bookmarks=True)
    first = next(events)
    assert first["type"] == "ADDED" and first["object"]["metadata"]["resourceVersion"] == "5"
    with pytest.raises(ApiError) as e:
        next(events)
    assert (e.value.status, e.value.reason) == (410, "Expired")
    path = _Handler.seen[-1][0]
    assert path.startswith("/prefix/api/v1/pods?") and "resourceVersion=1" in path and "timeoutSeconds=10" in path
    assert "allowWatchBookmarks=true" in path and "watch=true" in path
