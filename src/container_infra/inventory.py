"""A Magnum cluster's Ansible inventory, built from its discovered nodes and bulk listings (no cloud here).

The static file (module ``os_container_infra_inventory``) and the dynamic plugin
(``inventory_plugins/container_infra.py``) both call :func:`build` on what
:func:`container_infra.discovery.collect` read, so they give the same inventory::

    all:
      children:
        cluster_<cluster>: {hosts: {<server name>: {<host vars>}}}   # the host vars live here
        masters: {hosts: {<server name>: {}}}
        workers: {hosts: {...}}
        nodegroup_<nodegroup>: {hosts: {...}}
        gpu: {hosts: {...}}                                           # flavors with GPUs

Group names are Ansible-safe: every character not in ``[A-Za-z0-9_]`` becomes ``_``. Host vars:
``ansible_host``, ``ansible_user``, ``container_infra_cluster``, ``container_infra_role``,
``container_infra_nodegroup``, ``container_infra_server_id``, ``container_infra_flavor``,
``container_infra_gpu``, ``container_infra_gpu_count`` (where the flavor says how many: :func:`gpu_count`) and
``container_infra_networks`` (network name -> ip, mac, mtu, cidr, prefix, gateway, port_id, ipoib_mode), one entry
per network the server has a port on.

The roles read an inventory with :func:`host_groups`, :func:`hostvars_of` and the selections below
(their filters point here).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from container_infra.cloud.module import ModuleFailure

#: Login user by Glance ``os_distro`` when the image has no ``os_admin_user`` property.
OS_DISTRO_USERS = {
    "fedora-coreos": "core",
    "fedora-atomic": "fedora",
    "ubuntu": "ubuntu",
    "debian": "debian",
    "centos": "centos",
    "rocky": "rocky",
}
IPOIB_MODES = ("connected", "datagram")
IPOIB_TAG = "ipoib_mode="
FIXED_GROUPS = ("masters", "workers")
GPU_GROUP = "gpu"
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
# resources:VGPU, resources:CUSTOM_GPU_A100, granular resources1:PGPU ...
_GPU_RESOURCE = re.compile(r"^resources[^:]*:.*GPU", re.IGNORECASE)


# ---------------------------------------------------------------------------- small pieces
def safe_group(name: str) -> str:
    """An Ansible-safe group name: each character outside ``[A-Za-z0-9_]`` becomes ``_``."""
    return _UNSAFE.sub("_", str(name))


def cluster_group(cluster_name: str) -> str:
    return safe_group(f"cluster_{cluster_name}")


def nodegroup_group(nodegroup: str) -> str:
    return safe_group(f"nodegroup_{nodegroup}")


def _count(value: Any) -> int:
    """An extra spec's count; a value that is no number counts as one when set (``pci_passthrough``)."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 1 if str(value or "").strip() else 0


def has_gpu(extra_specs: dict[str, Any] | None) -> bool:
    """A flavor holds GPUs when ``gpu:count`` > 0, a ``resources:*GPU*`` amount > 0, or a PCI alias is set."""
    for key, value in (extra_specs or {}).items():
        if key == "gpu:count" and _count(value) > 0:
            return True
        if _GPU_RESOURCE.match(key) and _count(value) > 0:
            return True
        if key == "pci_passthrough:alias" and str(value or "").strip():
            return True
    return False


def gpu_count(extra_specs: dict[str, Any] | None) -> int | None:
    """How many GPUs a flavor says its servers have: ``gpu:count``, else the counts of a PCI alias
    (``a100:2`` or ``a100:2,t4:1``); None when it does not say (a ``resources:*GPU*`` amount is a resource class's
    count, one per bare-metal node, not the node's GPUs)."""
    specs = extra_specs or {}
    if "gpu:count" in specs:
        count = _count(specs["gpu:count"])
        return count if count > 0 else None
    alias = str(specs.get("pci_passthrough:alias") or "").strip()
    if alias:
        total = 0
        for entry in alias.split(","):
            _, _, number = entry.partition(":")
            if not number.strip().isdigit():
                return None
            total += int(number)
        return total or None
    return None


