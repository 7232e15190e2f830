"""Node discovery for a Magnum cluster, in both eras, with one result shape.

* Heat era (``stack_id`` is a Heat stack's UUID): the stack's resources with ``nested_depth`` (one
  request, :func:`container_infra.modules.os_stack_facts.stack_facts`) say which servers belong to
  the cluster and their role (resource groups ``kube_masters`` / ``kube_minions``, Swarm's likewise);
  a nodegroup other than the default ones has a stack of its own, read the same way.
* Cluster API era (``stack_id`` / ``cluster_id`` such as ``kube-ab12c``, no stack): the servers whose
  names start with ``<stack_id>-``; ``<stack_id>-control-plane-<suffix>`` is a master (nodegroup
  ``default-master``), ``<stack_id>-<nodegroup>-<suffix>`` a worker of that nodegroup.

Either way the servers' details (flavor, addresses per network with MAC and floating IP) come from
ONE server listing, never one request per node. Each node::

    {"name", "id", "role": "master"|"worker", "nodegroup", "flavor", "status",
     "ip" (floating else first fixed), "private_ip",
     "addresses": {network: {"fixed_ip", "fixed_ips", "floating_ip", "mac"}}}
"""

from __future__ import annotations

import re
from typing import Any

from container_infra.cloud.errors import CloudError, explain

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MASTER_INFIX = "control-plane"
DEFAULT_MASTER = "default-master"
DEFAULT_WORKER = "default-worker"
#: Server metadata naming the node's nodegroup (set by the toolkit's Swarm stack).
NODEGROUP_METADATA = "container_infra_nodegroup"


def stack_ref(cluster: dict) -> str | None:
    """``cluster_id`` from microversion 1.13, ``stack_id`` before."""
    return cluster.get("cluster_id") or cluster.get("stack_id")


def era_of(cluster: dict) -> str:
    """``heat`` when the cluster's stack reference is a Heat stack UUID, else ``cluster_api``."""
    ref = stack_ref(cluster) or ""
    return "heat" if UUID.match(ref) else "cluster_api"


# ---------------------------------------------------------------------------- node shape
def addresses_of(server: dict) -> dict[str, dict[str, Any]]:
    """Nova's ``addresses`` as network -> {fixed_ip, fixed_ips, floating_ip, mac}."""
    out: dict[str, dict[str, Any]] = {}
    for network, entries in (server.get("addresses") or {}).items():
        fixed = [e["addr"] for e in entries if e.get("OS-EXT-IPS:type", "fixed") == "fixed"]
        floating = [e["addr"] for e in entries if e.get("OS-EXT-IPS:type") == "floating"]
        mac = next((e.get("OS-EXT-IPS-MAC:mac_addr") for e in entries if e.get("OS-EXT-IPS-MAC:mac_addr")), None)
        out[network] = {"fixed_ip": fixed[0] if fixed else None, "fixed_ips": fixed,
                        "floating_ip": floating[0] if floating else None, "mac": mac}
    return out


def flavor_of(server: dict) -> str | None:
    flavor = server.get("flavor") or {}
    return flavor.get("original_name") or flavor.get("id")


def node(server: dict, role: str | None, nodegroup: str | None, network: str | None = None) -> dict:
    addresses = addresses_of(server)
    preferred = [addresses[network]] if network in addresses else []
    ordered = preferred + [a for n, a in sorted(addresses.items()) if n != network]
    floating = next((a["floating_ip"] for a in ordered if a["floating_ip"]), None)
    private = next((a["fixed_ip"] for a in ordered if a["fixed_ip"]), None)
    return {
        "name": server["name"],
        "id": server["id"],
        "role": role,
        "nodegroup": nodegroup,
        "flavor": flavor_of(server),
        "status": server.get("status"),
        "ip": floating or private,
        "private_ip": private,
        "addresses": addresses,
    }


def _sorted(nodes: list[dict]) -> list[dict]:
    return sorted(nodes, key=lambda n: (n["role"] != "master", n["nodegroup"] or "", n["name"]))


# ---------------------------------------------------------------------------- Cluster API era
def parse_capi_name(stack_id: str, name: str) -> tuple[str, str] | None:
    """(role, nodegroup) from ``<stack_id>-control-plane-<suffix>`` / ``<stack_id>-<ng>-<suffix>``."""
    prefix = f"{stack_id}-"
    if not name.startswith(prefix):
        return None
    middle, _, suffix = name[len(prefix):].rpartition("-")
    if not middle or not suffix:
        return None
    if middle == MASTER_INFIX:
        return "master", DEFAULT_MASTER
    return "worker", middle


