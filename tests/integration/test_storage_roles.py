"""The storage role against the sandbox's real Ceph through Manila: playbooks/storage.yml as an operator
runs it, with the smallest inventory a cluster's written one would be (two nodes, each with its port on
the storage network recorded in container_infra_networks, the spec's storage list as container_infra_storage).

Two Docker-backed nodes are booted once for the file; the tests run in order (one share's life).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from ansible_runner import ansible_module
from cluster_access import ssh, wait_server_status, wait_ssh
from test_docker_nodes import boot, delete, with_floating_ip
from test_storage import create_share, wait_for

from container_infra.sandbox import ceph, images, registry
from container_infra.sandbox.layout import STORAGE_CIDR, STORAGE_NETWORK

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUN = uuid.uuid4().hex[:6]
CLUSTER = f"stor-{RUN}"
SHARE = f"stor-{RUN}-made"
MOUNT = "/mnt/scratch"


class Storage:
    """playbooks/storage.yml on the test's nodes, with a storage spec."""

    def __init__(self, work: Path, nodes: list[dict]):
        self.work, self.nodes = work, nodes
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        hosts = {node["name"]: {
            "ansible_host": node["address"], "ansible_user": "core",
            "ansible_ssh_private_key_file": str(node["key"]),
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
            "container_infra_cluster": CLUSTER, "container_infra_role": "worker",
            "container_infra_nodegroup": "default-worker",
            "container_infra_networks": {STORAGE_NETWORK: node["port"]},
        } for node in nodes}
        self.inventory = work / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {
            "vars": {"container_infra_storage_cloud": "sandbox"},
            "children": {"workers": {"hosts": hosts}, "masters": {"hosts": {}}}}}))

    def play(self, storage: list[dict], *extra: str, check: bool = True, callback: str = "ansible.posix.json"):
        spec = self.work / "storage.json"
        spec.write_text(json.dumps({"container_infra_storage": storage}))
        env = dict(self.env, ANSIBLE_STDOUT_CALLBACK=callback, ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
        started = time.monotonic()
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), "-e", f"@{spec}", *extra,
                               str(REPO / "playbooks" / "storage.yml")],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        done.elapsed = time.monotonic() - started
        if callback == "ansible.posix.json":
            try:
                done.report = json.loads(done.stdout[done.stdout.index("{"):])
            except ValueError:
                raise AssertionError(f"no JSON (rc {done.returncode}): {done.stdout[-3000:]} "
                                     f"{done.stderr[-2000:]}") from None
            if check:
                assert done.returncode == 0, f"storage.yml failed: {failures(done)} {done.stderr[-2000:]}"
        return done


def failures(done) -> list[str]:
    """The failed tasks' messages (a loop's: its failed items')."""
    return [item.get("msg", "") for play in done.report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")
            for item in ([r for r in result.get("results") or [] if r.get("failed")] or [result])]


def changed(done) -> int:
    return sum(host.get("changed", 0) for host in done.report["stats"].values())


def changed_tasks(done) -> list[str]:
    return [f"{task['task']['name']} on {host}" for play in done.report["plays"] for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("changed")]


def task_hosts(done, name: str) -> list[str]:
    return [host for play in done.report["plays"] for task in play["tasks"] if task["task"]["name"].endswith(name)
            for host in task["hosts"]]


