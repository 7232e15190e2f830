"""The Swarm without Magnum (the toolkit's own Heat stack): what a cluster spec may ask of it, where its
provider networks go, and which workers a shrink removes. The cluster role reads these through its filters."""

from __future__ import annotations

import re
from typing import Any

from container_infra.magnum import (
    DEFAULT_MASTER,
    DEFAULT_WORKER,
    default_nodegroup,
    node_count,
    placed_on,
    placement_problems,
)

# A nodegroup's name is part of its servers' host names (<cluster>-<nodegroup>-<index>).
SWARM_NODEGROUP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
# Server names <cluster>-manager-<i> and <cluster>-worker-<i> belong to the default nodegroups.
SWARM_RESERVED = (DEFAULT_MASTER, DEFAULT_WORKER, "manager", "worker")
SWARM_NODEGROUP_KEYS = ("name", "role", "flavor", "image", "node_count")
# Nova makes the provider ports at boot from the network alone (on bare metal it binds them as baremetal).
SWARM_NETWORK_KEYS = ("network", "roles", "nodegroups")


def _count_problem(where: str, value: Any, low: int) -> str | None:
    if isinstance(value, bool) or not str(value).lstrip("-").isdigit() or int(value) < low:
        return f"{where} is {value!r}; give a whole number of {low} or more"
    return None


def swarm_spec_problems(spec: dict) -> list[str]:
    """What in a C(heat-swarm) cluster spec the toolkit's stack cannot build, one sentence each."""
    name = spec.get("name")
    problems = [p for p in (_count_problem("master_count", spec.get("master_count", 1), 1),
                            _count_problem("node_count", node_count(spec), 0)) if p]
    seen: list[str] = []
    for index, nodegroup in enumerate(spec.get("nodegroups") or []):
        group = (nodegroup or {}).get("name")
        where = f"nodegroups[{group if isinstance(group, str) and group else index}]"
        if not isinstance(group, str) or not SWARM_NODEGROUP_NAME.match(group):
            problems.append(f"{where}: name {group!r} must be 1 to 32 lowercase letters, digits or '-' (it becomes "
                            "part of the servers' host names)")
        elif group in SWARM_RESERVED:
            problems.append(f"{where}: {group} is the name of a default nodegroup; give the extra nodegroup "
                            "another name (the managers are master_count, the default workers node_count)")
        elif group in seen:
            problems.append(f"{where} is listed twice; give each nodegroup one entry")
        else:
            seen.append(group)
        if (nodegroup or {}).get("role", "worker") != "worker":
            problems.append(f"{where}: role {nodegroup.get('role')!r}: a Swarm without Magnum takes extra nodegroups "
                            "of workers only; its managers are master_count on master_flavor")
        if not (nodegroup or {}).get("flavor"):
            problems.append(f"{where} has no flavor; name the flavor of its servers")
        count = _count_problem(f"{where}.node_count", node_count(nodegroup), 0)
        if count:
            problems.append(count)
        unread = sorted(set(nodegroup or {}) - set(SWARM_NODEGROUP_KEYS))
        if unread:
            problems.append(f"{where}: a Swarm without Magnum does not read {', '.join(unread)} (Magnum's keys); "
                            f"remove them (it reads {', '.join(SWARM_NODEGROUP_KEYS)})")
    groups = [("master", DEFAULT_MASTER), ("worker", DEFAULT_WORKER)] + [("worker", g) for g in seen]
    for index, network in enumerate(spec.get("networks") or []):
        net = (network or {}).get("network")
        where = f"networks[{net or index}]"
        if not net:
            problems.append(f"{where} has no network; name the provider network")
            continue
        unread = sorted(set(network) - set(SWARM_NETWORK_KEYS))
        if unread:
            problems.append(f"{where}: a Swarm without Magnum does not read {', '.join(unread)} (Nova makes its "
                            f"ports at boot from the network alone); remove them (it reads "
                            f"{', '.join(SWARM_NETWORK_KEYS)})")
        problems.extend(placement_problems(name, where, network, groups))
    return problems


def swarm_networks(networks: list[dict] | None, role: str, nodegroup: str | None = None) -> list[str]:
    """The provider networks that nodes of ``role`` in ``nodegroup`` (default: the role's default nodegroup)
    get, each once, in the spec's order."""
    group = nodegroup or default_nodegroup(role)
    out = []
    for network in networks or []:
        if placed_on(network, role, group) and network["network"] not in out:
            out.append(network["network"])
    return out


