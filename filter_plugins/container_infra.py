"""Jinja filters of the container-infra roles."""

from __future__ import annotations

import re
from typing import Any

from container_infra.discovery import DEFAULT_MASTER as SWARM_DEFAULT_MASTER
from container_infra.discovery import DEFAULT_WORKER as SWARM_DEFAULT_WORKER


def host_groups(inventory: dict) -> dict[str, list[str]]:
    """{host: [groups]} from an inventory in YAML form (``all.children.<group>.hosts``), nested groups too."""
    out: dict[str, list[str]] = {}

    def walk(name: str, group: dict) -> None:
        for host in (group or {}).get("hosts") or {}:
            if name != "all":
                out.setdefault(host, [])
                if name not in out[host]:
                    out[host].append(name)
        for child, sub in ((group or {}).get("children") or {}).items():
            walk(child, sub)

    walk("all", (inventory or {}).get("all") or {})
    return {host: sorted(groups) for host, groups in sorted(out.items())}


def inventory_hostvars(inventory: dict) -> dict[str, dict]:
    """{host: vars} from an inventory in YAML form: the host's entry wherever it is listed, merged."""
    out: dict[str, dict] = {}

    def walk(group: dict) -> None:
        for host, host_vars in ((group or {}).get("hosts") or {}).items():
            out.setdefault(host, {}).update(host_vars or {})
        for sub in ((group or {}).get("children") or {}).values():
            walk(sub)

    walk((inventory or {}).get("all") or {})
    return out


def select_servers(hostvars: dict[str, dict], roles: list[str] | None = None,
                   nodegroups: list[str] | None = None) -> list[str]:
    """Server ids of the hosts whose role is in ``roles`` and nodegroup in ``nodegroups`` (None: any)."""
    return [
        hv["container_infra_server_id"]
        for _, hv in sorted(hostvars.items())
        if (roles is None or hv.get("container_infra_role") in roles)
        and (nodegroups is None or hv.get("container_infra_nodegroup") in nodegroups)
    ]


def provider_ports(hostvars: dict[str, dict], networks: list[str], keep_hosts: list[str] | None = None) -> list[str]:
    """Port ids the hosts have on ``networks``, hosts named in ``keep_hosts`` left out, each id once."""
    keep = set(keep_hosts or [])
    ports: list[str] = []
    for host, hv in sorted(hostvars.items()):
        if host in keep:
            continue
        for network, entry in sorted((hv.get("container_infra_networks") or {}).items()):
            port_id = (entry or {}).get("port_id")
            if network in networks and port_id and port_id not in ports:
                ports.append(port_id)
    return ports


def nic_interfaces(host_networks: dict[str, dict], wanted: list[str]) -> list[dict]:
    """The container_infra_nic module's ``interfaces`` for the host's networks named in ``wanted``."""
    out = []
    for name in sorted(set(wanted)):
        net = host_networks.get(name)
        if not net:
            continue
        address = f"{net['ip']}/{net['prefix']}" if net.get("ip") and net.get("prefix") is not None else None
        entry = {"network": name, "mac": net["mac"], "mtu": net.get("mtu"),
                 "ipoib_mode": net.get("ipoib_mode"), "address": address}
        # Unset keys are left out: a module's choices reject an explicit null.
        out.append({key: value for key, value in entry.items() if value is not None})
    return out


def leaving_workers(hostvars: dict[str, dict], stack_name: str, worker_count: int,
                    nodegroups: list[dict] | None = None) -> list[str]:
    """The workers a stack update removes: a ResourceGroup drops its highest indexes, so
    ``<stack>-worker-<i>`` with ``i >= worker_count`` and ``<stack>-<nodegroup>-<i>`` with ``i`` at or above
    that nodegroup's ``node_count``; every worker of a nodegroup no longer in ``nodegroups`` goes too."""
    counts = {ng["name"]: int(ng.get("node_count", 1)) for ng in nodegroups or []}
    out = []
    for host, hv in sorted(hostvars.items()):
        if hv.get("container_infra_role") != "worker":
            continue
        group = hv.get("container_infra_nodegroup") or SWARM_DEFAULT_WORKER
        if group == SWARM_DEFAULT_WORKER:
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