#: A login name as useradd takes it: nothing a shell, ssh's %-tokens or user@host would read otherwise.
LOGIN_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


def login_user(image: dict | None, override: str | None = None) -> str | None:
    """``override``, else the image's ``os_admin_user``, else the usual user of its ``os_distro``."""
    if override:
        return override
    image = image or {}
    properties = image.get("properties") if isinstance(image.get("properties"), dict) else image
    if properties.get("os_admin_user"):
        user = str(properties["os_admin_user"])
        if not LOGIN_NAME.match(user):
            # Cloud data: it becomes ansible_user and part of a ProxyCommand a shell runs.
            raise ModuleFailure(
                f"image {image.get('name') or image.get('id') or '?'} has os_admin_user {user!r}, which is not a "
                "login name (a lowercase letter or '_', then up to 31 lowercase letters, digits, '_', '.' or '-'); "
                "set ansible_user in the cluster spec, or fix the image's property")
        return user
    return OS_DISTRO_USERS.get(str(properties.get("os_distro") or "").lower())


def ipoib_mode(network: dict) -> str | None:
    """``connected`` or ``datagram`` from the network tag ``ipoib_mode=<mode>``, else None."""
    for tag in network.get("tags") or []:
        if str(tag).startswith(IPOIB_TAG):
            mode = str(tag)[len(IPOIB_TAG):].strip().lower()
            if mode in IPOIB_MODES:
                return mode
    return None


def _ipv4_first(fixed_ips: list[dict], subnets: dict[str, dict]) -> dict | None:
    """The port's IPv4 address when it has one (what a node's NIC configuration uses), else its first."""
    for entry in fixed_ips:
        subnet = subnets.get(entry.get("subnet_id") or "")
        if subnet and subnet.get("ip_version") == 4:
            return entry
    for entry in fixed_ips:
        if ":" not in str(entry.get("ip_address") or ""):
            return entry
    return fixed_ips[0] if fixed_ips else None


def network_entries(ports: list[dict], networks: dict[str, dict], subnets: dict[str, dict]) -> dict[str, dict]:
    """One server's ports as network name -> {ip, mac, mtu, cidr, prefix, gateway, port_id, ipoib_mode}.

    When a server has several ports on one network, the oldest port (then the lowest id) is reported."""
    out: dict[str, dict] = {}
    for port in sorted(ports, key=lambda p: (str(p.get("created_at") or ""), p.get("id") or "")):
        network = networks.get(port.get("network_id") or "") or {"id": port.get("network_id")}
        name = network.get("name") or network.get("id") or "unknown"
        if name in out:
            continue
        chosen = _ipv4_first(port.get("fixed_ips") or [], subnets)
        subnet = subnets.get((chosen or {}).get("subnet_id") or "") or {}
        cidr = subnet.get("cidr")
        out[name] = {
            "ip": (chosen or {}).get("ip_address"),
            "mac": (port.get("mac_address") or "").lower() or None,
            "mtu": network.get("mtu"),
            "cidr": cidr,
            "prefix": ipaddress.ip_network(cidr, strict=False).prefixlen if cidr else None,
            "gateway": subnet.get("gateway_ip") or None,
            "port_id": port.get("id"),
            "ipoib_mode": ipoib_mode(network),
        }
    return dict(sorted(out.items()))


def _nova_addresses(server: dict) -> list[tuple[str, dict]]:
    """Nova's addresses as (network, entry) in Nova's order (the boot port first, attached ones after)."""
    return [(network, entry) for network, entries in (server.get("addresses") or {}).items()
            for entry in entries or []]


