"""The sandbox's real storage and registry: Ceph, Manila's own CephFS driver on it, nodes that mount its
shares, and nodes that pull the sandbox's images.

Two Docker-backed nodes are booted once for the file; each gets a port on the storage network through
the toolkit's own attachment (os_server_interface), the way a cluster's nodes get theirs from the
spec's `networks`, mounts shares with ceph-fuse over it and pulls from the registry on it.
"""

from __future__ import annotations

import re
import shlex
import time

import pytest
from ansible_runner import ansible_module
from cluster_access import ssh, wait_ssh
from test_docker_nodes import boot, delete, with_floating_ip

from container_infra.sandbox import ceph, images, registry
from container_infra.sandbox.layout import STORAGE_CIDR, STORAGE_NETWORK, STORAGE_SERVICE_ADDRESS

GIB = 1024**3
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def wait_for(predicate, what: str, timeout: float = 120):
    delay, deadline = 0.5, time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(delay)
        delay = min(delay * 1.5, 3)


def subvolumes(layout) -> set[str]:
    return {entry["name"] for entry in ceph.ceph_json(layout, "fs", "subvolume", "ls", ceph.FS_NAME)}


def subvolume_info(layout, name: str) -> dict:
    return ceph.ceph_json(layout, "fs", "subvolume", "info", ceph.FS_NAME, name)


def share_instance(osc_admin, share: str) -> str:
    """The share's instance id: the CephFS driver names the subvolume after it."""
    instances = osc_admin.json("share", "instance", "list", "--share", share)
    return instances[0]["ID"]


def create_share(osc, name: str, size: int = 1) -> dict:
    osc.json("share", "create", "CEPHFS", str(size), "--name", name, "--share-type", "cephfs", "--wait")
    return osc.json("share", "show", name)


def allow(osc, share: str, user: str) -> dict:
    osc.run("share", "access", "create", share, "cephx", user)
    return wait_for(lambda: next((rule for rule in osc.json("share", "access", "list", share)
                                  if rule["Access To"] == user and rule["State"] in ("active", "error")), None),
                    f"the access rule of {user} on {share}")


def export_path(osc, share: str) -> str:
    return osc.json("share", "export", "location", "list", share)[0]["Path"]


@pytest.fixture(scope="module")
def storage_nodes(sandbox, osc, ssh_keypair):
    """Two nodes with a port on the storage network (attached by the toolkit), reachable over SSH."""
    key_name, key = ssh_keypair
    names = [f"stor-{key_name[-8:]}-a", f"stor-{key_name[-8:]}-b"]
    addresses = []
    try:
        # The nodes run their own dockerd (metadata sandbox_dockerd), to pull from the registry.
        boot(osc, names, key_name, properties={"sandbox_dockerd": "true"})
        attached = ansible_module("os_server_interface", {
            "cloud": "sandbox", "servers": names, "interfaces": [{"network": STORAGE_NETWORK}],
            "poll_interval": 1})
        assert attached["changed"], attached.get("msg")
        nodes = []
        for name in names:
            address = with_floating_ip(osc, name)
            addresses.append(address)
            wait_ssh(address, key)
            port = attached["servers"][name][STORAGE_NETWORK]
            # What the NIC role does from the inventory: the port's address on the interface of its MAC.
            interface = wait_for(lambda a=address, p=port: next(
                (line.split(":")[1].strip().split("@")[0] for line in ssh(a, key, "ip -o link").stdout.splitlines()
                 if p["mac"] in line), None), f"the storage NIC of {name}", timeout=30)
            ssh(address, key,
                f"sudo ip link set {interface} up && sudo ip addr replace {port['ip']}/24 dev {interface}")
            nodes.append({"name": name, "address": address, "key": key})
        yield nodes
    finally:
        delete(osc, *names)
        for address in addresses:
            osc.run("floating", "ip", "delete", address, check=False)


def node_run(node, command: str, check: bool = True):
    return ssh(node["address"], node["key"], command, check=check)


