"""A minimal kubeconfig reader: the current (or a named) context's server, CA and user.

Users with a token (``token``, ``tokenFile``) or a client certificate (``client-certificate``/
``client-key``, as files or ``-data``) are supported; ``exec`` and ``auth-provider`` plugins and
passwords are not (``ConfigError``).  Relative file names are relative to the kubeconfig's
directory, as kubectl has them.

The standard library reads no YAML, so ``parse_yaml`` reads the block-style subset kubectl and
YAML dumpers write for kubeconfigs: nested mappings and ``-`` sequences, plain or quoted
scalars, comments, empty ``{}``/``[]``.  JSON (a subset of YAML) always works.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any, List, Optional, Tuple

from .kubeapi import Config, ConfigError

_KEY = re.compile(r"""^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^'"#][^#]*?|[^'"#]):(?:\s+(.*))?$""")
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")  # YAML 1.1 also reads 0[0-7]+ as octal; "09" is text


def _strip_comment(text: str) -> str:
    """The line without a ``#`` comment (a ``#`` at the start or after a blank, outside quotes)."""
    quote, i = None, 0
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'":
                if text[i + 1:i + 2] == "'":
                    i += 1  # '' is a quote inside single quotes
                else:
                    quote = None
        elif quote == '"':
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = None
        elif ch in "'\"" and (i == 0 or text[i - 1] in " \t:-[{,"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    return text.rstrip()


def _scalar(text: str, where: int) -> Any:
    text = text.strip()
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if text in ("{}", "[]") or text[0] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            raise ConfigError(f"line {where}: flow collections other than JSON are not supported: {text}") from None
    if text[0] == "'":
        if len(text) < 2 or text[-1] != "'":
            raise ConfigError(f"line {where}: unterminated quoted string")
        return text[1:-1].replace("''", "'")
    if text[0] == '"':
        try:
            return json.loads(text)
        except ValueError:
            raise ConfigError(f"line {where}: unsupported double-quoted string: {text}") from None
    if text[0] in "|>&*!%@`":
        raise ConfigError(f"line {where}: YAML block scalars, anchors and tags are not supported")
    if _INT.match(text):
        return int(text)
    if re.match(r"^0[0-7]+$", text):
        return int(text, 8)
    return text


class _Lines:
    def __init__(self, text: str):
        self.items: List[Tuple[int, str, int]] = []  # (indent, content, line number)
        for number, line in enumerate(text.splitlines(), 1):
            if "\t" in line[:len(line) - len(line.lstrip())]:
                raise ConfigError(f"line {number}: tabs in indentation")
            content = _strip_comment(line)
            if not content.strip() or content.strip() in ("---", "..."):
                continue
            self.items.append((len(content) - len(content.lstrip(" ")), content.strip(), number))


def _block(lines: _Lines, i: int, indent: int) -> Tuple[Any, int]:
    """The node starting at item ``i``, whose lines are at ``indent``."""
    _, content, number = lines.items[i]
    if content == "-" or content.startswith("- "):
        return _sequence(lines, i, indent)
    if _KEY.match(content):
        return _mapping(lines, i, indent)
    return _scalar(content, number), i + 1


def _nested(lines: _Lines, i: int, indent: int, allow_same_indent_sequence: bool) -> Tuple[Any, int]:
    """The value on the lines after a ``key:`` or ``-`` with nothing after it."""
    if i < len(lines.items):
        next_indent, content, _ = lines.items[i]
        if next_indent > indent or (allow_same_indent_sequence and next_indent == indent
                                    and (content == "-" or content.startswith("- "))):
            return _block(lines, i, next_indent)
    return None, i


def _mapping(lines: _Lines, i: int, indent: int) -> Tuple[dict, int]:
    out: dict = {}
    while i < len(lines.items):
        line_indent, content, number = lines.items[i]
        if line_indent < indent:
            break
        if line_indent > indent:
            raise ConfigError(f"line {number}: unexpected indentation")
        m = _KEY.match(content)
        if m is None or content.startswith("- "):
            break
        key = _scalar(m.group(1), number)
        rest = m.group(2)
        if rest is not None and rest.strip():
            out[key], i = _scalar(rest, number), i + 1
        else:
            out[key], i = _nested(lines, i + 1, indent, allow_same_indent_sequence=True)
    return out, i


def _sequence(lines: _Lines, i: int, indent: int) -> Tuple[list, int]:
    out: list = []
    while i < len(lines.items):
        line_indent, content, number = lines.items[i]
        if line_indent != indent or not (content == "-" or content.startswith("- ")):
            if line_indent > indent:
                raise ConfigError(f"line {number}: unexpected indentation")
            break
        rest = content[1:].lstrip(" ")
        if not rest:
            value, i = _nested(lines, i + 1, indent, allow_same_indent_sequence=False)
        else:
            # "- key: value": the item's first line, as if it stood alone at the item's indent.
            item_indent = indent + len(content) - len(rest)
            lines.items[i] = (item_indent, rest, number)
            value, i = _block(lines, i, item_indent)
        out.append(value)
    return out, i


def parse_yaml(text: str) -> Any:
    """The document in ``text``: JSON, or the block-style YAML subset of the module docstring."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    lines = _Lines(text)
    if not lines.items:
        return None
    value, i = _block(lines, 0, lines.items[0][0])
    if i != len(lines.items):
        raise ConfigError(f"line {lines.items[i][2]}: cannot read this line")
    return value


def _named(entries: Any, name: str, kind: str) -> dict:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(kind) or {}
    raise ConfigError(f"kubeconfig: no {kind} named {name!r}")


def _decode(data: str, what: str) -> str:
    try:
        return base64.b64decode(data, validate=False).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"kubeconfig: {what} is not base64 PEM: {e}") from None


def load_kubeconfig(path: str, context: Optional[str] = None) -> Config:
    """The ``Config`` of ``context`` (default: ``current-context``) in the kubeconfig at ``path``."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = parse_yaml(f.read())
    except OSError as e:
        raise ConfigError(f"cannot read kubeconfig {path}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping")
    name = context or doc.get("current-context")
    if not name:
        raise ConfigError(f"kubeconfig {path} has no current-context")
    ctx = _named(doc.get("contexts"), name, "context")
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster") or ""), "cluster")
    user = _named(doc.get("users"), str(ctx.get("user")), "user") if ctx.get("user") else {}
    base = os.path.dirname(os.path.abspath(path))

    def file(value: Any) -> Optional[str]:
        return os.path.join(base, os.path.expanduser(str(value))) if value else None

    for unsupported in ("exec", "auth-provider", "password", "username"):
        if user.get(unsupported):
            raise ConfigError(f"kubeconfig user {ctx.get('user')!r}: {unsupported} is not supported "
                              "(use a token or a client certificate)")
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig cluster {ctx.get('cluster')!r} has no server")
    return Config(
        server=str(cluster["server"]),
        token=user.get("token"),
        token_file=file(user.get("tokenFile")),
        ca_file=file(cluster.get("certificate-authority")),
        ca_data=_decode(cluster["certificate-authority-data"], "certificate-authority-data")
        if cluster.get("certificate-authority-data") else None,
        client_cert_file=file(user.get("client-certificate")),
        client_key_file=file(user.get("client-key")),
        client_cert_data=_decode(user["client-certificate-data"], "client-certificate-data")
        if user.get("client-certificate-data") else None,
        client_key_data=_decode(user["client-key-data"], "client-key-data") if user.get("client-key-data") else None,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
    )
