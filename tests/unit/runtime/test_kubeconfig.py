"""msjob_runtime.kubeconfig: the YAML subset reads what PyYAML reads, and kubeconfig users map to a Config."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from msjob_runtime.kubeapi import ConfigError
from msjob_runtime.kubeconfig import load_kubeconfig, parse_yaml

KUBECTL_STYLE = """\
apiVersion: v1
# written by kubectl config set-cluster / set-credentials
clusters:
  - cluster:
      certificate-authority-data: TFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2c9PQ==
      server: https://10.0.0.1:6443   # the API server
      insecure-skip-tls-verify: false
    name: "prod"
contexts:
- context:
    cluster: prod
    namespace: team-a
    user: 'robot'
  name: robot@prod
current-context: robot@prod
kind: Config
preferences: {}
users:
- name: robot
  user:
    token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2ln
    extensions: []
- name: "it's quoted"
  user:
    tokenFile: ../token
empty:
port: 6443
"""


def test_kubectl_style_yaml_reads_as_pyyaml_reads_it():
    assert parse_yaml(KUBECTL_STYLE) == yaml.safe_load(KUBECTL_STYLE)


def test_json_kubeconfigs_always_work():
    doc = {"apiVersion": "v1", "clusters": [{"name": "c", "cluster": {"server": "https://h:1"}}]}
    assert parse_yaml(json.dumps(doc, indent=2)) == doc


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.text(st.sampled_from("abzAZ09-_./:@=+ #'\"!?,{}[]"), max_size=20),
)
KEYS = st.text(st.sampled_from("abcxyz-_.09"), min_size=1, max_size=12)
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, DOCS, min_size=1, max_size=5))
def test_block_yaml_dumped_by_pyyaml_round_trips(doc):
    for text in (yaml.safe_dump(doc, default_flow_style=False, width=10**6),
                 yaml.safe_dump(doc, default_flow_style=False, width=10**6, indent=4)):
        assert parse_yaml(text) == doc, text


@pytest.mark.parametrize("text", ["key: |\n  block\n", "a: &x 1\nb: *x\n", "a: b\n   c: d\n", "a:\n\t- b\n",
                                  "a: [b, c]\n"])
def test_unsupported_yaml_is_refused_not_misread(text):
    with pytest.raises(ConfigError):
        parse_yaml(text)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_kubeconfig(path, user: dict, cluster: dict | None = None) -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "other", "cluster": {"server": "https://wrong:1"}},
                     {"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443",
                                                          "certificate-authority-data": b64("CA PEM")}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}},
                     {"name": "bare", "context": {"cluster": "other"}}],
    }))


def test_token_and_client_certificate_users(tmp_path):
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    write_kubeconfig(path, {"token": "abc"})
    config = load_kubeconfig(str(path))
    assert (config.server, config.token, config.ca_data) == ("https://127.0.0.1:6443", "abc", "CA PEM")

    write_kubeconfig(path, {"client-certificate-data": b64("CERT"), "client-key-data": b64("KEY")})
    config = load_kubeconfig(str(path))
    assert (config.client_cert_data, config.client_key_data, config.token) == ("CERT", "KEY", None)

    # File names are relative to the kubeconfig's directory.
    write_kubeconfig(path, {"tokenFile": "token", "client-certificate": "/abs/c.crt", "client-key": "k.key"},
                     {"server": "https://h:1", "certificate-authority": "ca.crt", "insecure-skip-tls-verify": True})
    config = load_kubeconfig(str(path))
    assert config.token_file == str(tmp_path / "kube" / "token")
    assert config.ca_file == str(tmp_path / "kube" / "ca.crt")
    assert (config.client_cert_file, config.client_key_file) == ("/abs/c.crt", str(tmp_path / "kube" / "k.key"))
    assert config.insecure_skip_tls_verify is True

    bare = load_kubeconfig(str(path), context="bare")
    assert bare.server == "https://wrong:1" and bare.token is None


@pytest.mark.parametrize("user, message", [
    ({"exec": {"command": "aws"}}, "exec is not supported"),
    ({"auth-provider": {"name": "oidc"}}, "auth-provider is not supported"),
    ({"username": "a", "password": "b"}, "is not supported"),
])
def test_plugin_and_password_users_are_refused(tmp_path, user, message):
    path = tmp_path / "config"
    write_kubeconfig(path, user)
    with pytest.raises(ConfigError, match=message):
        load_kubeconfig(str(path))


def test_missing_pieces_are_named(tmp_path):
    path = tmp_path / "config"
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        load_kubeconfig(str(path))
    write_kubeconfig(path, {"token": "t"})
    with pytest.raises(ConfigError, match="no context named 'nope'"):
        load_kubeconfig(str(path), context="nope")
    path.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(ConfigError, match="no current-context"):
        load_kubeconfig(str(path))