def mount(node, layout, user: str, key: str, path: str, mountpoint: str = "/mnt/share", check: bool = True):
    """ceph-fuse as a user would run it: a client conf with the monitors, the key 0600, the share's path."""
    conf = ceph.client_conf(ceph.fsid(layout))
    keyring = f"[client.{user}]\n\tkey = {key}\n"
    script = (
        "set -e; sudo install -d -m 0755 /etc/ceph; "
        f"printf %s {shlex.quote(conf)} | sudo tee /etc/ceph/ceph.conf >/dev/null; "
        f"printf %s {shlex.quote(keyring)} | sudo install -m 0600 /dev/stdin /etc/ceph/ceph.client.{user}.keyring; "
        f"sudo install -d {mountpoint}; "
        f"sudo timeout 60 ceph-fuse --conf /etc/ceph/ceph.conf --id {user} -r {shlex.quote(path)} {mountpoint}"
    )
    return node_run(node, script, check=check)


def umount(node, mountpoint: str = "/mnt/share") -> None:
    node_run(node, f"sudo umount {mountpoint} 2>/dev/null || sudo fusermount3 -u {mountpoint} 2>/dev/null; true")


def test_ceph_is_healthy_with_an_active_mds(sandbox):
    state = ceph.health(sandbox)
    assert state["health"] == "HEALTH_OK", state
    assert state["osds_up"] == 1 and state["mds_up"] == 1 and state["mgr_available"]
    mons = ceph.ceph_json(sandbox, "mon", "dump")["mons"]
    assert [mon["addr"] for mon in mons] == [f"{STORAGE_SERVICE_ADDRESS}:6789/0"]


def test_share_lifecycle_through_the_cli_is_what_ceph_holds(sandbox, osc, osc_admin, unique_name):
    share = create_share(osc, unique_name)
    try:
        assert share["status"] == "available" and share["size"] == 1
        subvolume = share_instance(osc_admin, unique_name)
        assert subvolume in subvolumes(sandbox)
        assert subvolume_info(sandbox, subvolume)["bytes_quota"] == 1 * GIB

        rule = allow(osc, unique_name, f"{unique_name}-user")
        assert rule["State"] == "active" and rule["Access Key"]
        # The key is Ceph's own for that ID.
        assert ceph.ceph_json(sandbox, "auth", "get", f"client.{unique_name}-user")[0]["key"] == rule["Access Key"]

        path = export_path(osc, unique_name)
        assert re.fullmatch(rf"{STORAGE_SERVICE_ADDRESS}:6789:/volumes/_nogroup/{subvolume}/{UUID}", path), path
        assert path.split(":", 2)[2] == ceph.ceph(sandbox, "fs", "subvolume", "getpath", ceph.FS_NAME,
                                                  subvolume).strip()

        osc.run("share", "resize", "--wait", unique_name, "2")
        assert osc.json("share", "show", unique_name)["size"] == 2
        assert subvolume_info(sandbox, subvolume)["bytes_quota"] == 2 * GIB

        osc.run("share", "snapshot", "create", "--name", f"{unique_name}-snap", "--wait", unique_name)
        snapshots = ceph.ceph_json(sandbox, "fs", "subvolume", "snapshot", "ls", ceph.FS_NAME, subvolume)
        assert len(snapshots) == 1
        osc.run("share", "snapshot", "delete", "--wait", f"{unique_name}-snap")
        assert ceph.ceph_json(sandbox, "fs", "subvolume", "snapshot", "ls", ceph.FS_NAME, subvolume) == []
    finally:
        osc.run("share", "snapshot", "delete", "--wait", f"{unique_name}-snap", check=False)
        osc.run("share", "delete", "--wait", unique_name, check=False)
    assert subvolume not in subvolumes(sandbox)


