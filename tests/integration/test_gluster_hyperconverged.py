"""A hyperconverged Gluster volume on the sandbox's nodes: playbooks/storage.yml runs glusterd in a container on
each serving node (the sandbox registry's image), makes the volume over the nodes' LLN addresses and mounts it on
every node. Four Docker-backed nodes with an LLN port are booted once for the file; the first three serve the
volume, the fourth joins later and leaves again (refused while its brick is offline, then its data moved off).
The tests run in order (one volume's life).
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
from cluster_access import ssh, wait_ssh
from test_docker_nodes import boot, delete, with_floating_ip
from test_storage import wait_for

from container_infra.sandbox import images, registry
from container_infra.sandbox.layout import STORAGE_NETWORK

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUN = uuid.uuid4().hex[:6]
CLUSTER = f"hcg-{RUN}"
VOLUME = f"gv{RUN}"
MOUNT = "/mnt/shared"
GLUSTERD = "container-infra-glusterd"
# A sandbox node's root is Docker's overlay file system; its one real file system is the volume on /var/lib/docker
# (sandbox/CONTRACT.md), where the bricks go, as they would go on a real node's data disk.
BRICK_ROOT = f"/var/lib/docker/container-infra-gluster/{VOLUME}"


def run(node, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return ssh(node["address"], node["key"], command, check=check)


class Play:
    """playbooks/storage.yml on some of the file's nodes (the inventory a written cluster's would be)."""

    def __init__(self, work: Path):
        self.work = work
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")

    def __call__(self, nodes: list[dict], storage: list[dict], check: bool = True):
        hosts = {node["name"]: {
            "ansible_host": node["address"], "ansible_user": "core", "ansible_ssh_private_key_file": str(node["key"]),
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
            "container_infra_cluster": CLUSTER, "container_infra_role": "worker",
            "container_infra_nodegroup": "default-worker", "container_infra_networks": {"lln": node["port"]},
        } for node in nodes}
        inventory = self.work / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"workers": {"hosts": hosts}}}}))
        spec = self.work / "storage.json"
        spec.write_text(json.dumps({"container_infra_storage": storage}))
        started = time.monotonic()
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{spec}",
                               str(REPO / "playbooks" / "storage.yml")],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=900)
        done.elapsed = time.monotonic() - started
        try:
            done.report = json.loads(done.stdout[done.stdout.index("{"):])
        except ValueError:
            raise AssertionError(f"no JSON (rc {done.returncode}): {done.stdout[-3000:]} "
                                 f"{done.stderr[-2000:]}") from None
        if check:
            assert done.returncode == 0, f"storage.yml failed: {failures(done)} {done.stderr[-2000:]}"
        return done


def failures(done) -> list[str]:
    return [item.get("msg", "") for play in done.report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")
            for item in ([r for r in result.get("results") or [] if r.get("failed")] or [result])]


def changed_tasks(done) -> list[str]:
    return [f"{task['task']['name']} on {host}" for play in done.report["plays"] for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("changed")]


def hyperconverged(**more) -> dict:
    return {"name": "shared", "kind": "gluster", "path": MOUNT, "mode": "0777",
            "gluster": {"volume": VOLUME, "network": "lln",
                        "hyperconverged": {"image": images.image_name("glusterfs"), "brick_root": BRICK_ROOT,
                                           **more}}}


def gluster(node, *args: str) -> str:
    return run(node, f"sudo docker exec {GLUSTERD} gluster --mode=script {' '.join(args)}").stdout


def bricks(node) -> list[str]:
    return [line.split(": ", 1)[1] for line in gluster(node, "volume", "info", VOLUME).splitlines()
            if line.startswith("Brick") and ": " in line and ":/" in line]


def brick_of(node) -> str:
    return f"{node['port']['ip']}:{BRICK_ROOT}/brick"


@pytest.fixture(scope="module")
def nodes(sandbox, osc, ssh_keypair):
    key_name, key = ssh_keypair
    names = [f"hcg-{RUN}-{letter}" for letter in "abcd"]
    addresses = []
    images.build(["glusterfs"], print, registry.ca_path(sandbox))
    try:
        boot(osc, names, key_name, properties={"sandbox_dockerd": "true"})
        attached = ansible_module("os_server_interface", {
            "cloud": "sandbox", "servers": names, "interfaces": [{"network": "lln"}, {"network": STORAGE_NETWORK}],
            "poll_interval": 1})
        cidr = osc.json("subnet", "show", osc.json("network", "show", "lln")["subnets"][0])["cidr"]
        out = []
        for name in names:
            address = with_floating_ip(osc, name)
            addresses.append(address)
            wait_ssh(address, key)
            port = attached["servers"][name]["lln"]
            out.append({"name": name, "address": address, "key": key,
                        "port": {"ip": port["ip"], "mac": port["mac"], "mtu": port["mtu"], "cidr": cidr,
                                 "prefix": int(cidr.split("/")[1]), "port_id": port["port_id"], "gateway": None,
                                 "ipoib_mode": None}})
        for node, name in zip(out, names, strict=True):
            # The registry (glusterd's image) is on the storage network: its NIC as the NIC role leaves it.
            storage = attached["servers"][name][STORAGE_NETWORK]
            run(node, f"dev=$(ip -o link | awk -F': ' '/{storage['mac']}/ {{print $2}}' | cut -d@ -f1); "
                      f"sudo ip link set $dev up && sudo ip addr replace {storage['ip']}/24 dev $dev")
            wait_for(lambda node=node: run(node, "sudo docker info >/dev/null 2>&1", check=False).returncode == 0,
                     "dockerd", timeout=90)
        yield out
    finally:
        delete(osc, *names)
        for address in addresses:
            osc.run("floating", "ip", "delete", address, check=False)


@pytest.fixture(scope="module")
def play(tmp_path_factory):
    return Play(tmp_path_factory.mktemp("gluster"))


def test_three_nodes_serve_a_volume_over_their_lln_addresses_mounted_on_each(play, nodes):
    three = nodes[:3]
    done = play(three, [hyperconverged()])
    print(f"first run (glusterd on 3 nodes, volume made, 3 mounts): {done.elapsed:.1f} s")
    assert bricks(three[0]) == [brick_of(node) for node in three]
    assert "Status: Started" in gluster(three[0], "volume", "info", VOLUME)
    # The peers know each other by their LLN addresses.
    pool = gluster(three[0], "pool", "list")
    assert all(node["port"]["ip"] in pool for node in three[1:]), pool
    run(three[0], f"echo from-a | sudo tee {MOUNT}/hello >/dev/null")
    for node in three:
        assert run(node, f"cat {MOUNT}/hello").stdout.strip() == "from-a"
        line = run(node, f"grep ' {MOUNT} ' /etc/fstab").stdout.split()
        assert line[:3] == [f"{three[0]['port']['ip']}:/{VOLUME}", MOUNT, "glusterfs"]
        assert f"backup-volfile-servers={three[1]['port']['ip']}:{three[2]['port']['ip']}" in line[3]
        assert "fuse.glusterfs" in run(node, f"grep ' {MOUNT} ' /proc/mounts").stdout


def test_a_second_run_changes_nothing(play, nodes):
    done = play(nodes[:3], [hyperconverged()])
    assert changed_tasks(done) == []


def test_a_restarted_glusterd_container_keeps_the_volume(play, nodes):
    three = nodes[:3]
    run(three[1], f"sudo docker restart {GLUSTERD} >/dev/null")
    wait_for(lambda: run(three[0], f"sudo docker exec {GLUSTERD} gluster pool list",
                         check=False).stdout.count("Connected") == 3, "the restarted peer back in the pool",
             timeout=120)
    assert bricks(three[1]) == [brick_of(node) for node in three]
    for node in three:
        assert run(node, f"cat {MOUNT}/hello").stdout.strip() == "from-a"
    assert changed_tasks(play(three, [hyperconverged()])) == []


def test_a_node_that_joins_adds_its_brick_and_mounts_the_volume(play, nodes):
    for i in range(20):
        run(nodes[0], f"echo {i} | sudo tee {MOUNT}/file-{i} >/dev/null")
    done = play(nodes, [hyperconverged()])
    print(f"grow by one node: {done.elapsed:.1f} s")
    assert bricks(nodes[0]) == [brick_of(node) for node in nodes]
    status = gluster(nodes[0], "volume", "rebalance", VOLUME, "status")
    assert "in progress" in status or "completed" in status, status
    assert run(nodes[3], f"cat {MOUNT}/hello").stdout.strip() == "from-a"
    assert changed_tasks(play(nodes, [hyperconverged()])) == []


def test_a_node_that_left_while_its_brick_is_offline_is_refused_and_nothing_changes(play, nodes):
    """Its data cannot be moved off: the shrink is refused in one sentence, the volume keeps every brick."""
    wait_for(lambda: "in progress" not in gluster(nodes[0], "volume", "rebalance", VOLUME, "status"),
             "the rebalance", timeout=180)
    run(nodes[3], f"sudo docker stop {GLUSTERD} >/dev/null")
    try:
        done = play(nodes[:3], [hyperconverged()], check=False)
        assert done.returncode != 0
        [message] = failures(done)
        assert f"the leaving brick {brick_of(nodes[3])} is offline, so its data cannot be moved" in message, message
        assert bricks(nodes[0]) == [brick_of(node) for node in nodes]
    finally:
        run(nodes[3], f"sudo docker start {GLUSTERD} >/dev/null")
    wait_for(lambda: run(nodes[0], f"sudo docker exec {GLUSTERD} gluster pool list",
                         check=False).stdout.count("Connected") == 4, "the fourth peer back in the pool", timeout=120)
    # glusterd starts the node's brick process only after it rejoined the pool (seconds later on a loaded machine).
    status = f"sudo docker exec {GLUSTERD} gluster --mode=script volume status {VOLUME} {brick_of(nodes[3])} detail"
    wait_for(lambda: re.search(r"Online\s*:\s*Y", run(nodes[0], status, check=False).stdout),
             "the fourth brick online again", timeout=180)


def test_a_node_that_leaves_has_its_data_moved_off_first(play, nodes):
    three = nodes[:3]
    held = run(nodes[3], f"sudo ls {BRICK_ROOT}/brick").stdout.split()
    assert held, "the rebalance after the grow left no file on the fourth brick; the shrink would move nothing"
    done = play(three, [hyperconverged()])
    print(f"shrink by one node ({len(held)} files on its brick, data moved, rebalanced): {done.elapsed:.1f} s")
    assert bricks(nodes[0]) == [brick_of(node) for node in three]
    assert run(nodes[3], f"sudo ls {BRICK_ROOT}/brick").stdout.split() == []
    assert nodes[3]["port"]["ip"] not in gluster(nodes[0], "pool", "list")
    # Every file, moved or not, reads back on every node as soon as the run is over.
    contents = f"for i in $(seq 0 19); do cat {MOUNT}/file-$i; done"
    for node in three:
        assert run(node, contents).stdout.split() == [str(i) for i in range(20)]
        assert run(node, f"cat {MOUNT}/hello").stdout.strip() == "from-a"
    assert changed_tasks(play(three, [hyperconverged()])) == []


def test_a_directory_quota_is_set_once_through_the_mount(play, nodes):
    nodes = nodes[:3]
    play(nodes, [hyperconverged(quota={"/projects": "10MB"})])
    listing = gluster(nodes[0], "volume", "quota", VOLUME, "list")
    assert "/projects" in listing and "10.0MB" in listing, listing
    assert run(nodes[2], f"test -d {MOUNT}/projects", check=False).returncode == 0
    assert changed_tasks(play(nodes, [hyperconverged(quota={"/projects": "10MB"})])) == []


def test_bad_layouts_are_one_sentence_and_change_nothing(play, nodes):
    nodes = nodes[:3]
    before = bricks(nodes[0])
    done = play(nodes, [hyperconverged(replica=4)], check=False)
    assert done.returncode != 0
    [message] = failures(done)
    assert "replica 4 needs at least 4 serving nodes but 3 serve the volume" in message, message
    done = play(nodes, [hyperconverged(replica=2)], check=False)
    assert "3 serving nodes are not a multiple of replica 2" in " ".join(failures(done))
    assert bricks(nodes[0]) == before


def test_absent_unmounts_everywhere_deletes_the_volume_and_stops_glusterd(play, nodes):
    nodes = nodes[:3]
    play(nodes, [hyperconverged() | {"state": "absent"}])
    for node in nodes:
        assert f" {MOUNT} " not in run(node, "cat /proc/mounts").stdout
        assert MOUNT not in run(node, "cat /etc/fstab").stdout
        assert run(node, f"sudo docker ps -aq --filter name={GLUSTERD}").stdout.strip() == ""
    assert changed_tasks(play(nodes, [hyperconverged() | {"state": "absent"}])) == []
