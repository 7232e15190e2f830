"""os_container_infra_status: one look at a Magnum cluster while something waits on it.

The lifecycle role polls this module (``until: status.settled``) instead of one silent wait inside
os_container_infra, so that the operator sees, every few seconds, the cluster's status, its
status_reason, how many nodes are ACTIVE so far and how long the wait has taken (the toolkit's
``container_infra_progress`` callback prints ``progress`` on each retry). One poll costs the cluster
GET plus node discovery: one server listing (and, in the Heat era, the stack and its nested resources
in one request).
"""

from __future__ import annotations

import time
from typing import Any

from container_infra import discovery
from container_infra import magnum as mg
from container_infra.cloud.errors import CloudError
from container_infra.magnum_cluster import progress_line, settled

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "started": {"type": "float"},
    "absent_is_settled": {"type": "bool", "default": False},
}


def run(module, cloud) -> dict[str, Any]:
    params = module.params
    name = params["name"]
    magnum = cloud.magnum()
    elapsed = time.time() - params["started"] if params.get("started") else None
    brief = mg.find_cluster(magnum, name)
    cluster = mg.get_cluster(magnum, brief["uuid"], missing_ok=True) if brief else None
    if cluster is None:
        if not params["absent_is_settled"]:
            raise CloudError(f"cluster {name} was not found in the project; create it first (state=present), "
                             "or check its name with `openstack coe cluster list`")
        return {"changed": False, "found": False, "status": None, "settled": True, "operation_failed": False,
                "nodes_active": 0, "nodes_expected": 0, "nodes": [], "elapsed": elapsed,
                "progress": progress_line(name, None, "deleted", 0, 0, elapsed)}
    status = cluster.get("status")
    nodegroups = mg.list_nodegroups(magnum, cluster["uuid"])
    expected = sum(int(ng.get("node_count") or 0) for ng in nodegroups) or \
        int(cluster.get("master_count") or 0) + int(cluster.get("node_count") or 0)
    nodes: list[dict] = []
    if mg.stack_ref(cluster):
        try:
            nodes = discovery.discover(cloud, cluster, nodegroups)["nodes"]
        except CloudError:
            if settled(status):
                raise  # a settled cluster's nodes must be found: the role attaches its networks to them
            nodes = []  # the stack is still being made: no nodes to count yet
    active = sum(1 for n in nodes if n.get("status") == "ACTIVE")
    return {
        "changed": False,
        "found": True,
        "uuid": cluster["uuid"],
        "status": status,
        "status_reason": cluster.get("status_reason"),
        "settled": settled(status),
        # Not "failed": Ansible reads that key as the task's own failure, and the role's sentence about
        # the failed cluster would never be reached (run_module refuses it).
        "operation_failed": bool(status) and status.endswith("_FAILED"),
        "nodes_active": active,
        "nodes_expected": expected,
        # The nodes as this poll found them, so that the role attaches the provider networks to the nodes
        # of its last poll without discovering them a second time.
        "nodes": [{k: n.get(k) for k in ("name", "id", "role", "nodegroup", "status")} for n in nodes],
        "elapsed": elapsed,
        "driver_kind": cluster.get("driver_kind"),
        "progress": progress_line(name, status, cluster.get("status_reason"), active, expected, elapsed),
    }