def run(node, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return ssh(node["address"], node["key"], command, check=check)


def cephfs(share: str, **more) -> dict:
    entry = {"name": "scratch", "kind": "cephfs", "path": MOUNT, "mode": "0777", "cephfs": {"share": share}}
    entry["cephfs"].update(more.pop("cephfs", {}))
    return entry | more


@pytest.fixture(scope="module")
def nodes(sandbox, osc, ssh_keypair):
    key_name, key = ssh_keypair
    names = [f"stor-{RUN}-a", f"stor-{RUN}-b"]
    addresses = []
    try:
        # dockerd in the nodes (metadata sandbox_dockerd): the Gluster test runs glusterd in a container on one.
        boot(osc, names, key_name, properties={"sandbox_dockerd": "true"})
        attached = ansible_module("os_server_interface", {
            "cloud": "sandbox", "servers": names, "interfaces": [{"network": STORAGE_NETWORK}], "poll_interval": 1})
        out = []
        for name in names:
            address = with_floating_ip(osc, name)
            addresses.append(address)
            wait_ssh(address, key)
            port = attached["servers"][name][STORAGE_NETWORK]
            out.append({"name": name, "address": address, "key": key,
                        "port": {"ip": port["ip"], "mac": port["mac"], "mtu": port["mtu"], "cidr": STORAGE_CIDR,
                                 "prefix": int(STORAGE_CIDR.split("/")[1]), "port_id": port["port_id"],
                                 "gateway": None, "ipoib_mode": None}})
        yield out
    finally:
        delete(osc, *names)
        for address in addresses:
            osc.run("floating", "ip", "delete", address, check=False)


@pytest.fixture(scope="module")
def storage(nodes, tmp_path_factory, osc):
    yield Storage(tmp_path_factory.mktemp("storage"), nodes)
    osc.run("share", "delete", "--wait", SHARE, check=False)


def mounted(node, path: str = MOUNT) -> bool:
    return f" {path} " in run(node, "cat /proc/mounts").stdout


def test_a_share_the_toolkit_makes_is_mounted_on_both_nodes_once_asked_of_manila(storage, nodes, osc, sandbox):
    done = storage.play([cephfs(SHARE, cephfs={"create": True, "size": 1, "share_type": "cephfs"})])
    print(f"first run (share made, 2 nodes mounted): {done.elapsed:.1f} s")
    # Manila is asked once per share, from the control host, not once per node.
    assert len(task_hosts(done, "Ask Manila about each share before anything changes")) == 1
    assert len(task_hosts(done, "Ensure each share and its cephx access rule")) == 1
    first, second = nodes
    run(first, f"echo from-a | sudo tee {MOUNT}/hello >/dev/null")
    assert run(second, f"cat {MOUNT}/hello").stdout.strip() == "from-a"
    for node in nodes:
        assert mounted(node)
        line = run(node, f"grep ' {MOUNT} ' /etc/fstab").stdout
        assert "fuse.ceph" in line and "ceph.client_mountpoint=/volumes/" in line and "_netdev" in line
        keyring = re.search(r"ceph\.keyring=([^,\s]+)", line).group(1)
        conf = re.search(r"ceph\.conf=([^,\s]+)", line).group(1)
        assert run(node, f"sudo stat -c '%a %U' {keyring}").stdout.split() == ["600", "root"]
        assert conf != "/etc/ceph/ceph.conf" and "mon_host" in run(node, f"cat {conf}").stdout
    # The share's size is Ceph's quota: writing past 1 GiB fails.
    over = run(first, f"dd if=/dev/zero of={MOUNT}/big bs=4M count=320 conv=fsync 2>&1", check=False)
    assert over.returncode != 0 and "quota" in over.stdout.lower(), over.stdout[-300:]
    run(first, f"rm -f {MOUNT}/big")
    share = osc.json("share", "show", SHARE)
    assert share["size"] == 1 and share["status"] == "available"


def test_a_second_run_changes_nothing(storage):
    done = storage.play([cephfs(SHARE, cephfs={"create": True, "size": 1, "share_type": "cephfs"})])
    assert changed(done) == 0, changed_tasks(done)
    # Side by side with a ping of the same nodes (the budget is 3 times; printed, not asserted here:
    # the machine's load moves both).
    started = time.monotonic()
    subprocess.run([str(BIN / "ansible"), "-i", str(storage.inventory), "all", "-m", "ansible.builtin.ping"],
                   cwd=REPO, env=storage.env, capture_output=True, check=True, timeout=300)
    ping = time.monotonic() - started
    print(f"no-change storage run: {done.elapsed:.1f} s; ansible -m ping of the same nodes: {ping:.1f} s "
          f"({done.elapsed / ping:.1f}x)")


def test_a_restarted_node_gets_its_mount_back_and_the_run_says_so(storage, nodes, osc):
    node = nodes[1]
    osc.run("server", "stop", node["name"])
    wait_server_status(osc, node["name"], "SHUTOFF", timeout=120)
    osc.run("server", "start", node["name"])
    wait_server_status(osc, node["name"], "ACTIVE", timeout=120)
    wait_ssh(node["address"], node["key"], timeout=60)
    assert not mounted(node)
    done = storage.play([cephfs(SHARE, cephfs={"create": True, "size": 1, "share_type": "cephfs"})],
                        callback="ansible.builtin.default")
    assert done.returncode == 0, done.stdout[-3000:]
    said = " ".join((done.stdout + done.stderr).split())  # Ansible wraps its warnings, on stderr
    assert "scratch was not mounted on /mnt/scratch" in said and "mounted it again" in said, done.stdout[-3000:]
    assert mounted(node)
    assert run(node, f"cat {MOUNT}/hello").stdout.strip() == "from-a"


def test_the_keys_are_never_in_the_output_even_at_vvvv(storage, osc, nodes):
    """The whole storage play at -vvvv: the share's cephx key, and a BeeGFS auth secret (the BeeGFS client's files
    only, since the sandbox has no BeeGFS packages: container_infra_storage_beegfs_packages false)."""
    keys = [rule["Access Key"] for rule in osc.json("share", "access", "list", SHARE)]
    assert keys and all(keys)
    canary = f"beegfs-canary-{uuid.uuid4().hex}"
    auth_file = storage.work / "beegfs.auth"
    auth_file.write_text(canary + "\n")
    auth_file.chmod(0o600)
    beegfs = {"name": "work", "kind": "beegfs", "path": "/mnt/beegfs",
              "beegfs": {"version": "8", "mgmtd_host": "10.80.0.9", "auth_file": str(auth_file)}}
    done = storage.play([cephfs(SHARE, cephfs={"create": True, "size": 1, "share_type": "cephfs"}), beegfs],
                        "-vvvv", "-e", "container_infra_storage_beegfs_packages=false",
                        callback="ansible.builtin.default")
    assert done.returncode == 0, done.stdout[-3000:]
    for key in [*keys, canary]:
        assert key not in done.stdout and key not in done.stderr
    # On the nodes: the key is in the keyring, and in no file that group or others may read; the BeeGFS secret
    # in its 0400 file only.
    dirs = "/etc /root /home /tmp /var/tmp /var/log /run"
    for node in nodes:
        assert run(node, "sudo stat -c '%a %U %G' /etc/beegfs/conn.auth").stdout.split() == ["400", "root", "root"]
        assert run(node, "sudo cat /etc/beegfs/conn.auth").stdout.strip() == canary
        readable = run(node, f"sudo find {dirs} -xdev -type f -perm /044 -size -2M "
                             f"-exec grep -lF -- {canary} {{}} + 2>/dev/null", check=False)
        assert readable.stdout.strip() == "", (node["name"], readable.stdout)
        for key in keys:
            assert run(node, f"sudo grep -rlF -- {key} /etc/ceph").stdout.strip(), node["name"]
            readable = run(node, f"sudo find {dirs} -xdev -type f -perm /044 -size -2M "
                                 f"-exec grep -lF -- {key} {{}} + 2>/dev/null", check=False)
            assert readable.stdout.strip() == "", (node["name"], readable.stdout)


MADE = {"create": True, "size": 1, "share_type": "cephfs"}
MOUNT_TASK = "Mount the file systems (files, client, fstab, mount; one call per node)"


def mount_actions(done) -> dict[str, list[str]]:
    """What container_infra_mount did on each node, per file system."""
    return {host: [m["action"] for m in result.get("mounts", [])] for play in done.report["plays"]
            for task in play["tasks"] if task["task"]["name"].endswith(MOUNT_TASK)
            for host, result in task["hosts"].items()}


def keyring_of(node) -> str:
    return re.search(r"ceph\.keyring=([^,\s]+)", run(node, f"grep ' {MOUNT} ' /etc/fstab").stdout).group(1)


def test_a_kubernetes_clusters_volume_and_claim_name_the_real_share_and_rule(storage, osc, tmp_path):
    """A kubeconfig found: the Manila CSI volume and claim written beside it carry the share's and the cephx
    rule's real IDs and validate against the Kubernetes schema (no API in the sandbox: not applied)."""
    import kubernetes_validate

    kubeconfig = tmp_path / "credentials" / "config"
    kubeconfig.parent.mkdir()
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    done = storage.play([cephfs(SHARE, cephfs=MADE | {"kubernetes": {"namespace": "science"}})],
                        "-e", f"container_infra_storage_kubeconfig={kubeconfig}",
                        "-e", "container_infra_storage_kubernetes_apply=false")
    # Only the file is new: the mounts are as they were.
    assert [name.split(" : ")[-1].split(" on ")[0] for name in changed_tasks(done)] == [
        "Write each cluster's Manila CSI volumes and claims beside its kubeconfig"], changed_tasks(done)
    docs = [doc for doc in yaml.safe_load_all((kubeconfig.parent / "storage-volumes.yml").read_text()) if doc]
    volume, claim = docs
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    rules = osc.json("share", "access", "list", SHARE)
    assert volume["spec"]["csi"]["volumeAttributes"]["shareID"] == osc.json("share", "show", SHARE)["id"]
    assert volume["spec"]["csi"]["volumeAttributes"]["shareAccessID"] == rules[0]["ID"]
    assert claim["metadata"] == {"name": "scratch", "namespace": "science",
                                 "labels": {"app.kubernetes.io/managed-by": "container-infra"}}
    assert rules[0]["Access Key"] not in (kubeconfig.parent / "storage-volumes.yml").read_text()


def test_a_rotated_key_is_written_and_the_share_remounted(storage, nodes, osc):
    """The cephx access rule replaced (denied in Manila, which removes the key from Ceph and evicts the nodes'
    clients): the run makes a new rule, writes its new key on every node and remounts; files are still there."""
    (rule,) = osc.json("share", "access", "list", SHARE)
    osc.run("share", "access", "delete", SHARE, rule["ID"])
    wait_for(lambda: osc.json("share", "access", "list", SHARE) == [], "the access rule denied")
    done = storage.play([cephfs(SHARE, cephfs=MADE)])
    (new,) = osc.json("share", "access", "list", SHARE)
    assert new["ID"] != rule["ID"] and new["Access Key"] and new["Access Key"] != rule["Access Key"]
    assert mount_actions(done) == {node["name"]: ["remounted"] for node in nodes}
    for node in nodes:
        keyring = keyring_of(node)
        assert run(node, f"sudo grep -c 'key = {new['Access Key']}' {keyring}").stdout.strip() == "1"
        assert run(node, f"sudo stat -c '%a %U' {keyring}").stdout.split() == ["600", "root"]
        assert run(node, f"timeout 30 cat {MOUNT}/hello").stdout.strip() == "from-a"
    first, second = nodes
    run(second, f"echo rotated | sudo tee {MOUNT}/rotated >/dev/null")
    assert run(first, f"timeout 30 cat {MOUNT}/rotated").stdout.strip() == "rotated"
    assert changed(storage.play([cephfs(SHARE, cephfs=MADE)])) == 0


def test_a_moved_export_is_followed_and_the_old_key_file_removed(storage, nodes, osc, sandbox):
    """The share's export location changes (its monitors now named by their msgr2 port, as Manila shows a share
    whose Ceph monitors moved; set in Manila's database, there being no API for it): the run writes the new
    Ceph cluster's conf and key, remounts from the new monitors and removes the key under the old name."""
    (location,) = osc.json("share", "export", "location", "list", SHARE)
    old = location["Path"]
    assert ":6789:/" in old, old
    moved = old.replace(":6789:/", ":3300:/")

    def set_path(path_from: str, path_to: str) -> None:
        for path in (path_from, path_to):  # Manila's own strings; checked before they reach SQL
            assert re.fullmatch(r"[0-9A-Za-z.:/_-]+", path), path
        query = (f"UPDATE share_instance_export_locations SET path='{path_to}' "  # noqa: S608 (checked above)
                 f"WHERE path='{path_from}' AND deleted=0")
        subprocess.run(["mariadb", f"--socket={sandbox.mysql_socket}", "-u", "root", "manila", "-e", query],
                       check=True, capture_output=True, timeout=30)

    old_keyrings = {node["name"]: keyring_of(node) for node in nodes}
    set_path(old, moved)
    try:
        assert osc.json("share", "export", "location", "list", SHARE)[0]["Path"] == moved
        done = storage.play([cephfs(SHARE, cephfs=MADE)])
        assert mount_actions(done) == {node["name"]: ["remounted"] for node in nodes}
        for node in nodes:
            line = run(node, f"grep ' {MOUNT} ' /etc/fstab").stdout
            conf = re.search(r"ceph\.conf=([^,\s]+)", line).group(1)
            assert "mon_host = 10.80.0.2:3300" in run(node, f"cat {conf}").stdout
            assert keyring_of(node) != old_keyrings[node["name"]]
            assert run(node, f"sudo test -e {old_keyrings[node['name']]} && echo left || echo gone").stdout.strip() \
                == "gone"
            assert mounted(node)
            assert run(node, f"timeout 30 cat {MOUNT}/hello").stdout.strip() == "from-a"
        first, second = nodes
        run(first, f"echo moved | sudo tee {MOUNT}/moved >/dev/null")
        assert run(second, f"timeout 30 cat {MOUNT}/moved").stdout.strip() == "moved"
        assert changed(storage.play([cephfs(SHARE, cephfs=MADE)])) == 0
    finally:
        set_path(moved, old)
    # Back where Manila put it: the next run follows again.
    done = storage.play([cephfs(SHARE, cephfs=MADE)])
    assert mount_actions(done) == {node["name"]: ["remounted"] for node in nodes}


@pytest.mark.parametrize(("entry", "words"), [
    (cephfs("no-such-share-" + RUN), "does not exist in Manila"),
    (cephfs(SHARE, path="mnt/relative"), "is not an absolute, normalised mount point"),
    (cephfs(SHARE, cephfs={"network": "hte"}), "has no port on network hte"),
])
def test_bad_input_is_one_sentence_before_anything_changes(storage, nodes, entry, words):
    before = run(nodes[0], "cat /etc/fstab").stdout
    done = storage.play([entry | {"name": "bad", "path": entry["path"] if entry["path"] != MOUNT else "/mnt/bad"}],
                        check=False)
    assert done.returncode != 0
    messages = set(failures(done))
    assert messages, done.report
    for message in messages:  # the same sentence from every node (a node's own names it)
        assert words in message and message.count(". ") == 0, message
    assert run(nodes[0], "cat /etc/fstab").stdout == before


def test_a_share_in_error_state_is_refused(storage, osc, osc_admin, nodes):
    # A share of another protocol cannot be made here (the sandbox's only backend serves CEPHFS; Manila refuses
    # NFS with a 400): tests/unit/test_storage.py covers that sentence.
    name = f"stor-{RUN}-err"
    osc.run("share", "create", "CEPHFS", "1", "--name", name, "--share-type", "cephfs", "--wait")
    try:
        osc_admin.run("share", "set", "--status", "error", osc.json("share", "show", name)["id"])
        done = storage.play([cephfs(name, name="err", path="/mnt/err")], check=False)
        assert done.returncode != 0
        assert "is in status error, not available" in failures(done)[0]
        assert not mounted(nodes[0], "/mnt/err")
        assert osc.json("share", "access", "list", name) == []
    finally:
        osc_admin.run("share", "set", "--status", "available", osc.json("share", "show", name)["id"], check=False)
        osc.run("share", "delete", "--wait", name, check=False)


def test_a_share_made_elsewhere_is_attached_by_id_untouched_and_absent_leaves_nothing(storage, nodes, osc, sandbox):
    name = f"stor-{RUN}-ext"
    share = create_share(osc, name, size=2)
    try:
        entry = cephfs(share["id"], name="external", path="/mnt/external")
        storage.play([entry])
        after = osc.json("share", "show", name)
        assert (after["size"], after["share_type_name"] if "share_type_name" in after else after["share_type"]) == (
            2, share.get("share_type_name", share["share_type"]))
        first, second = nodes
        run(first, "echo ext | sudo tee /mnt/external/f >/dev/null")
        assert run(second, "cat /mnt/external/f").stdout.strip() == "ext"
        user = f"container-infra-{CLUSTER}-external"
        assert [r["Access To"] for r in osc.json("share", "access", "list", name)] == [user]

        storage.play([entry | {"state": "absent"}])
        for node in nodes:
            assert not mounted(node, "/mnt/external")
            assert "/mnt/external" not in run(node, "cat /etc/fstab").stdout
            assert run(node, f"sudo ls /etc/ceph | grep -c 'client.{user}\\.' || true").stdout.strip() == "0"
        assert osc.json("share", "access", "list", name) == []
        assert f"client.{user}" not in ceph.ceph(sandbox, "auth", "ls")
        assert osc.json("share", "show", name)["status"] == "available"
    finally:
        for node in nodes:
            run(node, "sudo umount /mnt/external 2>/dev/null; true", check=False)
        osc.run("share", "delete", "--wait", name, check=False)



def test_an_existing_gluster_volume_is_mounted_on_both_nodes_with_backup_volfile_servers(storage, nodes, sandbox):
    """A real glusterd (the sandbox registry's image, in a container on the first node, host network) serves a
    volume on the storage network; the role mounts it on both nodes as a client."""
    images.build(["glusterfs"], print, registry.ca_path(sandbox))
    server, other = nodes
    ip, other_ip = server["port"]["ip"], other["port"]["ip"]
    volume = f"gv{RUN}"
    # The storage NIC as the role's NIC step leaves it (the CephFS tests configured it; alone, do it here).
    for node in nodes:
        run(node, f"dev=$(ip -o link | awk -F': ' '/{node['port']['mac']}/ {{print $2}}' | cut -d@ -f1); "
                  f"sudo ip link set $dev up && sudo ip addr replace {node['port']['ip']}/24 dev $dev")
    wait_for(lambda: run(server, "docker info >/dev/null 2>&1", check=False).returncode == 0, "dockerd", timeout=60)
    entry = {"name": "shared", "kind": "gluster", "path": "/mnt/gluster", "mode": "0777",
             "gluster": {"volume": volume, "servers": [ip, other_ip]}}
    try:
        run(server, f"docker run -d --name gluster-{RUN} --net host --cap-add ALL --cap-drop SYS_RESOURCE "
                    "--security-opt seccomp=unconfined --security-opt apparmor=unconfined "
                    "-v /var/lib/docker/gluster-bricks:/bricks -v /var/lib/docker/glusterd:/var/lib/glusterd "
                    f"{images.image_name('glusterfs')} >/dev/null")
        wait_for(lambda: run(server, f"docker exec gluster-{RUN} gluster --mode=script volume list",
                             check=False).returncode == 0, "glusterd", timeout=60)
        run(server, f"docker exec gluster-{RUN} gluster --mode=script volume create {volume} "
                    f"{ip}:/bricks/{volume} force && docker exec gluster-{RUN} gluster --mode=script volume start "
                    f"{volume}")
        done = storage.play([entry])
        print(f"gluster client mount, 2 nodes: {done.elapsed:.1f} s")
        run(server, "echo over-gluster | sudo tee /mnt/gluster/hello >/dev/null")
        assert run(other, "cat /mnt/gluster/hello").stdout.strip() == "over-gluster"
        for node in nodes:
            line = run(node, "grep ' /mnt/gluster ' /etc/fstab").stdout.split()
            assert line[:3] == [f"{ip}:/{volume}", "/mnt/gluster", "glusterfs"]
            assert f"backup-volfile-servers={other_ip}" in line[3]
            assert "fuse.glusterfs" in run(node, "grep ' /mnt/gluster ' /proc/mounts").stdout
        assert changed(storage.play([entry])) == 0
        storage.play([entry | {"state": "absent"}])
        for node in nodes:
            assert not mounted(node, "/mnt/gluster") and "/mnt/gluster" not in run(node, "cat /etc/fstab").stdout
    finally:
        for node in nodes:
            run(node, "sudo umount /mnt/gluster 2>/dev/null; true", check=False)
        run(server, f"docker rm -f gluster-{RUN} >/dev/null 2>&1; sudo rm -rf /var/lib/docker/gluster-bricks "
                    "/var/lib/docker/glusterd; true", check=False)
