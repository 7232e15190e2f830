"""Where a cluster stands while something waits on it: one look at a Magnum cluster or at the toolkit's
Heat stack of a Swarm without Magnum, in the same shape (status, settled, failed, nodes ACTIVE, a progress
line). os_container_infra_status polls it on both paths: the one waiting rule of the roles."""

from __future__ import annotations

import time
from typing import Any

from container_infra import discovery, heat
from container_infra import magnum as mg
from container_infra.cloud.errors import CloudError
from container_infra.magnum_cluster import progress_line, settled
from container_infra.swarm_spec import STACK_DONE


def _absent(name: str, elapsed: float | None) -> dict[str, Any]:
    return {"changed": False, "found": False, "status": None, "settled": True, "operation_failed": False,
            "nodes_active": 0, "nodes_expected": 0, "nodes": [], "elapsed": elapsed,
            "progress": progress_line(name, None, "deleted", 0, 0, elapsed)}


def stack_status(cloud, name: str, absent_is_settled: bool, elapsed: float | None) -> dict[str, Any]:
    """The toolkit's Heat stack (a Swarm without Magnum): settled when nothing is in progress; an operation
    failed when it settled anywhere but a whole stack (ROLLBACK_COMPLETE is a create Heat undid)."""
    facts = heat.stack_facts(cloud.heat(), name, nested_depth=3, types=[heat.SERVER_TYPE], missing_ok=True)
    if not facts["found"]:
        if not absent_is_settled:
            raise CloudError(f"Heat stack {name} was not found in the project; create it first (state=present), "
                             "or check its name with `openstack stack list`")
        return _absent(name, elapsed)
    stack = facts["stack"]
    status = stack.get("status")
    servers = facts["servers"]
    active = sum(1 for server in servers if str(server.get("status") or "").endswith("_COMPLETE"))
    done = settled(status)
    return {
        "changed": False,
        "found": True,
        "uuid": stack["id"],
        "status": status,
        "status_reason": stack.get("status_reason"),
        "settled": done,
        "operation_failed": done and status not in STACK_DONE,
        "nodes_active": active,
        "nodes_expected": len(servers),
        "nodes": [],
        "elapsed": elapsed,
        "driver_kind": "heat-swarm",
        "progress": progress_line(name, status, stack.get("status_reason"), active, len(servers), elapsed),
    }


def look(cloud, name: str, started: float | None = None, absent_is_settled: bool = False,
         stack: bool = False) -> dict[str, Any]:
    """One look at cluster (or, with ``stack``, Heat stack) ``name``; ``started`` (epoch seconds) gives ``elapsed``."""
    elapsed = time.time() - started if started else None
    if stack:
        return stack_status(cloud, name, absent_is_settled, elapsed)
    magnum = cloud.magnum()
    brief = mg.find_cluster(magnum, name)
    cluster = mg.get_cluster(magnum, brief["uuid"], missing_ok=True) if brief else None
    if cluster is None:
        if not absent_is_settled:
            raise CloudError(f"cluster {name} was not found in the project; create it first (state=present), "
                             "or check its name with `openstack coe cluster list`")
        return _absent(name, elapsed)
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
