#!/usr/bin/env python3
"""Regenerate ``operator/msjob_operator/api/podtemplatespec.json`` from Kubernetes' OpenAPI v3 spec.

The MSJob CRD embeds a full PodTemplateSpec schema (so ``kubectl explain`` works, defaults apply and
template fields are not pruned).  CRDs cannot use ``$ref``, so this script does for the core/v1 spec
what controller-gen does for Go types: it turns the OpenAPI v3 document that ships inside the
``k8s.io/kubernetes`` Go module into one self-contained *structural* schema:

* every ``$ref`` is inlined (``allOf: [{$ref}]`` with sibling keys is merged, siblings win);
* IntOrString becomes ``x-kubernetes-int-or-string: true``, Quantity becomes controller-gen's
  ``anyOf: [integer, string]`` + ``pattern`` + ``x-kubernetes-int-or-string``;
* ObjectMeta becomes the part of it a CRD may hold in an embedded template (name, namespace,
  generateName, labels, annotations, finalizers), so template labels and annotations are kept;
* object and list defaults, defaults of required fields and defaults of list items are dropped
  (a default on a required field would silently turn a missing value into ``""`` or ``0``);
  scalar defaults of optional fields are kept (controller-gen keeps ``+default`` markers too);
* ``x-kubernetes-list-type`` / ``-list-map-keys`` / ``-map-type`` are kept; a ``map`` list whose
  keys are neither required nor defaulted would be rejected by the API server, so it falls back
  to ``atomic``;
* ``x-kubernetes-patch-*``, ``x-kubernetes-unions``, ``x-kubernetes-group-version-kind`` and the
  ``int-or-string`` format are dropped;
* descriptions are shortened (see ``shorten``) to keep the CRD well below the 1 MiB Helm release
  limit and the 1.5 MiB etcd object limit, since the CRD carries the template once per replica type.

Usage::

    python scripts/update_podtemplate_schema.py            # rewrite the JSON file
    python scripts/update_podtemplate_schema.py --check    # exit 1 if the JSON file is stale

The spec is found through ``go env GOMODCACHE``; if the module is missing, fetch it with
``go mod download k8s.io/kubernetes@<version>``.  ``--spec FILE`` reads another copy.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

KUBERNETES_VERSION = "v1.37.1"
SPEC_IN_MODULE = "api/openapi-spec/v3/api__v1_openapi.json"
ROOT_TYPE = "io.k8s.api.core.v1.PodTemplateSpec"

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "operator" / "msjob_operator" / "api" / "podtemplatespec.json"

REF_PREFIX = "#/components/schemas/"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
MICRO_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"

# The fields of ObjectMeta that make sense in a template (controller-gen's
# generateEmbeddedObjectMeta keeps the same ones).
EMBEDDED_META_FIELDS = ("annotations", "finalizers", "generateName", "labels", "name", "namespace")

# controller-gen's pattern for resource.Quantity.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

# Keywords copied as they are (after conversion of nested schemas).
_PLAIN_KEYS = {
    "type", "format", "description", "required", "enum", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
    "uniqueItems", "minProperties", "maxProperties", "multipleOf",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
}
# Keywords that have no place in a CRD schema.
_DROPPED_KEYS = {
    "x-kubernetes-patch-strategy", "x-kubernetes-patch-merge-key", "x-kubernetes-unions",
    "x-kubernetes-group-version-kind",
}
# Formats the API server knows; others would only produce warnings.
_KNOWN_FORMATS = {"int32", "int64", "float", "double", "byte", "date", "date-time", "password"}


class ConversionError(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# Descriptions

_MAX_DESCRIPTION = 400


def shorten(text: str, limit: int = _MAX_DESCRIPTION) -> str:
    """A short description that still tells ``kubectl explain`` readers what the field is.

    Keeps the first paragraph (the summary Kubernetes writes for every field), drops "More info"
    links and deprecation essays beyond it, and keeps "Possible enum values" lists in a compact form.
    Cuts at a sentence boundary when the paragraph is longer than ``limit``.
    """
    text = text.strip()
    if not text:
        return text
    enum_values = ""
    m = re.search(r"\n\nPossible enum values:\n(.*)$", text, re.S)
    if m:
        values = re.findall(r'^ - `"?([^`"]*)"?`', m.group(1), re.M)
        if values:
            enum_values = " Possible values: " + ", ".join(f'"{v}"' for v in values) + "."
        text = text[: m.start()]
    paragraph = text.split("\n\n", 1)[0]
    paragraph = re.sub(r"\s*More info: \S+", "", paragraph)
    paragraph = re.sub(r"\s+", " ", paragraph).strip()
    if len(paragraph) > limit:
        cut = paragraph[:limit]
        end = max(cut.rfind(". "), cut.rfind(".) "))
        if end >= limit // 3:
            paragraph = cut[: end + 1]
        else:
            space = cut.rfind(" ")
            paragraph = cut[: space if space > 0 else limit].rstrip(",;:") + " ..."
    return paragraph + enum_values


# ----------------------------------------------------------------------------------------------
# Conversion


class Converter:
    def __init__(self, schemas: dict[str, Any], *, shorten_descriptions: bool = True):
        self.schemas = schemas
        self.shorten_descriptions = shorten_descriptions
        self.notes: list[str] = []

    # -- references

    def ref(self, ref: str, stack: tuple[str, ...]) -> dict[str, Any]:
        if not ref.startswith(REF_PREFIX):
            raise ConversionError(f"unsupported $ref {ref!r}")
        name = ref[len(REF_PREFIX):]
        if name in stack:
            raise ConversionError(f"recursive type {' -> '.join(stack + (name,))}: CRD schemas cannot express it")
        if name == INT_OR_STRING:
            return {"x-kubernetes-int-or-string": True}
        if name == QUANTITY:
            return {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": QUANTITY_PATTERN,
                "x-kubernetes-int-or-string": True,
            }
        if name in (TIME, MICRO_TIME):
            return {"type": "string", "format": "date-time"}
        if name == RAW_EXTENSION:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if name not in self.schemas:
            raise ConversionError(f"$ref to unknown schema {name}")
        target = self.schemas[name]
        if name == OBJECT_META:
            props = target.get("properties", {})
            missing = [f for f in EMBEDDED_META_FIELDS if f not in props]
            if missing:
                raise ConversionError(f"ObjectMeta lacks {missing}")
            target = {
                "type": "object",
                "properties": {f: props[f] for f in EMBEDDED_META_FIELDS},
            }
        # The referenced type's own description stays unless the referring property has one.
        return self.node(target, stack + (name,), where=name)

    # -- schema nodes

    def node(self, node: dict[str, Any], stack: tuple[str, ...], where: str) -> dict[str, Any]:
        node = dict(node)
        base: dict[str, Any] = {}
        if "allOf" in node:
            all_of = node.pop("allOf")
            if len(all_of) != 1 or set(all_of[0]) != {"$ref"}:
                raise ConversionError(f"{where}: allOf other than a single $ref is not supported")
            base = self.ref(all_of[0]["$ref"], stack)
        if "$ref" in node:
            if base:
                raise ConversionError(f"{where}: both allOf and $ref")
            base = self.ref(node.pop("$ref"), stack)
        if "oneOf" in node or "anyOf" in node:
            raise ConversionError(f"{where}: oneOf/anyOf outside IntOrString and Quantity is not supported")

        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROPPED_KEYS:
                continue
            if key == "properties":
                out[key] = {name: self.node(sub, stack, f"{where}.{name}") for name, sub in value.items()}
            elif key == "items":
                out[key] = self.node(value, stack, f"{where}[]")
            elif key == "additionalProperties":
                if isinstance(value, bool):
                    raise ConversionError(f"{where}: additionalProperties: {value} has no structural equivalent here")
                out[key] = self.node(value, stack, f"{where}{{}}")
            elif key == "default":
                out[key] = value
            elif key == "format":
                if value in _KNOWN_FORMATS:
                    out[key] = value
            elif key == "description":
                text = shorten(value) if self.shorten_descriptions else value
                if text:
                    out[key] = text
            elif key in _PLAIN_KEYS:
                out[key] = copy.deepcopy(value)
            else:
                raise ConversionError(f"{where}: unsupported keyword {key!r}")

        # Siblings of a $ref (description, default, ...) win over the referenced schema.
        merged = {**base, **out} if base else out
        self.fix_defaults(merged, where)
        self.fix_list_map(merged, where)
        if "type" not in merged and not merged.get("x-kubernetes-int-or-string") \
                and not merged.get("x-kubernetes-preserve-unknown-fields"):
            if "properties" in merged or "additionalProperties" in merged:
                merged["type"] = "object"
            else:
                raise ConversionError(f"{where}: schema without a type")
        if merged.get("type") == "object" and "properties" not in merged and "additionalProperties" not in merged \
                and not merged.get("x-kubernetes-preserve-unknown-fields"):
            self.notes.append(f"{where}: object without properties; its content would be pruned")
        return merged

    def fix_defaults(self, node: dict[str, Any], where: str) -> None:
        if isinstance(node.get("default"), (dict, list)):
            del node["default"]
        required = set(node.get("required", ()))
        for name, prop in node.get("properties", {}).items():
            if "default" in prop and name in required:
                del prop["default"]
        for key in ("items", "additionalProperties"):
            sub = node.get(key)
            if isinstance(sub, dict):
                sub.pop("default", None)

    def fix_list_map(self, node: dict[str, Any], where: str) -> None:
        list_type = node.get("x-kubernetes-list-type")
        items = node.get("items", {})
        if list_type == "set":
            # Items of a set must be scalars, atomic objects or atomic lists.
            atomic = (items.get("type") not in ("object", "array")
                      or (items.get("type") == "object" and items.get("x-kubernetes-map-type") == "atomic")
                      or (items.get("type") == "array" and items.get("x-kubernetes-list-type", "atomic") == "atomic"))
            if not atomic:
                self.notes.append(f"{where}: set of non-atomic items; list-type set to atomic")
                node["x-kubernetes-list-type"] = "atomic"
        if list_type != "map":
            node.pop("x-kubernetes-list-map-keys", None)
            return
        keys = node.get("x-kubernetes-list-map-keys") or []
        props = items.get("properties", {})
        required = set(items.get("required", ()))
        bad = [k for k in keys if k not in props or (k not in required and "default" not in props[k])
               or props[k].get("type") not in ("string", "integer", "number", "boolean")]
        if items.get("type") != "object" or not keys or bad:
            self.notes.append(f"{where}: list-map keys {keys} are not all required or defaulted; "
                              "list-type set to atomic")
            node["x-kubernetes-list-type"] = "atomic"
            node.pop("x-kubernetes-list-map-keys", None)


def convert(spec: dict[str, Any], *, shorten_descriptions: bool = True) -> tuple[dict[str, Any], list[str]]:
    """The structural PodTemplateSpec schema, and notes about anything that had to be changed."""
    schemas = spec["components"]["schemas"]
    conv = Converter(schemas, shorten_descriptions=shorten_descriptions)
    out = conv.ref(REF_PREFIX + ROOT_TYPE, ())
    return out, conv.notes


# ----------------------------------------------------------------------------------------------
# Files


def find_spec(version: str) -> Path:
    try:
        cache = subprocess.run(["go", "env", "GOMODCACHE"], check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"cannot run 'go env GOMODCACHE' ({exc}); pass --spec FILE") from exc
    path = Path(cache) / f"k8s.io/kubernetes@{version}" / SPEC_IN_MODULE
    if not path.is_file():
        raise SystemExit(f"{path} not found; fetch it with: go mod download k8s.io/kubernetes@{version}")
    return path


def render(schema: dict[str, Any], version: str) -> str:
    document = {
        "comment": "Generated by scripts/update_podtemplate_schema.py from the OpenAPI v3 spec of "
                   "k8s.io/kubernetes; do not edit.",
        "kubernetesVersion": version,
        "schema": schema,
    }
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=KUBERNETES_VERSION,
                        help="k8s.io/kubernetes module version (default %(default)s)")
    parser.add_argument("--spec", type=Path,
                        help="api__v1_openapi.json to read instead of the one in the Go module cache")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--full-descriptions", action="store_true", help="keep descriptions unshortened")
    parser.add_argument("--check", action="store_true", help="exit 1 if the output file is stale instead of writing it")
    args = parser.parse_args(argv)

    spec_path = args.spec or find_spec(args.version)
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    schema, notes = convert(spec, shorten_descriptions=not args.full_descriptions)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    text = render(schema, args.version)

    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(f"{args.output} is stale; regenerate it with: python scripts/update_podtemplate_schema.py",
                  file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(text.encode())} bytes) from {spec_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