def choose_ansible_host(server: dict, networks: dict[str, dict], preferred: str | None = None) -> str | None:
    """The floating IP (one on ``preferred`` first), else the IP on ``preferred``, else the first fixed IP.

    "First" is Nova's order, so that a provider port attached later never displaces the boot network."""
    addresses = _nova_addresses(server)
    floating = [(n, e["addr"]) for n, e in addresses if e.get("OS-EXT-IPS:type") == "floating"]
    for network, address in floating:
        if network == preferred:
            return address
    if floating:
        return floating[0][1]
    if preferred and (networks.get(preferred) or {}).get("ip"):
        return networks[preferred]["ip"]
    fixed = [(n, e["addr"]) for n, e in addresses if e.get("OS-EXT-IPS:type", "fixed") == "fixed"]
    if preferred:
        for network, address in fixed:
            if network == preferred:
                return address
    if fixed:
        v4 = [a for _, a in fixed if ":" not in a]
        return (v4 or [fixed[0][1]])[0]
    # Nova's cache not filled yet: the oldest port's address.
    return next((entry["ip"] for entry in networks.values() if entry.get("ip")), None)


# ---------------------------------------------------------------------------- listings
@dataclass
class Listings:
    """What the cloud listed, in bulk: raw servers (Nova ``/servers/detail``), ports, networks, subnets,
    flavors (with ``extra_specs``) and images (Glance v2), each as the API returns them."""

    servers: list[dict] = field(default_factory=list)
    ports: list[dict] = field(default_factory=list)
    networks: list[dict] = field(default_factory=list)
    subnets: list[dict] = field(default_factory=list)
    flavors: list[dict] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)

    def index(self) -> dict[str, Any]:
        ports_by_device: dict[str, list[dict]] = {}
        for port in self.ports:
            if port.get("device_id"):
                ports_by_device.setdefault(port["device_id"], []).append(port)
        flavors: dict[str, dict] = {}
        for flavor in self.flavors:
            for key in (flavor.get("id"), flavor.get("name"), flavor.get("original_name")):
                if key:
                    flavors.setdefault(key, flavor)
        images: dict[str, dict] = {}
        for image in self.images:
            for key in (image.get("id"), image.get("name")):
                if key:
                    images.setdefault(key, image)
        return {
            "servers": {s["id"]: s for s in self.servers},
            "ports": ports_by_device,
            "networks": {n["id"]: n for n in self.networks},
            "subnets": {s["id"]: s for s in self.subnets},
            "flavors": flavors,
            "images": images,
        }


def image_ref(server: dict) -> str | None:
    """The id of the image a server booted from ('' or absent when it booted from a volume)."""
    image = server.get("image")
    if isinstance(image, dict):
        return image.get("id") or None
    return image or None


def flavor_extra_specs(server: dict, flavors: dict[str, dict]) -> dict[str, Any]:
    """The extra specs Nova embeds in the server (microversion 2.47+), else the flavor listing's."""
    embedded = server.get("flavor") or {}
    if isinstance(embedded.get("extra_specs"), dict):
        return embedded["extra_specs"]
    listed = flavors.get(embedded.get("original_name") or embedded.get("id") or "") or {}
    return listed.get("extra_specs") or listed.get("OS-FLV-WITH-EXT-SPECS:extra_specs") or {}


def needs_flavor_listing(servers: Iterable[dict]) -> bool:
    """Whether some server's flavor came without extra specs (a policy hides them): list flavors then."""
    return any(not isinstance((s.get("flavor") or {}).get("extra_specs"), dict) for s in servers)


