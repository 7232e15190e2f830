"""The inventories against the sandbox: os_container_infra_inventory (a static file) and the dynamic
plugin, for a Cluster-API-era and a Heat-era cluster, agree with each other and have one shape."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from ansible_runner import BIN, REPO, ansible_env, ansible_module

from container_infra.cloud import Cloud
from container_infra.inventory import cluster_group
from container_infra.magnum import read

ERAS = {"capi": "ubuntu-capi-sandbox", "heat": "fedora-coreos-sandbox"}
SHAPE_GROUPS = {"masters", "workers", "nodegroup_default_master", "nodegroup_default_worker", "gpu"}
HOST_VARS = {"ansible_host", "ansible_user", "container_infra_cluster", "container_infra_role",
             "container_infra_nodegroup", "container_infra_server_id", "container_infra_flavor",
             "container_infra_gpu", "container_infra_networks"}
JUMP_VARS = {"ansible_ssh_common_args", "container_infra_jump_host"}
NETWORK_KEYS = {"ip", "mac", "mtu", "cidr", "prefix", "gateway", "port_id", "ipoib_mode"}


def wait_final(magnum, uuid: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster = magnum.clusters.get(uuid).to_dict()
            if cluster["status"].endswith(("_COMPLETE", "_FAILED")):
                return cluster
        except Exception:  # noqa: S110 - Magnum answers 400 early in CREATE_IN_PROGRESS
            pass
        assert time.monotonic() < deadline, f"cluster {uuid} not final in {timeout} s"
        time.sleep(3)


def create_clusters(magnum, wanted: dict[str, tuple[str, str]], made: dict[str, str]) -> None:
    """Clusters made together (1 master, 1 worker), into ``made`` (era -> UUID) as they start, so that a
    failure leaves them to the clean-up; a failed one is made again once (magnum-conductor may restart)."""
    for attempt in range(2):
        for era, (name, template) in wanted.items():
            if era not in made:
                made[era] = magnum.clusters.create(name=name, cluster_template_id=template, master_count=1,
                                                   node_count=1).uuid
        failed = {}
        for era, uuid in made.items():
            cluster = wait_final(magnum, uuid)
            if cluster["status"] != "CREATE_COMPLETE":
                failed[era] = cluster
        if not failed:
            return
        assert attempt == 0, {era: c["status_reason"] for era, c in failed.items()}
        for era, cluster in failed.items():
            magnum.clusters.delete(cluster["uuid"])
            wait_gone(magnum, cluster["uuid"])
            del made[era]


def wait_gone(magnum, uuid: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    # read(): Magnum's listing answers 400 while any cluster of the project is early in its create.
    while uuid in {c.uuid for c in read(magnum.clusters.list)}:
        assert time.monotonic() < deadline, f"cluster {uuid} not deleted in {timeout} s"
        time.sleep(3)


def delete_cluster(magnum, uuid: str) -> None:
    try:
        read(magnum.clusters.delete, uuid)
    except Exception as exc:
        if "could not be found" not in str(exc):
            raise


@pytest.fixture(scope="module")
def clusters(sandbox, conn):
    """One small cluster (1 master, 1 worker) per era, and an LLN port attached to the capi worker."""
    stem = f"tinv{os.getpid() % 10000}{int(time.time()) % 10000}"
    cloud = Cloud.from_params({"cloud": "sandbox"})
    magnum = cloud.magnum()
    conn.compute.create_keypair(name=f"{stem}-kp")
    made: dict[str, str] = {}
    templates: list[str] = []
    lln_port = None
    try:
        for era, image in ERAS.items():
            templates.append(magnum.cluster_templates.create(
                name=f"{stem}-{era}", coe="kubernetes", image_id=image, external_network_id="public",
                fixed_network="private", fixed_subnet="private-subnet", flavor_id="bm.standard",
                master_flavor_id="bm.standard", server_type="bm", keypair_id=f"{stem}-kp").uuid)
        create_clusters(magnum, {era: (f"{stem}-{era}-c", template)
                                 for era, template in zip(ERAS, templates, strict=True)}, made)
        names = {era: f"{stem}-{era}-c" for era in made}
        capi = magnum.clusters.get(made["capi"]).to_dict()
        ref = capi.get("cluster_id") or capi["stack_id"]
        worker = next(s for s in conn.compute.servers(name=f"^{ref}-default-worker-"))
        lln_port = conn.network.create_port(network_id=conn.network.find_network("lln").id, name=f"{stem}-lln")
        conn.compute.create_server_interface(worker, port_id=lln_port.id)
        deadline = time.monotonic() + 120
        while conn.network.get_port(lln_port.id).device_id != worker.id:
            assert time.monotonic() < deadline, "the LLN port was not attached in 120 s"
            time.sleep(2)
        yield {"names": names, "worker": worker, "lln_port": conn.network.get_port(lln_port.id)}
    finally:
        # Every step tried, whatever failed before it; the first failure is raised at the end.
        steps = [lambda uuid=uuid: delete_cluster(magnum, uuid) for uuid in made.values()]
        steps += [lambda uuid=uuid: wait_gone(magnum, uuid) for uuid in made.values()]
        if lln_port is not None:
            steps.append(lambda: conn.network.delete_port(lln_port.id, ignore_missing=True))
        steps += [lambda template=template: read(magnum.cluster_templates.delete, template) for template in templates]
        steps.append(lambda: conn.compute.delete_keypair(f"{stem}-kp", ignore_missing=True))
        failures = []
        for step in steps:
            try:
                step()
            except Exception as exc:
                failures.append(exc)
        cloud.close()
        if failures:
            raise failures[0]


def ansible_inventory(*sources: Path) -> dict:
    """``ansible-inventory --list`` over the sources, as an operator runs it (the repo's ansible.cfg)."""
    env = ansible_env(json_results=False)
    command = [str(BIN / "ansible-inventory"), "--list"]
    for source in sources:
        command += ["-i", str(source)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Failed to parse" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout)


def trusted(value):
    """The value with ansible-inventory's unsafe markers removed: a plugin's values come from the cloud
    and Ansible marks them unsafe (never templated), a file's are trusted; the data is the same."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value


def membership(listed: dict) -> dict[str, list[str]]:
    """Group -> sorted hosts, for the groups holding hosts (``all`` and ``ungrouped`` aside)."""
    return {group: sorted(body["hosts"]) for group, body in listed.items()
            if group not in ("_meta", "all", "ungrouped") and body.get("hosts")}


def test_module_and_plugin_give_one_inventory_in_both_eras(clusters, conn, tmp_path):
    names, worker, lln_port = clusters["names"], clusters["worker"], clusters["lln_port"]
    files = {}
    for era, name in names.items():
        path = tmp_path / "inventories" / name / "hosts.yml"
        args = {"cloud": "sandbox", "cluster": name, "path": str(path)}
        written = ansible_module("os_container_infra_inventory", args)
        assert written["changed"] and not written.get("failed"), written.get("msg")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        # A constant number of requests: token, Magnum version, cluster, nodegroups, (Heat: the stack, its
        # redirect and its resources), servers, ports, networks, subnets, images: 12 (Heat) or 9; up to 3
        # more when Magnum answers its transient 400 (a neighbour's cluster early in its create) and the
        # cluster read is retried.
        assert written["api_calls"] <= (12 if era == "heat" else 9) + 3, written["api_calls"]
        assert written["cluster"]["era"] == ("heat" if era == "heat" else "cluster_api")
        text = path.read_text()
        mtime = path.stat().st_mtime_ns
        again = ansible_module("os_container_infra_inventory", args)
        assert not again["changed"] and path.read_text() == text and path.stat().st_mtime_ns == mtime
        checked = ansible_module("os_container_infra_inventory", {**args, "ansible_user": "ops"}, check=True,
                                 diff=True)
        assert checked["changed"] and path.read_text() == text
        assert "ansible_user: ops" in checked["diff"]["after"] and "ansible_user: ops" not in checked["diff"]["before"]
        files[era] = path
        groups = written["groups"]
        assert set(groups) == SHAPE_GROUPS | {cluster_group(name)}
        assert len(groups["masters"]) == 1 and len(groups["workers"]) == 1 and groups["gpu"] == []
        for host in written["hosts"]:
            assert host["ansible_user"] == ("core" if era == "heat" else "ubuntu")
            assert host["ansible_host"] and "private" in host["networks"]

    plugin_file = tmp_path / "clusters.container_infra.yml"
    plugin_file.write_text(f"plugin: container_infra\ncloud: sandbox\nclusters: {json.dumps(list(names.values()))}\n")
    from_plugin = ansible_inventory(plugin_file)
    from_files = ansible_inventory(*files.values())
    assert membership(from_plugin) == membership(from_files)
    assert trusted(from_plugin["_meta"]["hostvars"]) == from_files["_meta"]["hostvars"]
    hostvars = from_files["_meta"]["hostvars"]
    assert len(hostvars) == 4

    # Both eras: the same groups (but the cluster's) and the same host vars.
    by_era = {era: {h: v for h, v in hostvars.items() if v["container_infra_cluster"] == name}
              for era, name in names.items()}
    for era, hosts in by_era.items():
        assert len(hosts) == 2, era
        for host, variables in hosts.items():
            # Cluster-API-era workers have no floating IP (only masters get one): they are reached through
            # the cluster's master; every Heat-era node has its own floating IP and no jump.
            jumps = era == "capi" and variables["container_infra_role"] == "worker"
            assert set(variables) == HOST_VARS | (JUMP_VARS if jumps else set()), (era, variables)
            if jumps:
                master = next(h for h, v in hosts.items() if v["container_infra_role"] == "master")
                assert variables["container_infra_jump_host"] == master
                assert variables["ansible_host"] == variables["container_infra_networks"]["private"]["ip"]
                assert f"ubuntu@{hosts[master]['ansible_host']}" in variables["ansible_ssh_common_args"]
                assert "ProxyCommand" in variables["ansible_ssh_common_args"]
            else:
                assert variables["ansible_host"] != variables["container_infra_networks"]["private"]["ip"], host
            for entry in variables["container_infra_networks"].values():
                assert set(entry) == NETWORK_KEYS
        assert sorted(v["container_infra_role"] for v in hosts.values()) == ["master", "worker"]
        assert sorted(v["container_infra_nodegroup"] for v in hosts.values()) == ["default-master", "default-worker"]

    # The LLN port attached after the cluster was made shows up, with what the NIC role needs.
    lln = hostvars[worker.name]["container_infra_networks"]["lln"]
    subnet = conn.network.get_subnet(lln_port.fixed_ips[0]["subnet_id"])
    assert lln == {"ip": lln_port.fixed_ips[0]["ip_address"], "mac": lln_port.mac_address, "mtu": 65520,
                   "cidr": "10.70.0.0/16", "prefix": 16, "gateway": subnet.gateway_ip, "port_id": lln_port.id,
                   "ipoib_mode": "connected"}
    assert hostvars[worker.name]["ansible_host"] != lln["ip"]  # a later provider port never becomes the address


def test_plugin_constructed_options_and_all_clusters(clusters, tmp_path):
    names = clusters["names"]
    plugin_file = tmp_path / "all.container_infra.yaml"
    plugin_file.write_text(
        "plugin: container_infra\ncloud: sandbox\nnetwork: private\n"
        "keyed_groups:\n  - key: container_infra_role\n    prefix: role\n"
        "compose:\n  node_private_ip: container_infra_networks.private.ip\n")
    listed = ansible_inventory(plugin_file)
    hostvars = trusted(listed["_meta"]["hostvars"])
    ours = {h: v for h, v in hostvars.items() if v["container_infra_cluster"] in names.values()}
    assert len(ours) == 4  # every cluster of the project, ours among them
    for host, variables in ours.items():
        assert variables["node_private_ip"] == variables["container_infra_networks"]["private"]["ip"]
        assert host in listed[f"role_{variables['container_infra_role']}"]["hosts"]


def test_unknown_cluster_fails_in_one_sentence(sandbox, tmp_path):
    result = ansible_module("os_container_infra_inventory", {"cloud": "sandbox", "cluster": "tinv-no-such-cluster",
                                                             "path": str(tmp_path / "x.yml")})
    assert result.get("failed") and "\n" not in result["msg"]
    assert result["msg"].startswith("cluster tinv-no-such-cluster was not found in the project"), result["msg"]
    assert not (tmp_path / "x.yml").exists()
