"""The sandbox's own lifecycle: down keeps state and leaves no process; reset leaves no resource.

Named to run last: these tests stop and wipe the cloud the other tests use (and bring it back up).
"""

from __future__ import annotations

import socket

import openstack
import yaml

from container_infra.sandbox import clouds, manager
from container_infra.sandbox.layout import APIS, FAULT_ADMIN_PORT, MARIADB_PORT
from container_infra.sandbox.supervisor import sandbox_pids


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def report(message: str) -> None:
    print(f"sandbox: {message}")


def test_down_stops_everything_and_up_keeps_every_resource(sandbox, unique_name):
    conn = openstack.connect(cloud="sandbox")
    network = conn.network.create_network(name=unique_name)
    conn.network.create_subnet(network_id=network.id, name=unique_name, cidr="192.0.2.0/24", ip_version=4)

    manager.down(sandbox)
    assert sandbox_pids(sandbox) == []
    ports = [api.public_port for api in APIS] + [api.internal_port for api in APIS] + [FAULT_ADMIN_PORT, MARIADB_PORT]
    assert [port for port in ports if listening(port)] == []
    assert all(service.state != "RUNNING" for service in manager.status(sandbox))

    manager.up(sandbox, report)
    assert all(service.state == "RUNNING" for service in manager.status(sandbox))
    conn = openstack.connect(cloud="sandbox")
    kept = conn.network.find_network(unique_name)
    assert kept is not None and kept.id == network.id
    assert [subnet.cidr for subnet in conn.network.subnets(network_id=network.id)] == ["192.0.2.0/24"]
    conn.network.delete_network(network, if_revision=None)


def test_reset_leaves_no_resource_and_up_reseeds(sandbox, unique_name):
    conn = openstack.connect(cloud="sandbox")
    conn.network.create_network(name=unique_name)

    manager.reset(sandbox)
    assert sandbox_pids(sandbox) == []
    assert not sandbox.mysql.exists() and not sandbox.secrets_file.exists()
    document = yaml.safe_load(clouds.clouds_file().read_text()) or {}
    assert not set(clouds.CLOUD_NAMES) & set(document.get("clouds", {}))

    manager.up(sandbox, report)
    conn = openstack.connect(cloud="sandbox")
    assert conn.network.find_network(unique_name) is None
    assert conn.network.find_network("lln") is not None
    assert conn.image.find_image("fedora-coreos-sandbox") is not None