# ---------------------------------------------------------------------------- the inventory
def host_vars(cluster_name: str, node: dict, server: dict, index: dict[str, Any], *,
              network: str | None = None, ansible_user: str | None = None,
              nodegroup_images: dict[str, str] | None = None,
              extra_host_vars: dict[str, Any] | None = None) -> dict[str, Any]:
    """One node's host vars (see the module docstring), in a fixed key order."""
    networks = network_entries(index["ports"].get(server["id"], []), index["networks"], index["subnets"])
    image = index["images"].get(image_ref(server) or "")
    if image is None and nodegroup_images:
        # Booted from a volume: the nodegroup's image (Magnum keeps its name or id) says who logs in.
        image = index["images"].get(nodegroup_images.get(node.get("nodegroup") or "") or "")
    embedded = server.get("flavor") or {}
    extra_specs = flavor_extra_specs(server, index["flavors"])
    out: dict[str, Any] = {
        "ansible_host": choose_ansible_host(server, networks, network),
        "ansible_user": login_user(image, ansible_user),
        "container_infra_cluster": cluster_name,
        "container_infra_role": node.get("role") or "worker",
        "container_infra_nodegroup": node.get("nodegroup"),
        "container_infra_server_id": server["id"],
        "container_infra_flavor": embedded.get("original_name") or node.get("flavor") or embedded.get("id"),
        "container_infra_gpu": has_gpu(extra_specs),
        "container_infra_networks": networks,
    }
    # Only where the flavor says: the monitoring's GpusMissing alert compares it with the GPUs the driver reports.
    count = gpu_count(extra_specs)
    if count:
        out["container_infra_gpu_count"] = count
    for unknown in [key for key in ("ansible_host", "ansible_user") if out[key] is None]:
        del out[unknown]  # Ansible's own default then applies, rather than the string "None"
    out.update(extra_host_vars or {})
    return out


def has_floating_ip(server: dict) -> bool:
    return any(entry.get("OS-EXT-IPS:type") == "floating" for _, entry in _nova_addresses(server))


def proxy_command(jump: dict[str, Any]) -> str:
    """SSH options that reach a node through ``jump``'s host vars (a master with a floating IP).

    A ProxyCommand rather than ProxyJump: the inner ssh needs the same key and options as the outer
    one, and ProxyJump passes neither.
    Every value is quoted for the shell ssh runs the ProxyCommand with (the user and the address come
    from the cloud); the jump's own ``ansible_ssh_common_args`` are the operator's options, already in
    shell syntax, and go in as they are. The whole option is quoted once more for Ansible, which splits
    ``ansible_ssh_common_args`` like a shell."""
    inner = ["ssh", "-W", "%h:%p", "-q"]
    if jump.get("ansible_ssh_private_key_file"):
        inner += ["-i", shlex.quote(str(jump["ansible_ssh_private_key_file"]))]
    if jump.get("ansible_ssh_common_args"):
        inner.append(str(jump["ansible_ssh_common_args"]))
    inner.append(shlex.quote(f"{jump['ansible_user']}@{jump['ansible_host']}" if jump.get("ansible_user")
                             else str(jump["ansible_host"])))
    return "-o " + shlex.quote("ProxyCommand=" + " ".join(inner))


def add_jump_host(hosts: dict[str, dict], servers: dict[str, dict]) -> None:
    """Nodes with no floating IP (Cluster API clouds give one to masters only) are reached through the
    first master that has one: ``ansible_ssh_common_args`` gains a ProxyCommand, and
    ``container_infra_jump_host`` names the master. Nothing changes when every node has its own."""
    def floating(host_vars):
        return has_floating_ip(servers.get(host_vars["container_infra_server_id"]) or {})

    masters = [hv for hv in hosts.values() if hv["container_infra_role"] == "master" and floating(hv)
               and hv.get("ansible_host")]
    if not masters:
        return
    jump_name = next(name for name, hv in hosts.items() if hv is masters[0])
    for host_vars in hosts.values():
        if floating(host_vars):
            continue
        own = str(host_vars.get("ansible_ssh_common_args") or "").strip()
        host_vars["ansible_ssh_common_args"] = f"{own} {proxy_command(masters[0])}".strip()
        host_vars["container_infra_jump_host"] = jump_name


