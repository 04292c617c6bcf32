"""The pieces every API model is made of: CEL admission rules in the CRD's shape and the base model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None,
        optional_old_self: bool = False) -> dict[str, Any]:
    """One CEL admission rule, in the shape of ``x-kubernetes-validations`` items."""
    item: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        item["fieldPath"] = field_path
    if reason:
        item["reason"] = reason
    if optional_old_self:
        item["optionalOldSelf"] = True
    return item


def rules(*items: dict[str, Any]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(items)}


class ApiModel(BaseModel):
    # Unknown fields are ignored when reading objects from the API server, so an operator
    # older than its CRD keeps working.
    model_config = ConfigDict(populate_by_name=True, extra="ignore", use_enum_values=True)
