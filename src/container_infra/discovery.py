"""Node discovery for Magnum clusters (and the toolkit's own Heat stacks), in both eras, with one result
shape: one cluster's nodes (:func:`discover`), or many clusters' nodes with the bulk listings their
inventory needs (:func:`collect`).

* Heat era (``stack_id`` is a Heat stack's UUID): the stack's resources with ``nested_depth`` (one
  request, :func:`container_infra.heat.stack_facts`) say which servers belong to
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

from container_infra import heat
from container_infra import magnum as mg
from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.ids import is_uuid
from container_infra.cloud.rest import Rest
from container_infra.inventory import Listings, image_ref, needs_flavor_listing

MASTER_INFIX = "control-plane"
#: Server metadata naming the node's nodegroup (set by the toolkit's Swarm stack).
NODEGROUP_METADATA = "container_infra_nodegroup"
#: Port fields the inventory reads.
PORT_FIELDS = ["id", "device_id", "network_id", "mac_address", "fixed_ips", "created_at"]
#: Longest Nova name filter sent; past it, one unfiltered listing of the project's servers.
NAME_FILTER_BUDGET = 2000


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
        return "master", mg.DEFAULT_MASTER
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
                         or mg.default_nodegroup(role))
            else:
                role = "master" if nodegroup.get("role") == "master" else (item["role"] or "worker")
                group = nodegroup["name"]
            nodes.append(node(server, role, group, network))
    return _sorted(nodes)


# ---------------------------------------------------------------------------- one cluster
def heat_stacks(cluster: dict, nodegroups: list[dict] | None) -> list[tuple[dict | None, str]]:
    """The Heat stacks holding a Heat-era cluster's servers: (None, the cluster's own stack), then
    (nodegroup, its stack) for each nodegroup that has a stack of its own."""
    ref = mg.stack_ref(cluster)
    return [(None, ref)] + [(ng, ng["stack_id"]) for ng in nodegroups or [] if ng.get("stack_id") not in (None, ref)]


def _server_filter(prefixes: list[str]) -> str | None:
    """Nova's name regex for servers named ``<prefix>-...``, None when it would be too long."""
    if not prefixes:
        return None
    pattern = "^(" + "|".join(re.escape(p) for p in sorted(set(prefixes))) + ")-"
    return pattern if len(pattern) <= NAME_FILTER_BUDGET else None


def _servers_of(rest, pattern: str | None, wanted_ids: set[str], operation: str, what: str) -> list[dict]:
    """The servers whose names match ``pattern`` (one listing); one unfiltered listing when some of
    ``wanted_ids`` are not named so (a template of one's own names its servers otherwise)."""
    try:
        servers = rest.list_servers(pattern)
        if pattern and wanted_ids - {s["id"] for s in servers}:
            servers = rest.list_servers()
    except Exception as exc:
        raise explain(exc, operation, what) from exc
    return servers


def discover(cloud, cluster: dict, nodegroups: list[dict] | None = None, network: str | None = None,
             rest=None) -> dict:
    """The cluster's nodes, whichever era: ``{"era", "stack_id", "nodes"}``.

    ``cluster`` is Magnum's cluster (a dict with ``stack_id`` or ``cluster_id``); ``nodegroups`` its
    nodegroups when known (Heat era: nodegroups with a stack of their own are read too). ``network``
    names the network whose address is the node's ``ip`` (default: the first with a floating IP)."""
    rest = rest or Rest(cloud)
    ref = mg.stack_ref(cluster)
    name = cluster.get("name") or cluster.get("uuid") or ref
    if not ref:
        raise CloudError(f"cluster '{name}' has no stack_id yet; wait until it is created, then run again")
    era = mg.era_of(cluster)
    what = f"cluster '{name}'"
    if era == mg.CLUSTER_API:
        servers = _servers_of(rest, f"^{re.escape(ref)}-", set(), "listing the servers of", what)
        return {"era": era, "stack_id": ref, "nodes": nodes_from_nova(ref, servers, network, nodegroups)}

    heat_client = cloud.heat()
    stack_servers = []
    names = []
    for ng, stack_id in heat_stacks(cluster, nodegroups):
        facts = heat.stack_facts(heat_client, stack_id, nested_depth=3, types=[heat.SERVER_TYPE])
        stack_servers.append((ng, facts["servers"]))
        names.append(facts["stack"]["name"])
    wanted = {item["server_id"] for _, facts in stack_servers for item in facts if item.get("server_id")}
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")-" if len(names) > 1 else f"^{re.escape(names[0])}-"
    servers = _servers_of(rest, pattern, wanted, "listing the servers of", what)
    return {"era": era, "stack_id": ref, "nodes": nodes_from_heat(stack_servers, servers, network)}