def build(clusters: list[dict], listings: Listings, *, network: str | None = None,
          ansible_user: str | None = None, extra_host_vars: dict[str, Any] | None = None,
          jump_via_master: bool = True) -> dict[str, Any]:
    """The inventory of one or many clusters.

    ``clusters``: ``[{"name": <cluster name>, "nodes": <discovery nodes>, "nodegroups": [<Magnum
    nodegroups>]}]``. Returns ``{"all": {"children": {...}}}`` with groups in a fixed order:
    ``cluster_*`` (by name), ``masters``, ``workers``, ``nodegroup_*`` (by name), ``gpu``; hosts in
    each group masters first, then by nodegroup and name (discovery's order)."""
    index = listings.index()
    cluster_groups: dict[str, dict[str, dict]] = {}
    role_groups: dict[str, dict[str, dict]] = {name: {} for name in FIXED_GROUPS}
    nodegroup_groups: dict[str, dict[str, dict]] = {}
    gpu: dict[str, dict] = {}
    for cluster in sorted(clusters, key=lambda c: c["name"]):
        hosts = cluster_groups.setdefault(cluster_group(cluster["name"]), {})
        images = {ng["name"]: ng.get("image_id") for ng in cluster.get("nodegroups") or [] if ng.get("image_id")}
        for node in cluster["nodes"]:
            server = index["servers"].get(node["id"])
            if server is None:
                continue
            variables = host_vars(cluster["name"], node, server, index, network=network,
                                  ansible_user=ansible_user, nodegroup_images=images,
                                  extra_host_vars=extra_host_vars)
            name = node["name"]
            hosts[name] = variables
            role = "masters" if variables["container_infra_role"] == "master" else "workers"
            role_groups[role][name] = {}
            if node.get("nodegroup"):
                nodegroup_groups.setdefault(nodegroup_group(node["nodegroup"]), {})[name] = {}
            if variables["container_infra_gpu"]:
                gpu[name] = {}
        if jump_via_master:
            add_jump_host(hosts, index["servers"])
    children: dict[str, dict] = {}
    for group in sorted(cluster_groups):
        children[group] = {"hosts": cluster_groups[group]}
    for group in FIXED_GROUPS:
        children[group] = {"hosts": role_groups[group]}
    for group in sorted(nodegroup_groups):
        children[group] = {"hosts": nodegroup_groups[group]}
    children[GPU_GROUP] = {"hosts": gpu}
    return {"all": {"children": children}}


def groups_of(inventory: dict[str, Any]) -> dict[str, list[str]]:
    """Group name -> host names, in the inventory's order."""
    return {name: list(group.get("hosts") or {}) for name, group in inventory["all"]["children"].items()}


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


