"""The sandbox's Docker-backed nodes: real machines behind Nova, Neutron ports and floating IPs.

Servers booted in the Docker host's availability zone are containers of the node image; the test
reaches them as Ansible does, over SSH through a floating IP on the loopback range, with the
keypair's key and the image's login user.
"""

from __future__ import annotations

import subprocess
import time

from cluster_access import ssh, wait_server_status, wait_ssh

from container_infra.sandbox.nodes import DOCKER_ZONE, NODE_LABEL


def node_containers(server_id: str | None = None) -> list[str]:
    label = f"{NODE_LABEL}={server_id}" if server_id else NODE_LABEL
    result = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


def boot(osc, names: list[str], key: str, properties: dict[str, str] | None = None,
         flavor: str = "bm.standard") -> dict[str, dict]:
    """Create servers at once in the Docker zone; wait until each is ACTIVE (sshd answers then)."""
    options = [arg for key_value in (properties or {}).items() for arg in ("--property", "=".join(key_value))]
    for name in names:
        osc.run("server", "create", "--flavor", flavor, "--image", "fedora-coreos-sandbox",
                "--network", "private", "--key-name", key, "--availability-zone", DOCKER_ZONE, *options, name)
    for name in names:
        wait_server_status(osc, name, "ACTIVE")
    return {name: osc.json("server", "show", name) for name in names}


def with_floating_ip(osc, server: str) -> str:
    address = osc.json("floating", "ip", "create", "public")["floating_ip_address"]
    osc.run("server", "add", "floating", "ip", server, address)
    return address


def delete(osc, *names: str) -> None:
    for name in names:
        osc.run("server", "delete", "--wait", name, check=False)


def test_node_is_a_machine_reached_over_its_floating_ip(osc, ssh_keypair, unique_name):
    key_name, key = ssh_keypair
    name = f"dkr-{unique_name}"
    address = None
    server = {"id": "none"}
    try:
        server = boot(osc, [name], key_name)[name]
        assert len(node_containers(server["id"])) == 1
        address = with_floating_ip(osc, name)
        wait_ssh(address, key)
        out = ssh(address, key, "hostname; id -un; sudo -n id -u; python3 -c 'print(42)'; ip -4 -o addr show eth0")
        lines = out.stdout.splitlines()
        assert lines[:4] == [name, "core", "0", "42"]
        fixed = server["addresses"]["private"][0]
        assert f" {fixed}/24 " in lines[4]
        fip = osc.json("floating", "ip", "show", address)
        assert fip["status"] == "ACTIVE"

        # Disassociated: the address no longer forwards.
        osc.run("server", "remove", "floating", "ip", name, address)
        deadline = time.monotonic() + 15
        while ssh(address, key, "true", check=False).returncode == 0:
            assert time.monotonic() < deadline, "the floating IP still forwards after disassociation"
            time.sleep(1)
    finally:
        delete(osc, name)
        if address:
            osc.run("floating", "ip", "delete", address, check=False)
    # Deleted: its container is gone.
    assert node_containers(server["id"]) == []


def test_reboot_and_power_cycle_keep_the_node_reachable(osc, ssh_keypair, unique_name):
    key_name, key = ssh_keypair
    name = f"dkr-{unique_name}"
    address = None
    try:
        server = boot(osc, [name], key_name)[name]
        address = with_floating_ip(osc, name)
        wait_ssh(address, key)
        osc.run("server", "stop", name)
        wait_server_status(osc, name, "SHUTOFF", timeout=60)
        assert ssh(address, key, "true", check=False).returncode != 0
        osc.run("server", "start", name)
        wait_server_status(osc, name, "ACTIVE", timeout=60)
        wait_ssh(address, key)
        osc.run("server", "reboot", "--hard", "--wait", name)
        wait_ssh(address, key)
        assert ssh(address, key, "ip -4 -o addr show eth0").stdout.count("inet ") == 1
        assert len(node_containers(server["id"])) == 1
    finally:
        delete(osc, name)
        if address:
            osc.run("floating", "ip", "delete", address, check=False)


