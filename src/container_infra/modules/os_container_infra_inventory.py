"""os_container_infra_inventory: a Magnum cluster's static Ansible inventory file, and the bulk reads
that the dynamic inventory plugin shares.

:func:`collect` reads one, several or all clusters of the project with a number of API requests that
does not grow with the number of nodes: the cluster(s) (one get, or one listing), each cluster's
nodegroups, each Heat-era cluster's stack (two requests, nested resources in one listing), ONE server
listing for all the clusters (Nova pages it, 50 servers a page), ONE port listing, one network and
one subnet listing, one image listing, and a flavor listing only when Nova's servers came without
their flavors' extra specs. :mod:`container_infra.inventory` turns the result into the inventory.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from typing import Any

from container_infra import discovery
from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.module import ModuleFailure
from container_infra.inventory import (
    Listings,
    build,
    groups_of,
    hosts_summary,
    image_ref,
    is_uuid,
    needs_flavor_listing,
    render,
)
from container_infra.modules.magnum import get_cluster, info, list_nodegroups, normalise_cluster, read

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "cluster": {"type": "str", "aliases": ["name"]},
    "stack": {"type": "str"},
    "path": {"type": "path"},
    "network": {"type": "str"},
    "ansible_user": {"type": "str"},
    "extra_host_vars": {"type": "dict", "default": {}},
    "jump_via_master": {"type": "bool", "default": True},
}

FILE_MODE = 0o644
PORT_FIELDS = ["id", "device_id", "network_id", "mac_address", "fixed_ips", "created_at"]
#: Longest Nova name filter sent; past it, one unfiltered listing of the project's servers.
NAME_FILTER_BUDGET = 2000


# ---------------------------------------------------------------------------- reading the cloud
def find_clusters(magnum, refs: list[str] | None) -> list[dict[str, Any]]:
    """The clusters named (by name or UUID), or all the project's when ``refs`` is empty or None.

    One cluster: one GET (Magnum takes a name or a UUID). Several or all: one listing."""
    if refs and len(refs) == 1:
        try:
            found = get_cluster(magnum, refs[0], missing_ok=True)
        except Exception as exc:
            raise explain(exc, "reading", f"cluster {refs[0]}") from exc
        if found is None:
            raise CloudError(f"cluster {refs[0]} was not found in the project; check the name or UUID with "
                             "`openstack coe cluster list`")
        return [found]
    try:
        clusters = [normalise_cluster(info(c)) for c in read(magnum.clusters.list)]
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


def _server_filter(prefixes: list[str]) -> str | None:
    """Nova's name regex for servers named ``<prefix>-...``, None when it would be too long."""
    if not prefixes:
        return None
    pattern = "^(" + "|".join(re.escape(p) for p in sorted(set(prefixes))) + ")-"
    return pattern if len(pattern) <= NAME_FILTER_BUDGET else None


def stack_cluster(heat, ref: str) -> dict[str, Any]:
    """A Heat stack not made by Magnum (the toolkit's Swarm without Magnum) in a Magnum cluster's shape."""
    try:
        stack = heat.stacks.get(ref)
    except Exception as exc:
        error = explain(exc, "reading", f"Heat stack '{ref}'")
        if error.details.get("kind") == "notfound":
            raise CloudError(f"Heat stack '{ref}' was not found in the project; check its name with "
                             "`openstack stack list`", status=404, details=error.details) from exc
        raise error from exc
    return {"name": stack.stack_name, "uuid": stack.id, "stack_id": stack.id, "status": stack.stack_status}


def collect(cloud, refs: list[str] | None, *, skip_unready: bool = False, rest=None,
            stacks: list[str] | None = None, clusters: bool = True) -> dict[str, Any]:
    """The clusters, their nodes and the bulk listings: ``{"clusters": [...], "listings", "warnings"}``.

    ``skip_unready``: leave out (with a warning) a cluster that has no stack yet or whose stack cannot
    be read, rather than fail: for the dynamic plugin listing every cluster of a project."""
    from container_infra.modules.os_stack_facts import stack_facts
    from container_infra.openstack_rest import Rest

    rest = rest or Rest(cloud)
    magnum = cloud.magnum() if clusters else None
    warnings: list[str] = []
    wanted: list[dict[str, Any]] = []
    # ``clusters``: read Magnum's clusters (``refs``, or all of them when None); ``stacks``: Heat stacks
    # not made by Magnum (Swarm without Magnum), read as clusters of their own.
    found = find_clusters(magnum, refs) if clusters else []
    found += [stack_cluster(cloud.heat(), ref) for ref in stacks or []]
    for cluster in found:
        name = cluster.get("name") or cluster["uuid"]
        if not discovery.stack_ref(cluster):
            message = (f"cluster {name} has no stack yet (status {cluster.get('status')}); wait until Magnum "
                       "has started creating it, then run again")
            if not skip_unready:
                raise CloudError(message)
            warnings.append(message)
            continue
        nodegroups = [] if cluster.get("stack_id") == cluster["uuid"] else list_nodegroups(magnum, cluster["uuid"])
        wanted.append({"cluster": cluster, "name": name, "nodegroups": nodegroups})

    heat = None
    prefixes: list[str] = []
    kept = []
    for item in wanted:
        ref = discovery.stack_ref(item["cluster"])
        item["era"] = discovery.era_of(item["cluster"])
        if item["era"] == "cluster_api":
            prefixes.append(ref)
            kept.append(item)
            continue
        heat = heat or cloud.heat()
        stacks: list[tuple[dict | None, str]] = [(None, ref)]
        stacks += [(ng, ng["stack_id"]) for ng in item["nodegroups"] if ng.get("stack_id") not in (None, ref)]
        try:
            item["stack_servers"] = []
            for nodegroup, stack_id in stacks:
                facts = stack_facts(heat, stack_id, nested_depth=3, types=["OS::Nova::Server"])
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
        pattern = _server_filter(prefixes)
        try:
            servers = rest.list_servers(pattern)
            heat_ids = {s["server_id"] for item in kept for _, facts in item.get("stack_servers", [])
                        for s in facts if s.get("server_id")}
            if pattern and heat_ids - {s["id"] for s in servers}:
                # Servers not named after their stack (a template of one's own): one unfiltered listing.
                servers = rest.list_servers()
        except Exception as exc:
            raise explain(exc, "listing", "the clusters' servers") from exc

    clusters = []
    for item in kept:
        if item["era"] == "cluster_api":
            nodes = discovery.nodes_from_nova(discovery.stack_ref(item["cluster"]), servers,
                                              nodegroups=item["nodegroups"])
        else:
            nodes = discovery.nodes_from_heat(item["stack_servers"], servers)
        clusters.append({"name": item["name"], "uuid": item["cluster"]["uuid"], "era": item["era"],
                         "stack_id": discovery.stack_ref(item["cluster"]), "status": item["cluster"].get("status"),
                         "nodes": nodes, "nodegroups": item["nodegroups"]})

    node_ids = {n["id"] for c in clusters for n in c["nodes"]}
    node_servers = [s for s in servers if s["id"] in node_ids]
    listings = Listings(servers=node_servers)
    if node_servers:
        listings = _listings(rest, clusters, node_servers)
    return {"clusters": clusters, "listings": listings, "warnings": warnings}