def hostvars_of(inventory: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{host: vars} from an inventory in YAML form: the host's entries wherever it is listed, merged (in
    the toolkit's own inventories the vars live in the hosts' ``cluster_*`` group)."""
    out: dict[str, dict[str, Any]] = {}

    def walk(group: dict) -> None:
        for host, variables in ((group or {}).get("hosts") or {}).items():
            out.setdefault(host, {}).update(variables or {})
        for sub in ((group or {}).get("children") or {}).values():
            walk(sub)

    walk((inventory or {}).get("all") or {})
    return out


def hosts_summary(inventory: dict[str, Any]) -> list[dict[str, Any]]:
    """A short record per host: name, ansible_host, ansible_user, role, nodegroup, gpu, networks."""
    return [{
        "name": host,
        "ansible_host": variables.get("ansible_host"),
        "ansible_user": variables.get("ansible_user"),
        "role": variables.get("container_infra_role"),
        "nodegroup": variables.get("container_infra_nodegroup"),
        "gpu": variables.get("container_infra_gpu"),
        "networks": variables.get("container_infra_networks"),
    } for host, variables in hostvars_of(inventory).items()]


def inventory_of(collected: dict[str, Any], *, network: str | None = None, ansible_user: str | None = None,
                 extra_host_vars: dict[str, Any] | None = None, jump_via_master: bool = True) -> dict[str, Any]:
    """The inventory of what :func:`container_infra.discovery.collect` read."""
    return build(collected["clusters"], collected["listings"], network=network, ansible_user=ansible_user,
                 extra_host_vars=extra_host_vars, jump_via_master=jump_via_master)


def network_warning(inventory: dict[str, Any], network: str | None) -> str | None:
    """A warning when the preferred network is on none of the hosts (a typo, most often)."""
    hosts = hostvars_of(inventory)
    if not network or not hosts:
        return None
    if any(network in (v.get("container_infra_networks") or {}) for v in hosts.values()):
        return None
    seen = sorted({n for v in hosts.values() for n in v.get("container_infra_networks") or {}})
    return (f"network {network} is on none of the nodes (they have {', '.join(seen) or 'no ports'}); "
            "ansible_host is the floating IP, else the first fixed IP")


# ---------------------------------------------------------------------------- selections (the roles' filters)
def select_nodes(nodes: list[dict], roles: list[str] | None = None, nodegroups: list[str] | None = None) -> list[str]:
    """Server ids of discovered nodes (``{id, role, nodegroup}``, as os_container_infra_status returns
    them) whose role is in ``roles`` and nodegroup in ``nodegroups`` (None: any), in name order."""
    return [
        n["id"]
        for n in sorted(nodes or [], key=lambda n: n["name"])
        if (roles is None or n.get("role") in roles) and (nodegroups is None or n.get("nodegroup") in nodegroups)
    ]


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


# ---------------------------------------------------------------------------- the file
class _IndentedDumper(yaml.SafeDumper):
    """Indents lists under their key, as yamllint's default ``indent-sequences`` wants."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _has_list(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_list(v) for v in value.values())
    return isinstance(value, (list, tuple))


class UnsafeText(str):
    """A string Ansible must never template: written with YAML's ``!unsafe`` tag."""


def _represent_unsafe(dumper, data):
    return dumper.represent_scalar("!unsafe", str(data))


_IndentedDumper.add_representer(UnsafeText, _represent_unsafe)


class _FastDumper(getattr(yaml, "CSafeDumper", _IndentedDumper)):
    pass


_FastDumper.add_representer(UnsafeText, _represent_unsafe)
_TEMPLATE_MARKS = ("{{", "{%", "{#")


def mark_unsafe(value: Any) -> Any:
    """``value`` with every string that holds Jinja's markers made :class:`UnsafeText`: the inventory's
    values are data (names and addresses from the cloud), and Ansible templates inventory values when a
    play reads them, so ``{{ lookup('pipe', ...) }}`` in a server's name or metadata would run."""
    if isinstance(value, dict):
        return {key: mark_unsafe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mark_unsafe(item) for item in value]
    if isinstance(value, str) and not isinstance(value, UnsafeText) and any(m in value for m in _TEMPLATE_MARKS):
        return UnsafeText(value)
    return value


def render(inventory: dict[str, Any], clusters: Iterable[str], cloud: str | None = None) -> str:
    """The inventory as YAML with a header naming the cluster(s) and cloud; no timestamp, so the text
    changes only when the inventory does."""
    names = ", ".join(sorted(clusters)) or "(none)"
    header = [
        "---",
        f"# Ansible inventory of container-infra cluster {names}"
        + (f" on cloud {cloud}" if cloud else "") + ".",
        "# Written by os_container_infra_inventory; edits are lost when it runs again.",
    ]
    # libyaml's emitter is some 50 times faster (a 1,000-node file in well under a second) but writes
    # lists unindented under their key; only extra host vars can hold lists, and then Python's writes.
    dumper = _IndentedDumper if _has_list(inventory) else _FastDumper
    body = yaml.dump(mark_unsafe(inventory), Dumper=dumper, default_flow_style=False, sort_keys=False,
                     indent=2, width=100, allow_unicode=True)
    return "\n".join(header) + "\n" + body


FILE_MODE = 0o644


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
