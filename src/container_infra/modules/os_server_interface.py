"""os_server_interface: ensure ports on named networks of one or many servers
(:mod:`container_infra.server_ports` finds, plans and applies them)."""

from __future__ import annotations

from typing import Any

from container_infra.cloud.rest import Rest
from container_infra.server_ports import VNIC_TYPES, ensure

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "servers": {"type": "list", "elements": "str", "required": True, "aliases": ["server"]},
    "interfaces": {
        "type": "list", "elements": "dict", "required": True, "aliases": ["networks"],
        "options": {
            "network": {"type": "str", "required": True},
            "subnet": {"type": "str"},
            "fixed_ip": {"type": "str"},
            "port_name": {"type": "str"},
            "vnic_type": {"type": "str", "choices": VNIC_TYPES},
            "security_groups": {"type": "list", "elements": "str"},
            "port_security_enabled": {"type": "bool"},
            "tag": {"type": "str"},
        },
    },
    "port_tags": {"type": "list", "elements": "str", "default": []},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "concurrency": {"type": "int", "default": 10},
}


def run(module, cloud) -> dict:
    """The runner for :func:`container_infra.cloud.module.run_module`."""
    out = ensure(Rest(cloud), module.params, check_mode=module.check_mode)
    diff = out.pop("diff")
    if getattr(module, "_diff", False):
        out["diff"] = diff
    return out