def _listings(rest, clusters: list[dict], servers: list[dict]) -> Listings:
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


def inventory_of(collected: dict[str, Any], *, network: str | None = None, ansible_user: str | None = None,
                 extra_host_vars: dict[str, Any] | None = None, jump_via_master: bool = True) -> dict[str, Any]:
    return build(collected["clusters"], collected["listings"], network=network, ansible_user=ansible_user,
                 extra_host_vars=extra_host_vars, jump_via_master=jump_via_master)


def network_warning(inventory: dict[str, Any], network: str | None) -> str | None:
    """A warning when the preferred network is on none of the hosts (a typo, most often)."""
    from container_infra.inventory import hostvars_of

    hosts = hostvars_of(inventory)
    if not network or not hosts:
        return None
    if any(network in (v.get("container_infra_networks") or {}) for v in hosts.values()):
        return None
    seen = sorted({n for v in hosts.values() for n in v.get("container_infra_networks") or {}})
    return (f"network {network} is on none of the nodes (they have {', '.join(seen) or 'no ports'}); "
            "ansible_host is the floating IP, else the first fixed IP")


# ---------------------------------------------------------------------------- the file
def read_existing(path: str) -> tuple[str | None, int | None]:
    """The file's text and mode, (None, None) when there is none."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        return text, stat.S_IMODE(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None, None  # writing says what is wrong with the path
    except IsADirectoryError:
        raise ModuleFailure(f"path {path} is a directory; set path to a file name, such as "
                            f"{os.path.join(path, 'hosts.yml')}") from None
    except (OSError, UnicodeDecodeError) as exc:
        said = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ModuleFailure(f"reading the inventory file {path} failed: {said}; fix its permissions or "
                            "choose another path") from None


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (parents made, mode 0644) through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    ancestor = directory
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ModuleFailure(f"writing the inventory file {path} failed: {ancestor} is a file, not a directory; "
                            "choose a path you can write (option path)")
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".inventory-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temporary, FILE_MODE)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise ModuleFailure(f"writing the inventory file {path} failed: {exc.strerror or exc}; choose a path "
                            "you can write (option path) or fix the permissions of its directory") from None


# ---------------------------------------------------------------------------- the module
def cloud_label(params: dict[str, Any]) -> str | None:
    cloud = params.get("cloud")
    return cloud if isinstance(cloud, str) and cloud else None


def run(module, cloud) -> dict[str, Any]:
    params = module.params
    path = params.get("path")
    if path is not None and not path.strip():
        raise ModuleFailure("path is empty; give the inventory file to write, or leave path out")
    if params.get("stack"):
        collected = collect(cloud, None, stacks=[params["stack"]], clusters=False)
    else:
        collected = collect(cloud, [params["cluster"]])
    inventory = inventory_of(collected, network=params.get("network"), ansible_user=params.get("ansible_user"),
                             extra_host_vars=params.get("extra_host_vars"),
                             jump_via_master=params["jump_via_master"])
    for warning in collected["warnings"] + [network_warning(inventory, params.get("network"))]:
        if warning:
            module.warn(warning)
    cluster = collected["clusters"][0]
    text = render(inventory, [cluster["name"]], cloud_label(params))
    result: dict[str, Any] = {
        "changed": False,
        "inventory": inventory,
        "hosts": hosts_summary(inventory),
        "groups": groups_of(inventory),
        "path": path,
        "cluster": {k: cluster[k] for k in ("name", "uuid", "era", "stack_id", "status")},
    }
    if path:
        before, mode = read_existing(path)
        result["changed"] = before != text or mode != FILE_MODE
        result["diff"] = {"before": before or "", "after": text, "before_header": path, "after_header": path}
        if result["changed"] and not module.check_mode:
            write_atomically(path, text)
    return result