def swarm_stack_nodegroups(spec: dict) -> list[dict]:
    """The extra nodegroups of a C(heat-swarm) spec as container_infra_swarm_stack takes them, each with the
    provider networks its nodes get."""
    return [{"name": ng["name"], "flavor": ng["flavor"], "image": ng.get("image") or spec.get("image"),
             "node_count": int(node_count(ng)),
             "networks": swarm_networks(spec.get("networks"), "worker", ng["name"])}
            for ng in spec.get("nodegroups") or []]


def heat_resource_name(nodegroup: str) -> str:
    """The stack's ResourceGroup of an extra nodegroup (names are [a-z0-9-], so the mapping is one to one)."""
    return "swarm_nodegroup_" + nodegroup.replace("-", "_")


def leaving_workers(hostvars: dict[str, dict], stack_name: str, worker_count: int,
                    nodegroups: list[dict] | None = None) -> list[str]:
    """The workers a stack update removes: a ResourceGroup drops its highest indexes, so
    ``<stack>-worker-<i>`` with ``i >= worker_count`` and ``<stack>-<nodegroup>-<i>`` with ``i`` at or above
    that nodegroup's ``node_count``; every worker of a nodegroup no longer in ``nodegroups`` goes too."""
    counts = {ng["name"]: int(node_count(ng)) for ng in nodegroups or []}
    out = []
    for host, hv in sorted(hostvars.items()):
        if hv.get("container_infra_role") != "worker":
            continue
        group = hv.get("container_infra_nodegroup") or DEFAULT_WORKER
        if group == DEFAULT_WORKER:
            prefix, count = f"{stack_name}-worker-", int(worker_count)
        elif group in counts:
            prefix, count = f"{stack_name}-{group}-", counts[group]
        else:
            out.append(host)
            continue
        index = host[len(prefix):] if host.startswith(prefix) else ""
        if index.isdigit() and int(index) >= count:
            out.append(host)
    return out


# ------------------------------------------------------------------------------------------ the Heat stack
#: The states in which a stack is whole and its servers are up: the only ones whose digest tag says
#: "nothing to do" (ROLLBACK_COMPLETE, for one, is a create that failed and was undone).
STACK_DONE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "RESUME_COMPLETE", "CHECK_COMPLETE",
                        "SNAPSHOT_COMPLETE", "ADOPT_COMPLETE"})


def _state(stack: dict, name: str) -> str:
    reason = str(stack.get("status_reason") or "").strip().rstrip(".")
    return f"stack {name} is {stack.get('status') or 'in no known state'}" + (f" ({reason})" if reason else "")


def swarm_stack_plan(stack: dict | None, digest: str, name: str) -> dict[str, str]:
    """What the stack role does with the stack as Heat holds it: ``action`` create, update or none, and a
    ``problem`` (one sentence) where no run can act now. A matching digest counts only on a finished,
    healthy stack: a failed one is updated again (Heat retries what failed). One in progress has a problem and
    ``in_progress``: the role waits for it first and plans again (a run that does not wait leaves it alone),
    so that the change under way, another run's, is never interrupted."""
    if not stack:
        return {"action": "create", "problem": "", "in_progress": False}
    status = str(stack.get("status") or "")
    if status.endswith("_IN_PROGRESS"):
        return {"action": "none", "in_progress": True,
                "problem": f"{_state(stack, name)}: another run or an operator is changing it now; "
                f"wait until `openstack stack show {name}` says COMPLETE or FAILED, then run again."}
    if status.startswith("DELETE_"):
        return {"action": "none", "in_progress": False,
                "problem": f"{_state(stack, name)}: Heat cannot update a stack that was being "
                f"deleted; delete it again (cluster_delete.yml or `openstack stack delete {name}`), then run again."}
    if status.startswith("SUSPEND_"):
        return {"action": "none", "in_progress": False,
                "problem": f"{_state(stack, name)}: its servers are suspended; resume it "
                f"(`openstack stack resume {name}`), then run again."}
    if status in STACK_DONE and digest in (stack.get("tags") or []):
        return {"action": "none", "problem": "", "in_progress": False}
    return {"action": "update", "problem": "", "in_progress": False}


def swarm_stack_problem(stack: dict | None, name: str) -> str:
    """After a create or an update: one sentence unless Heat finished it whole (the inventory is written only
    from a stack whose servers all came up)."""
    if stack and str(stack.get("status") or "") in STACK_DONE:
        return ""
    return (f"{_state(stack or {}, name)} after this run's create or update: fix what Heat names "
            f"(`openstack stack event list {name} --nested-depth 2`), then run again (Heat retries what failed), "
            "or delete the cluster.")