def nodes_from_nova(stack_id: str, servers: list[dict], network: str | None = None,
                    nodegroups: list[dict] | None = None) -> list[dict]:
    """Cluster-API-era nodes: the servers named after the stack_id, role and nodegroup from the name.

    A nodegroup's name appears in server names lowercased with ``_`` and ``.`` as ``-``; given the
    cluster's nodegroups, the real name is reported."""
    real = {re.sub(r"[_.]", "-", ng["name"].lower()): ng["name"] for ng in nodegroups or []}
    nodes = []
    for server in servers:
        parsed = parse_capi_name(stack_id, server["name"])
        if parsed is None or server.get("status") == "DELETED":
            continue
        role, group = parsed
        nodes.append(node(server, role, real.get(group, group), network))
    return _sorted(nodes)


# ---------------------------------------------------------------------------- Heat era
def nodes_from_heat(stack_servers: list[tuple[dict, list[dict]]], servers: list[dict],
                    network: str | None = None) -> list[dict]:
    """Heat-era nodes: for each (nodegroup or None, the stack's ``servers`` facts), the Nova server.

    For the cluster's own stack (nodegroup None) masters are ``default-master`` and workers
    ``default-worker``, unless the server's metadata names its nodegroup (``container_infra_nodegroup``:
    the toolkit's Swarm stack, whose extra nodegroups are groups of that one stack); a nodegroup's own
    stack gives that nodegroup's name and role."""
    by_id = {s["id"]: s for s in servers}
    nodes = []
    for nodegroup, facts in stack_servers:
        for item in facts:
            server = by_id.get(item.get("server_id") or "")
            if server is None:
                continue  # being built or deleted: no server yet
            if nodegroup is None:
                role = item["role"] or "worker"
                group = ((server.get("metadata") or {}).get(NODEGROUP_METADATA)
                         or (DEFAULT_MASTER if role == "master" else DEFAULT_WORKER))
            else:
                role = "master" if nodegroup.get("role") == "master" else (item["role"] or "worker")
                group = nodegroup["name"]
            nodes.append(node(server, role, group, network))
    return _sorted(nodes)


# ---------------------------------------------------------------------------- entry point
def discover(cloud, cluster: dict, nodegroups: list[dict] | None = None, network: str | None = None,
             rest=None) -> dict:
    """The cluster's nodes, whichever era: ``{"era", "stack_id", "nodes"}``.

    ``cluster`` is Magnum's cluster (a dict with ``stack_id`` or ``cluster_id``); ``nodegroups`` its
    nodegroups when known (Heat era: nodegroups with a stack of their own are read too). ``network``
    names the network whose address is the node's ``ip`` (default: the first with a floating IP)."""
    from container_infra.modules.os_stack_facts import stack_facts
    from container_infra.openstack_rest import Rest

    rest = rest or Rest(cloud)
    ref = stack_ref(cluster)
    name = cluster.get("name") or cluster.get("uuid") or ref
    if not ref:
        raise CloudError(f"cluster '{name}' has no stack_id yet; wait until it is created, then run again")
    era = era_of(cluster)
    if era == "cluster_api":
        try:
            servers = rest.list_servers(f"^{re.escape(ref)}-")
        except Exception as exc:
            raise explain(exc, "listing the servers of", f"cluster '{name}'") from exc
        return {"era": era, "stack_id": ref, "nodes": nodes_from_nova(ref, servers, network, nodegroups)}

    heat = cloud.heat()
    stacks: list[tuple[dict | None, str]] = [(None, ref)]
    for ng in nodegroups or []:
        if ng.get("stack_id") and ng["stack_id"] != ref:
            stacks.append((ng, ng["stack_id"]))
    stack_servers = []
    names = []
    for ng, stack_id in stacks:
        facts = stack_facts(heat, stack_id, nested_depth=3, types=["OS::Nova::Server"])
        stack_servers.append((ng, facts["servers"]))
        names.append(facts["stack"]["name"])
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")-" if len(names) > 1 else f"^{re.escape(names[0])}-"
    try:
        servers = rest.list_servers(pattern)
    except Exception as exc:
        raise explain(exc, "listing the servers of", f"cluster '{name}'") from exc
    wanted = {item["server_id"] for _, facts in stack_servers for item in facts if item.get("server_id")}
    if wanted - {s["id"] for s in servers}:
        # Servers not named after their stack (a template of one's own): one unfiltered listing.
        try:
            servers = rest.list_servers()
        except Exception as exc:
            raise explain(exc, "listing the servers of", f"cluster '{name}'") from exc
    return {"era": era, "stack_id": ref, "nodes": nodes_from_heat(stack_servers, servers, network)}