# ---------------------------------------------------------------------------- many clusters
def find_clusters(magnum, refs: list[str] | None) -> list[dict[str, Any]]:
    """The clusters named (by name or UUID), or all the project's when ``refs`` is empty or None.

    One cluster: one GET (Magnum takes a name or a UUID). Several or all: one listing."""
    if refs and len(refs) == 1:
        try:
            found = mg.get_cluster(magnum, refs[0], missing_ok=True)
        except Exception as exc:
            raise explain(exc, "reading", f"cluster {refs[0]}") from exc
        if found is None:
            raise CloudError(f"cluster {refs[0]} was not found in the project; check the name or UUID with "
                             "`openstack coe cluster list`")
        return [found]
    try:
        clusters = [mg.normalise_cluster(mg.info(c)) for c in mg.read(magnum.clusters.list)]
    except Exception as exc:
        raise explain(exc, "listing", "clusters") from exc
    if not refs:
        return sorted(clusters, key=lambda c: c.get("name") or c["uuid"])
    chosen = []
    for ref in refs:
        matches = [c for c in clusters if ref in (c.get("uuid"), c.get("name"))]
        if not matches:
            raise CloudError(f"cluster {ref} was not found in the project; check the names in clusters "
                             "with `openstack coe cluster list`")
        if len(matches) > 1:
            raise CloudError(f"{len(matches)} clusters are named {ref}; name the one you mean by its UUID")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def collect(cloud, refs: list[str] | None, *, skip_unready: bool = False, rest=None,
            stacks: list[str] | None = None, clusters: bool = True) -> dict[str, Any]:
    """The clusters, their nodes and the bulk listings: ``{"clusters": [...], "listings", "warnings"}``.

    A number of API requests that does not grow with the number of nodes: the cluster(s) (one get, or
    one listing), each cluster's nodegroups, each Heat-era cluster's stack (two requests, nested
    resources in one listing), ONE server listing for all the clusters (pages of 1,000
    servers), ONE port listing, one network and one subnet listing, one image listing, and a flavor listing
    only when Nova's servers came without their flavors' extra specs.

    ``clusters``: read Magnum's clusters (``refs``, or all of them when None); ``stacks``: Heat stacks
    not made by Magnum (Swarm without Magnum), read as clusters of their own. ``skip_unready``: leave
    out (with a warning) a cluster that has no stack yet or whose stack cannot be read, rather than
    fail: for the dynamic plugin listing every cluster of a project."""
    rest = rest or Rest(cloud)
    magnum = cloud.magnum() if clusters else None
    warnings: list[str] = []
    wanted: list[dict[str, Any]] = []
    found = find_clusters(magnum, refs) if clusters else []
    found += [heat.stack_cluster(cloud.heat(), ref) for ref in stacks or []]
    for cluster in found:
        name = cluster.get("name") or cluster["uuid"]
        if not mg.stack_ref(cluster):
            message = (f"cluster {name} has no stack yet (status {cluster.get('status')}); wait until Magnum "
                       "has started creating it, then run again")
            if not skip_unready:
                raise CloudError(message)
            warnings.append(message)
            continue
        nodegroups = [] if cluster.get("stack_id") == cluster["uuid"] else mg.list_nodegroups(magnum, cluster["uuid"])
        wanted.append({"cluster": cluster, "name": name, "nodegroups": nodegroups})

    heat_client = None
    prefixes: list[str] = []
    kept = []
    for item in wanted:
        item["era"] = mg.era_of(item["cluster"])
        if item["era"] == mg.CLUSTER_API:
            prefixes.append(mg.stack_ref(item["cluster"]))
            kept.append(item)
            continue
        heat_client = heat_client or cloud.heat()
        try:
            item["stack_servers"] = []
            for nodegroup, stack_id in heat_stacks(item["cluster"], item["nodegroups"]):
                facts = heat.stack_facts(heat_client, stack_id, nested_depth=3, types=[heat.SERVER_TYPE])
                item["stack_servers"].append((nodegroup, facts["servers"]))
                prefixes.append(facts["stack"]["name"])
        except CloudError as exc:
            if not skip_unready:
                raise
            warnings.append(f"cluster {item['name']} left out: {exc}")
            continue
        kept.append(item)

    servers: list[dict] = []
    if kept:
        heat_ids = {s["server_id"] for item in kept for _, facts in item.get("stack_servers", [])
                    for s in facts if s.get("server_id")}
        servers = _servers_of(rest, _server_filter(prefixes), heat_ids, "listing", "the clusters' servers")

    found_clusters = []
    for item in kept:
        ref = mg.stack_ref(item["cluster"])
        if item["era"] == mg.CLUSTER_API:
            nodes = nodes_from_nova(ref, servers, nodegroups=item["nodegroups"])
        else:
            nodes = nodes_from_heat(item["stack_servers"], servers)
        found_clusters.append({"name": item["name"], "uuid": item["cluster"]["uuid"], "era": item["era"],
                               "stack_id": ref, "status": item["cluster"].get("status"),
                               "nodes": nodes, "nodegroups": item["nodegroups"]})

    node_ids = {n["id"] for c in found_clusters for n in c["nodes"]}
    node_servers = [s for s in servers if s["id"] in node_ids]
    listings = Listings(servers=node_servers)
    if node_servers:
        listings = listings_for(rest, found_clusters, node_servers)
    return {"clusters": found_clusters, "listings": listings, "warnings": warnings}


