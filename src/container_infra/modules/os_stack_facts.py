"""os_stack_facts: a Heat stack's status, outputs, resources (nested) and servers, read-only
(:mod:`container_infra.heat` reads it)."""

from __future__ import annotations

from typing import Any

from container_infra.heat import stack_facts

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "stack": {"type": "str", "required": True, "aliases": ["name", "id"]},
    "nested_depth": {"type": "int", "default": 5},
    "resource_type": {"type": "list", "elements": "str", "aliases": ["type"]},
    "resource_name": {"type": "str", "aliases": ["name_pattern"]},
    "resource_status": {"type": "list", "elements": "str", "aliases": ["status"]},
    "missing_ok": {"type": "bool", "default": False},
}


def run(module, cloud) -> dict:
    params = module.params
    facts = stack_facts(cloud.heat(), params["stack"], params["nested_depth"], params.get("resource_type"),
                        params.get("resource_name"), params.get("resource_status"),
                        missing_ok=params["missing_ok"])
    return {"changed": False, **facts}