def test_lln_port_on_two_nodes(osc, ssh_keypair, unique_name):
    key_name, key = ssh_keypair
    names = [f"dkr-{unique_name}-a", f"dkr-{unique_name}-b"]
    ports = [f"dkr-{unique_name}-lln-a", f"dkr-{unique_name}-lln-b"]
    addresses = []
    servers = {}
    try:
        servers = boot(osc, names, key_name)
        mtu = osc.json("network", "show", "lln")["mtu"]
        attached = []
        for name, port_name in zip(names, ports, strict=True):
            port = osc.json("port", "create", "--network", "lln", port_name)
            osc.run("server", "add", "port", name, port["id"])
            attached.append(port)
            addresses.append(with_floating_ip(osc, name))
        for address in addresses:
            wait_ssh(address, key)

        # A hot-plugged NIC: the port's MAC and the network's MTU, no address, link down.
        interfaces = []
        for address, port in zip(addresses, attached, strict=True):
            links = ssh(address, key, "ip -o link show").stdout
            line = next((line for line in links.splitlines() if port["mac_address"] in line), None)
            assert line, f"no interface with MAC {port['mac_address']} in {links}"
            assert f" mtu {mtu} " in line
            interface = line.split(":")[1].strip().split("@")[0]
            assert not ssh(address, key, f"ip -4 -o addr show {interface}").stdout.strip()
            interfaces.append(interface)

        # Configured by hand with each port's fixed IP, the two nodes reach each other over lln.
        ips = [port["fixed_ips"][0]["ip_address"] for port in attached]
        for address, interface, ip in zip(addresses, interfaces, ips, strict=True):
            ssh(address, key, f"sudo ip link set {interface} up && sudo ip addr add {ip}/16 dev {interface}")
        ping = ssh(addresses[0], key, f"ping -c 2 -W 2 -I {interfaces[0]} {ips[1]}", check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr

        # Detached: the interface disappears from the node.
        osc.run("server", "remove", "port", names[0], attached[0]["id"])
        deadline = time.monotonic() + 30
        while attached[0]["mac_address"] in ssh(addresses[0], key, "ip -o link show").stdout:
            assert time.monotonic() < deadline, "the detached port's interface is still in the node"
            time.sleep(1)
    finally:
        delete(osc, *names)
        for port_name in ports:
            osc.run("port", "delete", port_name, check=False)
        for address in addresses:
            osc.run("floating", "ip", "delete", address, check=False)
    for server in servers.values():
        assert node_containers(server["id"]) == []


def test_nodes_on_different_networks_do_not_reach_each_other(osc, ssh_keypair, unique_name):
    """Ports on hte and lln are separate bridges: an address on one is not reachable from the other."""
    key_name, key = ssh_keypair
    names = [f"dkr-{unique_name}-a", f"dkr-{unique_name}-b"]
    ports = [f"dkr-{unique_name}-hte", f"dkr-{unique_name}-lln"]
    addresses = []
    try:
        boot(osc, names, key_name)
        interfaces = []
        for name, port_name, network in zip(names, ports, ("hte", "lln"), strict=True):
            port = osc.json("port", "create", "--network", network, port_name)
            osc.run("server", "add", "port", name, port["id"])
            address = with_floating_ip(osc, name)
            addresses.append(address)
            wait_ssh(address, key)
            deadline = time.monotonic() + 30
            while port["mac_address"] not in (links := ssh(address, key, "ip -o link show").stdout):
                assert time.monotonic() < deadline
                time.sleep(1)
            line = next(line for line in links.splitlines() if port["mac_address"] in line)
            interfaces.append(line.split(":")[1].strip().split("@")[0])
        for address, interface, ip in zip(addresses, interfaces, ("192.168.77.1", "192.168.77.2"), strict=True):
            ssh(address, key, f"sudo ip link set {interface} up && sudo ip addr add {ip}/24 dev {interface}")
        ping = ssh(addresses[0], key, f"ping -c 2 -W 1 -I {interfaces[0]} 192.168.77.2", check=False)
        assert ping.returncode != 0, "nodes reached each other across two different networks"
    finally:
        delete(osc, *names)
        for port_name in ports:
            osc.run("port", "delete", port_name, check=False)
        for address in addresses:
            osc.run("floating", "ip", "delete", address, check=False)
