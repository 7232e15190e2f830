"""Jinja filters of the container-infra roles."""

from __future__ import annotations


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


def leaving_workers(hostvars: dict[str, dict], stack_name: str, worker_count: int) -> list[str]:
    """The workers a stack update to ``worker_count`` removes: a ResourceGroup drops its highest indexes,
    so ``<stack>-worker-<i>`` with ``i >= worker_count``."""
    prefix = f"{stack_name}-worker-"
    out = []
    for host, hv in sorted(hostvars.items()):
        index = host[len(prefix):] if host.startswith(prefix) else ""
        if hv.get("container_infra_role") == "worker" and index.isdigit() and int(index) >= int(worker_count):
            out.append(host)
    return out


class FilterModule:
    def filters(self):
        return {
            "container_infra_host_groups": host_groups,
            "container_infra_hostvars": inventory_hostvars,
            "container_infra_select_servers": select_servers,
            "container_infra_provider_ports": provider_ports,
            "container_infra_nic_interfaces": nic_interfaces,
            "container_infra_leaving_workers": leaving_workers,
        }