def test_two_nodes_share_files_within_the_quota_and_only_with_their_key(sandbox, osc, storage_nodes, unique_name):
    first, second = storage_nodes
    other = f"{unique_name}-o"
    create_share(osc, unique_name)
    create_share(osc, other)
    try:
        user, stranger = f"{unique_name}-rw", f"{unique_name}-x"
        rule = allow(osc, unique_name, user)
        key = rule["Access Key"]
        stranger_key = allow(osc, other, stranger)["Access Key"]
        path = export_path(osc, unique_name).split(":", 2)[2]

        started = time.monotonic()
        for node in storage_nodes:
            mount(node, sandbox, user, key, path)
        mounted_in = (time.monotonic() - started) / 2
        print(f"ceph-fuse mount: {mounted_in:.1f} s per node")
        node_run(first, "echo written-on-a | sudo tee /mnt/share/hello >/dev/null")
        assert node_run(second, "cat /mnt/share/hello").stdout.strip() == "written-on-a"
        assert "ceph-fuse" in node_run(second, "grep ' /mnt/share ' /proc/mounts").stdout

        # The share's size is Ceph's quota on the subvolume: writing past 1 GiB fails.
        over = node_run(first, "sudo dd if=/dev/zero of=/mnt/share/big bs=4M count=320 conv=fsync 2>&1",
                        check=False)
        assert over.returncode != 0 and "quota" in over.stdout.lower(), over.stdout[-500:]
        node_run(first, "sudo rm -f /mnt/share/big")

        # A key for another subvolume does not mount this one.
        refused = mount(second, sandbox, stranger, stranger_key, path, mountpoint="/mnt/other", check=False)
        assert refused.returncode != 0
        assert " /mnt/other " not in node_run(second, "cat /proc/mounts").stdout

        # Access denied: the key is gone from Ceph and a new mount is refused.
        umount(second)
        osc.run("share", "access", "delete", unique_name, rule["ID"])
        wait_for(lambda: not osc.json("share", "access", "list", unique_name), "the access rule's removal")
        assert f"client.{user}" not in ceph.ceph(sandbox, "auth", "ls")
        again = mount(second, sandbox, user, key, path, check=False)
        assert again.returncode != 0
    finally:
        for node in storage_nodes:
            umount(node)
            umount(node, "/mnt/other")
        osc.run("share", "delete", "--wait", unique_name, check=False)
        osc.run("share", "delete", "--wait", other, check=False)


def wait_docker(node) -> None:
    wait_for(lambda: node_run(node, "docker info >/dev/null 2>&1", check=False).returncode == 0,
             f"dockerd on {node['name']}", timeout=60)


def test_nodes_pull_from_the_registry_and_a_swarm_service_runs_it_everywhere(sandbox, storage_nodes):
    image = images.image_name("base")
    images.build(["base"], print, registry.ca_path(sandbox))
    first, second = storage_nodes
    for node in storage_nodes:
        wait_docker(node)
    # Over verified TLS: the node trusts the sandbox's registry CA, and nothing else was configured.
    pulled = node_run(first, f"docker pull -q {image} && docker run --rm {image} cat /etc/debian_version")
    assert re.search(r"^\d+\.\d+$", pulled.stdout.strip().splitlines()[-1]), pulled.stdout
    assert "insecure" not in node_run(first, "docker info --format '{{json .RegistryConfig}}'").stdout.lower() \
        .replace('"insecureregistrycidrs":["127.0.0.0/8"]', "")

    storage_ip = node_run(first, f"ip -4 -o addr show to {STORAGE_CIDR}").stdout.split()[3].split("/")[0]
    service = "registry-probe"
    try:
        node_run(first, f"docker swarm init --advertise-addr {storage_ip} >/dev/null")
        token = node_run(first, "docker swarm join-token -q worker").stdout.strip()
        node_run(second, f"docker swarm join --token {token} {storage_ip}:2377 >/dev/null")
        node_run(first, f"docker service create -d --quiet --mode global --name {service} {image} sleep 600")

        def running() -> set[str] | None:
            out = node_run(first, f"docker service ps {service} --filter desired-state=running "
                                  "--format '{{.Node}} {{.CurrentState}}'").stdout
            nodes = {line.split()[0] for line in out.splitlines() if " Running " in f" {line} "}
            return nodes if len(nodes) == 2 else None

        assert wait_for(running, "the global service on both nodes", timeout=120) == {
            node_run(node, "hostname").stdout.strip() for node in storage_nodes}
    finally:
        node_run(first, f"docker service rm {service} >/dev/null 2>&1; true", check=False)
        node_run(second, "docker swarm leave --force >/dev/null 2>&1; true", check=False)
        node_run(first, "docker swarm leave --force >/dev/null 2>&1; true", check=False)
