"""Host-side wiring of the sandbox's Docker nodes: one Linux bridge per Neutron network, one veth per port.

Pure naming and command building (unit-tested without root), plus thin helpers that run ``ip``.
Interface names are at most 15 characters: ``sbx-b`` + 10 hex digits of the network id for a
bridge (container_infra.sandbox.storagenet follows the same rule for the storage network's bridge),
``sbx-v`` + 10 hex digits of the port id for the host end of a port's veth pair (``sbx-t``
for the node's end until it is renamed ``ethN`` inside the node). Bridges carry no IP address
(IPv6 is switched off on them), so nothing on them is routed off the machine: two nodes on one
network reach each other, and nothing else; the one exception is the storage network's bridge,
which carries the address of the sandbox's storage services (Ceph, the registry) and is kept.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

PREFIX = "sbx-"
# br_netfilter (loaded by dockerd) sends bridged frames through iptables' FORWARD chain, whose
# policy dockerd sets to DROP: accept what stays on the sandbox's bridges.
IPTABLES_RULE = ["FORWARD", "-i", f"{PREFIX}b+", "-o", f"{PREFIX}b+", "-j", "ACCEPT"]


def _hex(uuid: str, length: int = 10) -> str:
    return uuid.replace("-", "")[:length]


def bridge_name(network_id: str) -> str:
    return f"{PREFIX}b{_hex(network_id)}"


def host_veth_name(port_id: str) -> str:
    return f"{PREFIX}v{_hex(port_id)}"


def temp_veth_name(port_id: str) -> str:
    return f"{PREFIX}t{_hex(port_id)}"


def vif_mtu(vif) -> int:
    mtu = (vif.get("network") or {}).get("meta", {}).get("mtu") or (vif.get("details") or {}).get("mtu")
    return int(mtu or 1500)


def vif_addresses(vif) -> tuple[list[str], str | None]:
    """The port's fixed IPs as address/prefix, and the first subnet's gateway (or None)."""
    addresses, gateway = [], None
    for subnet in (vif.get("network") or {}).get("subnets", []):
        cidr = subnet.get("cidr")
        if not cidr:
            continue
        prefix = ipaddress.ip_network(cidr).prefixlen
        for ip in subnet.get("ips", []):
            addresses.append(f"{ip['address']}/{prefix}")
        gw = (subnet.get("gateway") or {}).get("address")
        if gw and gateway is None and addresses:
            gateway = gw
    return addresses, gateway


def node_commands(vif, ifname: str, configure: bool) -> list[str]:
    """``ip -batch`` lines run inside the node: name, MAC, MTU, and (primary only) address and route."""
    temp = temp_veth_name(vif["id"])
    lines = [f"link set dev {temp} name {ifname} address {vif['address']} mtu {vif_mtu(vif)}"]
    if configure:
        addresses, gateway = vif_addresses(vif)
        lines.append(f"link set dev {ifname} up")
        lines += [f"address add {address} dev {ifname}" for address in addresses]
        if gateway:
            lines.append(f"route replace default via {gateway} dev {ifname} onlink")
    return lines


def _run(args: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=check)


def _disable_ipv6(ifname: str) -> None:
    path = Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6")
    if path.exists():
        path.write_text("1")


def ensure_iptables_rule() -> None:
    if _run(["iptables", "-C", *IPTABLES_RULE], check=False).returncode != 0:
        _run(["iptables", "-I", IPTABLES_RULE[0], "1", *IPTABLES_RULE[1:]], check=False)


def ensure_bridge(network_id: str, mtu: int) -> str:
    name = bridge_name(network_id)
    if not Path(f"/sys/class/net/{name}").exists():
        result = _run(["ip", "link", "add", name, "mtu", str(mtu), "type", "bridge"], check=False)
        if result.returncode != 0 and "exists" not in result.stderr:
            raise RuntimeError(f"cannot create bridge {name}: {result.stderr.strip()}")
    _disable_ipv6(name)
    _run(["ip", "link", "set", "dev", name, "up"])
    return name


def plug(pid: int, vif, ifname: str, configure: bool) -> None:
    """Give the node whose init has ``pid`` an interface ``ifname`` for the port ``vif``."""
    mtu = vif_mtu(vif)
    bridge = ensure_bridge(vif["network"]["id"], mtu)
    host, temp = host_veth_name(vif["id"]), temp_veth_name(vif["id"])
    _run(["ip", "link", "del", host], check=False)
    _run(["ip", "link", "add", host, "mtu", str(mtu), "type", "veth", "peer", "name", temp,
          "mtu", str(mtu), "netns", str(pid)])
    _disable_ipv6(host)
    _run(["ip", "link", "set", "dev", host, "master", bridge, "up"])
    in_node(pid, node_commands(vif, ifname, configure))


def in_node(pid: int, lines: list[str]) -> None:
    _run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-batch", "-"], stdin="\n".join(lines) + "\n")


def node_links(pid: int) -> dict[str, str]:
    """MAC address -> interface name inside the node."""
    result = _run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-o", "link", "show"], check=False)
    links = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) > 2 and "link/ether" in parts:
            links[parts[parts.index("link/ether") + 1].lower()] = parts[1].rstrip(":").split("@")[0]
    return links


def unplug(pid: int | None, vif) -> None:
    """Remove the port's interface (from inside the node when it runs) and its host end."""
    if pid:
        name = node_links(pid).get(vif["address"].lower())
        if name:
            in_node(pid, [f"link del dev {name}"])
    _run(["ip", "link", "del", host_veth_name(vif["id"])], check=False)


def remove_bridge_if_unused(network_id: str) -> None:
    name = bridge_name(network_id)
    brif = Path(f"/sys/class/net/{name}/brif")
    if brif.exists() and not any(brif.iterdir()) and not _has_address(name):
        _run(["ip", "link", "del", name], check=False)


def _has_address(name: str) -> bool:
    """A bridge with an address is the sandbox's own (the storage network's services): it stays."""
    return bool(_run(["ip", "-o", "-4", "addr", "show", "dev", name], check=False).stdout.strip())


def listening_on(pid: int, port: int) -> bool:
    """Whether something in the node's network namespace listens on TCP ``port``."""
    wanted = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "0A":
                return True
    return False
