"""The storage network's service address: where the sandbox's Ceph and registry listen.

The storage network is a provider network of the seed (``STORAGE_NETWORK``). Nodes are plugged into
its bridge by the Docker compute driver like into any other network's (``sbx-b`` + 10 hex digits of
the network id, container_infra_sandbox.nodenet); this module puts ``STORAGE_SERVICE_ADDRESS`` on
that bridge, so that the services bound to it are reached by the nodes on the network and by this
machine, and by nothing else (the bridge has no other address, no route leads to it from outside,
and IPv6 is off on it). The compute driver keeps a bridge that carries an address when its last
node leaves.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from container_infra.sandbox.layout import STORAGE_CIDR, STORAGE_NETWORK, STORAGE_SERVICE_ADDRESS


class StorageNetworkError(RuntimeError):
    """The storage network or its bridge is not as the sandbox needs it."""


def bridge_name(network_id: str) -> str:
    """The bridge the compute driver plugs the network's ports into (same rule as nodenet.bridge_name)."""
    return "sbx-b" + network_id.replace("-", "")[:10]


def service_interface() -> str:
    return f"{STORAGE_SERVICE_ADDRESS}/{ipaddress.ip_network(STORAGE_CIDR).prefixlen}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise StorageNetworkError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def ensure_service_address(conn, mtu: int = 9000) -> str:
    """Make the storage network's bridge (if no node made it yet) and give it the service address."""
    network = conn.network.find_network(STORAGE_NETWORK)
    if network is None:
        raise StorageNetworkError(f"the seed's network {STORAGE_NETWORK!r} is missing; sandbox/seed.yaml "
                                  "must list it (run `container-infra sandbox up` again after restoring it)")
    name = bridge_name(network.id)
    if not Path(f"/sys/class/net/{name}").exists():
        result = _ip("link", "add", name, "mtu", str(network.mtu or mtu), "type", "bridge", check=False)
        if result.returncode != 0 and "exists" not in result.stderr:
            raise StorageNetworkError(f"cannot create the storage bridge {name}: {result.stderr.strip()}")
    disable_ipv6 = Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
    if disable_ipv6.exists():
        disable_ipv6.write_text("1")
    if STORAGE_SERVICE_ADDRESS not in _ip("-o", "-4", "addr", "show", "dev", name).stdout:
        _ip("addr", "add", service_interface(), "dev", name)
    _ip("link", "set", "dev", name, "up")
    return name
