"""The sandbox's own lifecycle: down keeps state and leaves no process; reset leaves no resource;
after a crash (every process of the sandbox and the node containers' parents killed) `up` recovers
a consistent cloud.

Named to run last and alone: these tests kill, stop and wipe the cloud the other tests use (and
bring it back up).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import openstack
import pytest
import yaml
from cluster_access import ssh, wait_ssh

from container_infra.sandbox import ceph, clouds, images, manager, nodes, registry
from container_infra.sandbox.configs import DOCKER_COMPUTE_HOST
from container_infra.sandbox.layout import APIS, FAULT_ADMIN_PORT, MARIADB_PORT, STORAGE_SERVICE_ADDRESS
from container_infra.sandbox.supervisor import Supervisor, sandbox_pids


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture(scope="module")
def keypair(tmp_path_factory, sandbox):
    path = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def boot_reachable_node(conn, key, name: str):
    """A server in the Docker zone with a floating IP, once it answers SSH: (server, floating IP)."""
    keypair = conn.compute.create_keypair(name=name, public_key=key.with_suffix(".pub").read_text())
    image = conn.image.find_image("fedora-coreos-sandbox", ignore_missing=False)
    flavor = conn.compute.find_flavor("bm.standard", ignore_missing=False)
    network = conn.network.find_network("private", ignore_missing=False)
    server = conn.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id, key_name=keypair.name,
                                        networks=[{"uuid": network.id}], availability_zone=nodes.DOCKER_ZONE)
    server = conn.compute.wait_for_server(server, wait=300)
    port = next(conn.network.ports(device_id=server.id))
    external = conn.network.find_network("public", ignore_missing=False)
    ip = conn.network.create_ip(floating_network_id=external.id, port_id=port.id)
    wait_ssh(ip.floating_ip_address, key, timeout=120, interval=2)
    return server, ip


def delete_node(conn, server, ip, name: str) -> None:
    conn.network.delete_ip(ip, ignore_missing=True)
    conn.compute.delete_server(server, ignore_missing=True)
    conn.compute.wait_for_delete(server, wait=120)
    conn.compute.delete_keypair(name, ignore_missing=True)


def node_container_ids() -> dict[str, str]:
    """container id -> server id of every node container (the sandbox's label)."""
    result = subprocess.run(["docker", "ps", "-a", "--filter", f"label={nodes.NODE_LABEL}", "--format",
                             f'{{{{.ID}}}} {{{{.Label "{nodes.NODE_LABEL}"}}}}'],
                            capture_output=True, text=True, check=True)
    return dict(line.split() for line in result.stdout.splitlines() if len(line.split()) == 2)


def running_containers() -> set[str]:
    result = subprocess.run(["docker", "ps", "--filter", f"label={nodes.NODE_LABEL}", "--format",
                             f'{{{{.Label "{nodes.NODE_LABEL}"}}}}'], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def container_parent_pids() -> list[int]:
    """The processes that hold the node containers (containerd's shims): their death is the nodes' crash."""
    pids = []
    for container in node_container_ids():
        result = subprocess.run(["docker", "inspect", "--format", "{{.State.Pid}}", container],
                                capture_output=True, text=True, check=False)
        pid = int(result.stdout.strip() or 0)
        if pid:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pids.append(int(stat.split(") ", 1)[1].split()[1]))
    return pids


SANDBOX_PORTS = [api.public_port for api in APIS] + [api.internal_port for api in APIS] + [FAULT_ADMIN_PORT,
                                                                                          MARIADB_PORT]


def listening_pids(ports: list[int]) -> dict[int, set[int]]:
    """port -> the processes listening on it (``ss``), for the ports given that are listened on."""
    result = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True)
    found: dict[int, set[int]] = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        port = int(fields[3].rsplit(":", 1)[1])
        if port in ports:
            found.setdefault(port, set()).update(int(pid) for pid in re.findall(r"pid=(\d+)", line))
    return found


def not_running(sandbox) -> list[str]:
    return [f"{service.name}: {service.state}" for service in manager.status(sandbox) if service.state != "RUNNING"]


def kill(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def assert_no_node_leftovers(sandbox, address: str) -> None:
    assert node_container_ids() == {}, "node containers outlived the sandbox"
    assert nodes.sandbox_links() == [], "the sandbox's bridges or veths outlived it"
    assert sandbox_pids(sandbox) == [], "processes of the sandbox (the marker variable) outlived it"
    assert not listening(22, address), f"{address}:22 still forwards"


def test_crash_then_up_recovers_a_consistent_cloud(sandbox, keypair, unique_name):
    conn = openstack.connect(cloud="sandbox")
    server, ip = boot_reachable_node(conn, keypair, unique_name)
    # A file on the node's disk: the node that comes back is the same machine, not a new one.
    marker = uuid.uuid4().hex
    ssh(ip.floating_ip_address, keypair, f"echo {marker} > ~/crash-marker")
    # A container with no server behind it (as if its server was deleted while nova-compute was down).
    orphan = f"sandbox-node-{uuid.uuid4()}"
    image = subprocess.run(["docker", "inspect", "--format", "{{.Config.Image}}",
                            f"sandbox-node-{server.id}"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["docker", "create", "--name", orphan, "--label", f"{nodes.NODE_LABEL}={uuid.uuid4()}", image],
                   capture_output=True, check=True)
    try:
        # Every server process is found by its marker (process titles must not hide it), so that a
        # crash leaves nothing that `up` cannot find and stop.
        marked = set(sandbox_pids(sandbox))
        unmarked = {port: pids - marked for port, pids in listening_pids(SANDBOX_PORTS).items() if pids - marked}
        assert not unmarked, f"listening processes without the sandbox's marker: {unmarked}"
        kill(marked)
        kill(container_parent_pids())
        # A killed process leaves /proc's view of its environment before it closes its sockets (the kernel
        # frees its memory first), so its ports are waited for too: on a loaded machine that lasts seconds.
        deadline = time.monotonic() + 60
        while (left := (sandbox_pids(sandbox), running_containers(), listening_pids(SANDBOX_PORTS))) != ([], set(), {}):
            assert time.monotonic() < deadline, f"the killed processes did not die (pids, nodes, ports): {left}"
            time.sleep(0.5)

        manager.up(sandbox, report)

        assert not_running(sandbox) == []
        conn = openstack.connect(cloud="sandbox")
        # The API works: a network round trip.
        network = conn.network.create_network(name=f"{unique_name}-after")
        conn.network.delete_network(network)
        # The pre-existing node is back: ACTIVE, reachable over its floating IP, its disk kept.
        deadline = time.monotonic() + 180
        while (status := conn.compute.get_server(server.id).status) != "ACTIVE":
            assert time.monotonic() < deadline, f"server {server.id} is {status} after up"
            time.sleep(2)
        wait_ssh(ip.floating_ip_address, keypair, timeout=120, interval=2)
        assert ssh(ip.floating_ip_address, keypair, "cat ~/crash-marker").stdout.strip() == marker
        # Nova and Docker agree: no container without a server, every ACTIVE Docker-host server runs.
        # (`up` returns once the services answer; the Docker host may still be restarting nodes.)
        admin = openstack.connect(cloud="sandbox-admin")
        servers = {s.id: s.status for s in admin.compute.servers(all_projects=True)
                   if s.compute_host == DOCKER_COMPUTE_HOST}
        containers = set(node_container_ids().values())
        assert containers <= set(servers), f"containers without a server: {containers - set(servers)}"
        active = {sid for sid, status in servers.items() if status == "ACTIVE"}
        deadline = time.monotonic() + 180
        while missing := active - running_containers():
            assert time.monotonic() < deadline, f"ACTIVE servers without a running node: {missing}"
            time.sleep(2)
        assert subprocess.run(["docker", "inspect", orphan], capture_output=True).returncode != 0
    finally:
        subprocess.run(["docker", "rm", "--force", orphan], capture_output=True, check=False)
        if not_running(sandbox):
            # Failed before its own `up`: the cloud comes back, so the tests after this one judge their own work.
            manager.up(sandbox, report)
        delete_node(openstack.connect(cloud="sandbox"), server, ip, unique_name)


def report(message: str) -> None:
    print(f"sandbox: {message}")


def test_down_stops_everything_and_up_keeps_every_resource(sandbox, osc, keypair, unique_name, tmp_path):
    """One down/up cycle for every kind of state: a network, a share with its data, a server and its node."""
    conn = openstack.connect(cloud="sandbox")
    network = conn.network.create_network(name=unique_name)
    conn.network.create_subnet(network_id=network.id, name=unique_name, cidr="192.0.2.0/24", ip_version=4)
    server, ip = boot_reachable_node(conn, keypair, unique_name)
    address = ip.floating_ip_address
    osc.run("share", "create", "CEPHFS", "1", "--name", unique_name, "--share-type", "cephfs", "--wait")
    try:
        osc.run("share", "access", "create", unique_name, "cephx", f"{unique_name}-user")
        rule = wait_for(lambda: next((r for r in osc.json("share", "access", "list", unique_name)
                                      if r["State"] == "active"), None), "the access rule")
        path = osc.json("share", "export", "location", "list", unique_name)[0]["Path"].split(":", 2)[2]
        share_marker = uuid.uuid4().hex
        with host_mount(sandbox, tmp_path, f"{unique_name}-user", rule["Access Key"], path) as mountpoint:
            (mountpoint / "kept").write_text(share_marker)
        assert node_container_ids() and nodes.sandbox_links()

        manager.down(sandbox)
        assert sandbox_pids(sandbox) == []
        assert [port for port in SANDBOX_PORTS if listening(port)] == []
        assert all(service.state != "RUNNING" for service in manager.status(sandbox))
        # The storage address went with the bridge: nothing of Ceph listens any more.
        assert STORAGE_SERVICE_ADDRESS not in subprocess.run(["ip", "-o", "addr"], capture_output=True,
                                                              text=True, check=True).stdout
        assert_no_node_leftovers(sandbox, address)

        manager.up(sandbox, report)
        assert not_running(sandbox) == []
        conn = openstack.connect(cloud="sandbox")
        kept = conn.network.find_network(unique_name)
        assert kept is not None and kept.id == network.id
        assert [subnet.cidr for subnet in conn.network.subnets(network_id=network.id)] == ["192.0.2.0/24"]
        # The share, its rule and its data.
        assert osc.json("share", "show", unique_name)["status"] == "available"
        rules = osc.json("share", "access", "list", unique_name)
        assert [(r["Access To"], r["State"]) for r in rules] == [(f"{unique_name}-user", "active")]
        with host_mount(sandbox, tmp_path, f"{unique_name}-user", rules[0]["Access Key"], path) as mountpoint:
            assert (mountpoint / "kept").read_text() == share_marker
        # The server outlived `down` in Nova; `up` brought its node back (a new container: `down` removes
        # the nodes, unlike a crash, after which the same containers restart with their disks).
        wait_ssh(address, keypair, timeout=120, interval=2)
        assert server.id in running_containers()
    finally:
        osc.run("share", "delete", "--wait", unique_name, check=False)
        conn = openstack.connect(cloud="sandbox")
        delete_node(conn, server, ip, unique_name)
        conn.network.delete_network(network, if_revision=None, ignore_missing=True)


def test_up_mends_a_scheduler_that_cached_no_pool(sandbox, osc_admin):
    """Pools listed before the share service reported are cached empty by Manila's scheduler; up mends it."""
    supervisor = Supervisor(sandbox)
    supervisor.stop("manila-share", "manila-scheduler")
    supervisor.start("manila-scheduler")
    # Asked while the stopped share service's row is still fresh: the new scheduler caches its backend
    # with no pool, and its cached listing stays empty after the service is back.
    assert osc_admin.json("share", "pool", "list") == []
    supervisor.start("manila-share")

    manager.up(sandbox, report)
    assert [pool["Name"] for pool in osc_admin.json("share", "pool", "list")] == ["sandbox-manila@cephfsnative#cephfs"]


def wait_for(predicate, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(1)
    return value


def ceph_user_exists(layout, user: str) -> bool:
    return f"client.{user}" in ceph.ceph(layout, "auth", "ls")


def registry_repositories(layout) -> list[str]:
    return registry.Client(registry.REGISTRY, registry.ca_path(layout)).catalog()


@contextlib.contextmanager
def host_mount(layout, tmp_path: Path, user: str, key: str, path: str):
    """ceph-fuse on this machine (a client of the storage network like any node), with the share's key."""
    conf, keyring = tmp_path / "client.conf", tmp_path / "client.keyring"
    conf.write_text(ceph.client_conf(ceph.fsid(layout)))
    keyring.write_text(f"[client.{user}]\n\tkey = {key}\n")
    keyring.chmod(0o600)
    mountpoint = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
    mountpoint.mkdir()
    subprocess.run(["ceph-fuse", "--conf", str(conf), "--id", user, "--keyring", str(keyring), "-r", path,
                    str(mountpoint)], check=True, capture_output=True, timeout=60)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False, capture_output=True)


def test_reset_leaves_no_resource_and_up_reseeds(sandbox, osc, keypair, unique_name):
    """Runs last in this file: it wipes everything the cloud holds, a running node included."""
    conn = openstack.connect(cloud="sandbox")
    conn.network.create_network(name=unique_name)
    _, ip = boot_reachable_node(conn, keypair, unique_name)
    assert node_container_ids() and nodes.sandbox_links()
    # Storage and images: a share with a cephx key, and an image in the registry.
    osc.run("share", "create", "CEPHFS", "1", "--name", unique_name, "--share-type", "cephfs", "--wait")
    osc.run("share", "access", "create", unique_name, "cephx", f"{unique_name}-user")
    wait_for(lambda: ceph_user_exists(sandbox, f"{unique_name}-user"), "the share's cephx key")
    images.build(["base"], report, registry.ca_path(sandbox))
    assert registry_repositories(sandbox)

    manager.reset(sandbox)
    assert sandbox_pids(sandbox) == []
    assert not sandbox.mysql.exists() and not sandbox.secrets_file.exists()
    assert not ceph.data_dir(sandbox).exists() and not (sandbox.data / "registry").exists()
    document = yaml.safe_load(clouds.clouds_file().read_text()) or {}
    assert not set(clouds.CLOUD_NAMES) & set(document.get("clouds", {}))
    assert_no_node_leftovers(sandbox, ip.floating_ip_address)

    manager.up(sandbox, report)
    conn = openstack.connect(cloud="sandbox")
    assert conn.network.find_network(unique_name) is None
    assert conn.network.find_network("lln") is not None
    assert conn.image.find_image("fedora-coreos-sandbox") is not None
    # No share, subvolume, key or image is left: a new cluster, a new file system, an empty registry.
    assert osc.json("share", "list") == []
    assert ceph.ceph_json(sandbox, "fs", "subvolume", "ls", ceph.FS_NAME) == []
    assert not ceph_user_exists(sandbox, f"{unique_name}-user")
    assert registry_repositories(sandbox) == []
    # The server went with the database: no node comes back.
    assert node_container_ids() == {}
