"""os_port_prune: detach and delete the ports of a tag that are no longer wanted
(:func:`container_infra.server_ports.prune`)."""

from __future__ import annotations

from typing import Any

from container_infra.cloud.rest import Rest
from container_infra.server_ports import prune

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "tags": {"type": "list", "elements": "str", "required": True},
    "keep": {"type": "list", "elements": "str", "default": []},
}


def run(module, cloud) -> dict:
    """The runner for :func:`container_infra.cloud.module.run_module`."""
    params = module.params
    return prune(Rest(cloud), params["tags"], params["keep"], check_mode=module.check_mode,
                 wait=params.get("wait", True), timeout=params.get("timeout", 600),
                 poll_interval=params.get("poll_interval", 5.0))
