"""os_container_infra_status: one look at a Magnum cluster (or the toolkit's Heat stack of a Swarm
without Magnum) while something waits on it.

The lifecycle role polls this module (``until: status.settled``) instead of one silent wait inside
os_container_infra, so that the operator sees, every few seconds, the cluster's status, its
status_reason, how many nodes are ACTIVE so far and how long the wait has taken (the toolkit's
``container_infra_progress`` callback prints ``progress`` on each retry). One poll costs the cluster
GET plus node discovery: one server listing (and, in the Heat era, the stack and its nested resources
in one request). A stack (``stack: true``) costs two requests: the stack, and its server resources in
one nested listing; a server resource Heat finished counts as an ACTIVE node (Heat waits for ACTIVE).
Both paths wait the same way: the roles ask for every cluster first, then poll this module for each.
"""

from __future__ import annotations

from typing import Any

from container_infra.cluster_status import look

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "started": {"type": "float"},
    "absent_is_settled": {"type": "bool", "default": False},
    "stack": {"type": "bool", "default": False},
}


def run(module, cloud) -> dict[str, Any]:
    params = module.params
    return look(cloud, params["name"], started=params.get("started"), absent_is_settled=params["absent_is_settled"],
                stack=params.get("stack", False))
