"""Certificates of the local cluster, made with the ``openssl`` command.

(The ``openssl`` CLI is on every machine we run on, so it saves a Python
dependency.)  All keys are RSA 2048 and certificates last ten years: a local
cluster never lives long enough for renewal to matter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

APISERVER_SANS = (
    "IP:127.0.0.1",
    "IP:10.0.0.1",  # first ClusterIP of --service-cluster-ip-range: in-cluster clients dial it
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)


FILES = ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key", "sa.key", "sa.pub")


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make the local cluster's certificates")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def _signed(d: Path, name: str, subject: str, extensions: str) -> None:
    """Make ``name.key`` and ``name.crt`` signed by the CA in ``d``."""
    ext = d / f"{name}.ext"
    ext.write_text(extensions + "\nbasicConstraints = critical, CA:FALSE\n"
                   "keyUsage = critical, digitalSignature, keyEncipherment\n")
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-subj", subject, "-out", f"{name}.csr", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
             "-days", "3650", "-sha256", "-extfile", ext.name, "-out", f"{name}.crt", cwd=d)
    (d / f"{name}.csr").unlink()
    ext.unlink()


def make_certs(d: Path) -> Path:
    """Create (once) in ``d`` the files named in FILES: a CA, the apiserver's serving
    cert, an admin client cert and the service-account key pair."""
    d.mkdir(parents=True, exist_ok=True)
    if all((d / f).exists() for f in FILES):
        return d
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "3650", "-sha256", "-subj", "/CN=msjob-local-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _signed(d, "apiserver", "/CN=kube-apiserver",
            f"extendedKeyUsage = serverAuth\nsubjectAltName = {', '.join(APISERVER_SANS)}")
    # O=system:masters is bound to cluster-admin by the default RBAC policy.
    _signed(d, "admin", "/O=system:masters/CN=msjob-admin", "extendedKeyUsage = clientAuth")
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=d)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return d


def make_serving_cert(d: Path, name: str, sans: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")) -> Path:
    """Create (once) ``name.crt``/``name.key`` in ``d`` (made by make_certs): a serving cert
    signed by the cluster's CA, e.g. for a webhook the API server calls by URL."""
    if not ((d / f"{name}.crt").exists() and (d / f"{name}.key").exists()):
        _signed(d, name, f"/CN={name}", f"extendedKeyUsage = serverAuth\nsubjectAltName = {', '.join(sans)}")
        (d / f"{name}.key").chmod(0o600)
    return d