def listings_for(rest, clusters: list[dict], servers: list[dict]) -> Listings:
    """Ports, networks, subnets, images (and flavors when needed) for these servers, in bulk."""
    try:
        ports = rest.list_ports_where([s["id"] for s in servers], PORT_FIELDS)
    except Exception as exc:
        raise explain(exc, "listing", "the ports of the clusters' servers") from exc
    network_ids = sorted({p["network_id"] for p in ports if p.get("network_id")})
    try:
        networks = rest.list_networks(ids=network_ids) if network_ids else []
        subnets = rest.list_subnets(network_ids) if network_ids else []
    except Exception as exc:
        raise explain(exc, "listing", "the networks of the clusters' servers") from exc
    image_ids = {image_ref(s) for s in servers} - {None}
    if any(image_ref(s) is None for s in servers):
        # Some booted from a volume: their nodegroup's image (a name or an id) is asked for too.
        refs = {ng.get("image_id") for c in clusters for ng in c["nodegroups"]} - {None, ""}
        image_ids |= {r for r in refs if is_uuid(r)}
        image_names = sorted(r for r in refs if not is_uuid(r))
    else:
        image_names = []
    try:
        images = rest.list_images(sorted(image_ids), image_names)
    except Exception as exc:
        raise explain(exc, "listing", "the images of the clusters' servers") from exc
    flavors: list[dict] = []
    if needs_flavor_listing(servers):
        try:
            flavors = rest.list_flavors()
        except Exception as exc:
            raise explain(exc, "listing", "flavors") from exc
    return Listings(servers=servers, ports=ports, networks=networks, subnets=subnets, flavors=flavors,
                    images=images)