# ---------------------------------------------------------------------------- Swarm without Magnum
ROLES = ("master", "worker")
# A nodegroup's name is part of its servers' host names (<cluster>-<nodegroup>-<index>).
SWARM_NODEGROUP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
# Server names <cluster>-manager-<i> and <cluster>-worker-<i> belong to the default nodegroups.
SWARM_RESERVED = (SWARM_DEFAULT_MASTER, SWARM_DEFAULT_WORKER, "manager", "worker")
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
                            _count_problem("node_count", spec.get("node_count", 1), 0)) if p]
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
        count = _count_problem(f"{where}.node_count", (nodegroup or {}).get("node_count", 1), 0)
        if count:
            problems.append(count)
        unread = sorted(set(nodegroup or {}) - set(SWARM_NODEGROUP_KEYS))
        if unread:
            problems.append(f"{where}: a Swarm without Magnum does not read {', '.join(unread)} (Magnum's keys); "
                            f"remove them (it reads {', '.join(SWARM_NODEGROUP_KEYS)})")
    known = [SWARM_DEFAULT_MASTER, SWARM_DEFAULT_WORKER, *seen]
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
        roles = network.get("roles")
        groups = network.get("nodegroups")
        wrong = sorted(set(roles or []) - set(ROLES))
        if wrong:
            problems.append(f"{where}.roles: {', '.join(map(str, wrong))} is not a role; use master and/or worker")
        unknown = [g for g in groups or [] if g not in known]
        if unknown:
            problems.append(f"{where}.nodegroups: {', '.join(map(str, unknown))} is not a nodegroup of cluster {name} "
                            f"(it has {', '.join(known)}); name one of those or add the nodegroup")
        if not wrong and not unknown and not any(
                _placed_on(network, role, group)
                for role, group in [("master", SWARM_DEFAULT_MASTER), ("worker", SWARM_DEFAULT_WORKER)]
                + [("worker", g) for g in seen]):
            problems.append(f"{where}: no node is in both its roles and its nodegroups; widen one of them")
    return problems


def _placed_on(network: dict, role: str, nodegroup: str) -> bool:
    """Whether a spec ``networks`` entry goes to nodes of ``role`` in ``nodegroup``: an entry without
    ``roles`` is for every role, one without ``nodegroups`` for every nodegroup."""
    roles = network.get("roles")
    groups = network.get("nodegroups")
    return (roles is None or role in roles) and (groups is None or nodegroup in groups)


def swarm_networks(networks: list[dict] | None, role: str, nodegroup: str) -> list[str]:
    """The provider networks that nodes of ``role`` in ``nodegroup`` get, each once, in the spec's order."""
    out = []
    for network in networks or []:
        if _placed_on(network, role, nodegroup) and network["network"] not in out:
            out.append(network["network"])
    return out


def swarm_stack_nodegroups(spec: dict) -> list[dict]:
    """The extra nodegroups of a C(heat-swarm) spec as container_infra_swarm_stack takes them, each with the
    provider networks its nodes get."""
    return [{"name": ng["name"], "flavor": ng["flavor"], "image": ng.get("image") or spec.get("image"),
             "node_count": int(ng.get("node_count", 1)),
             "networks": swarm_networks(spec.get("networks"), "worker", ng["name"])}
            for ng in spec.get("nodegroups") or []]


def heat_resource_name(nodegroup: str) -> str:
    """The stack's ResourceGroup of an extra nodegroup (names are [a-z0-9-], so the mapping is one to one)."""
    return "swarm_nodegroup_" + nodegroup.replace("-", "_")


class FilterModule:
    def filters(self):
        return {
            "container_infra_host_groups": host_groups,
            "container_infra_hostvars": inventory_hostvars,
            "container_infra_select_servers": select_servers,
            "container_infra_provider_ports": provider_ports,
            "container_infra_nic_interfaces": nic_interfaces,
            "container_infra_leaving_workers": leaving_workers,
            "container_infra_swarm_spec_problems": swarm_spec_problems,
            "container_infra_swarm_networks": swarm_networks,
            "container_infra_swarm_stack_nodegroups": swarm_stack_nodegroups,
            "container_infra_heat_resource_name": heat_resource_name,
        }
