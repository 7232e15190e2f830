"""The operator's first mile, as an operator runs it: `ansible-playbook playbooks/site.yml` with a
cluster spec against the sandbox, then the written inventory, a second run, resizes and deletion.

One cluster (Heat era, a GPU nodegroup, HTE on every node, LLN on the workers) goes through the
steps in order; each test needs the ones before it (a failed step fails the rest, they do not skip).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from ansible_runner import BIN, REPO, ansible_env, report_of, run

from container_infra.cloud.connection import Cloud
from container_infra.sandbox.nodes import NODE_LABEL

NAME = f"play-{uuid.uuid4().hex[:6]}"
GROUP = "cluster_" + NAME.replace("-", "_")


NETWORKS = [{"network": "hte"}, {"network": "lln", "roles": ["worker"]}]


def spec(node_count: int, networks: list[dict] | None = None) -> dict:
    return {
        "container_infra_cluster_poll_interval": 3,
        "container_infra_clusters": [{
            "name": NAME,
            "template": {
                "name": f"{NAME}-t1", "coe": "kubernetes", "image": "fedora-coreos-sandbox",
                "external_network": "public", "fixed_network": "private", "fixed_subnet": "private-subnet",
                "flavor": "bm.standard", "master_flavor": "bm.standard", "server_type": "bm",
                "floating_ip_enabled": True, "master_lb_enabled": False,
            },
            "master_count": 1,
            "node_count": node_count,
            "nodegroups": [{"name": "gpu", "role": "worker", "flavor": "bm.gpu.a100", "node_count": 1}],
            "networks": NETWORKS if networks is None else networks,
            "host_vars": {"ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"},
        }],
    }


class Operator:
    """ansible-playbook / ansible with the toolkit's ansible.cfg, a spec file and a work directory."""

    def __init__(self, work: Path):
        self.work = work
        self.key = work / "ssh" / "id_ed25519"
        self.inventory_root = work / "inventories"
        self.env = ansible_env(json_results=False)

    @property
    def inventory(self) -> Path:
        return self.inventory_root / NAME / "hosts.yml"

    def playbook(self, name: str, node_count: int, *extra: str, timeout: int = 1200,
                 networks: list[dict] | None = None) -> dict:
        """Run a playbook; its per-host stats (the json callback's), failing with its output if it failed."""
        spec_file = self.work / "spec.yml"
        spec_file.write_text(yaml.safe_dump({**spec(node_count, networks),
                                             "container_infra_cluster_ssh_key_file": str(self.key),
                                             "container_infra_cluster_inventory_root": str(self.inventory_root)}))
        done = run([str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / "sandbox" / "localhost.yml"),
                    "-e", f"@{spec_file}", *extra, str(REPO / "playbooks" / name)], timeout=timeout)
        try:
            report = report_of(done.stdout)
        except ValueError:
            raise AssertionError(f"{name}: no JSON (rc {done.returncode}) {done.stdout[-3000:]} "
                                 f"{done.stderr[-3000:]}") from None
        assert done.returncode == 0, f"{name} failed: {json.dumps(report)[-6000:]}"
        return report["stats"]

    def ansible(self, pattern: str, module: str, args: str = "", inventory: Path | None = None) -> dict[str, dict]:
        """An ad-hoc command on the nodes of an inventory: {host: result}."""
        command = [str(BIN / "ansible"), "-i", str(inventory or self.inventory), pattern, "-m", module]
        if args:
            command += ["-a", args]
        done = run(command, timeout=300)
        return report_of(done.stdout)["plays"][0]["tasks"][0]["hosts"]

    def hosts(self) -> dict[str, dict]:
        """The written inventory's hosts and their variables."""
        data = yaml.safe_load(self.inventory.read_text())
        out: dict[str, dict] = {}
        for group in data["all"]["children"].values():
            for host, host_vars in (group.get("hosts") or {}).items():
                out.setdefault(host, {}).update(host_vars or {})
        return out

    def group(self, name: str) -> set[str]:
        data = yaml.safe_load(self.inventory.read_text())
        return set((data["all"]["children"].get(name) or {}).get("hosts") or {})


@pytest.fixture(scope="module")
def operator(sandbox, tmp_path_factory):
    op = Operator(tmp_path_factory.mktemp("operator"))
    yield op
    # Whatever happened, the cluster goes (the delete test asserts this; this is the safety net).
    subprocess.run([str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / "sandbox" / "localhost.yml"),
                    "-e", f"@{op.work / 'spec.yml'}", str(REPO / "playbooks" / "cluster_delete.yml")],
                   cwd=REPO, env=op.env, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def cloud(sandbox):
    connection = Cloud.from_params({"cloud": "sandbox"})
    yield connection
    connection.close()


def listed(fetch, attempts: int = 5) -> list:
    """A listing, read again over a busy cloud's passing 5xx (the assertion is about what it lists)."""
    for attempt in range(attempts):
        try:
            return list(fetch())
        except Exception as exc:  # any transient error; the last one is raised
            status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", 0)
            if attempt == attempts - 1 or not 500 <= (status or 0) < 600:
                raise
            time.sleep(2 * (attempt + 1))
    return []


def changed_total(stats: dict) -> int:
    return sum(host.get("changed", 0) for host in stats.values())


def workers(op: Operator) -> dict[str, dict]:
    return {h: v for h, v in op.hosts().items() if v["container_infra_role"] == "worker"}


def lln_addresses(op: Operator, hosts: list[str]) -> dict[str, set[str]]:
    """The IPv4 addresses each host's LLN device (found by the port's MAC) holds, read in the node."""
    host_vars = op.hosts()
    out = {}
    results = op.ansible(":".join(hosts), "ansible.builtin.command", "ip -j addr show")
    for host in hosts:
        mac = host_vars[host]["container_infra_networks"]["lln"]["mac"]
        devices = json.loads(results[host]["stdout"])
        device = next(d for d in devices if d.get("address") == mac)
        assert device["mtu"] == host_vars[host]["container_infra_networks"]["lln"]["mtu"], device
        out[host] = {f"{a['local']}/{a['prefixlen']}" for a in device.get("addr_info", []) if a["family"] == "inet"}
    return out


def test_site_creates_cluster_and_writes_inventory(operator):
    operator.playbook("site.yml", node_count=3)
    hosts = operator.hosts()
    assert len(hosts) == 5, hosts.keys()
    assert len(operator.group("masters")) == 1
    assert len(operator.group("workers")) == 4
    assert len(operator.group("nodegroup_gpu")) == 1
    assert operator.group("gpu") == operator.group("nodegroup_gpu")
    assert operator.group(GROUP) == set(hosts)
    for host, host_vars in hosts.items():
        networks = host_vars["container_infra_networks"]
        assert "hte" in networks, (host, networks)
        assert ("lln" in networks) == (host_vars["container_infra_role"] == "worker"), (host, networks)
        assert host_vars["ansible_host"].startswith("127.42.0."), host_vars
        assert host_vars["ansible_user"] == "core"
    credentials = operator.inventory.parent / "credentials" / "config"
    assert credentials.stat().st_mode & 0o777 == 0o600


def test_every_node_answers_through_the_written_inventory(operator):
    results = operator.ansible("all", "ansible.builtin.ping")
    assert set(results) == set(operator.hosts())
    assert all(r.get("ping") == "pong" for r in results.values()), results


def test_lln_nics_are_configured_and_carry_jumbo_frames(operator):
    lln_hosts = sorted(workers(operator))
    addresses = lln_addresses(operator, lln_hosts)
    host_vars = operator.hosts()
    for host in lln_hosts:
        lln = host_vars[host]["container_infra_networks"]["lln"]
        assert f"{lln['ip']}/{lln['prefix']}" in addresses[host], (host, addresses[host])
    first, second = lln_hosts[:2]
    target = host_vars[second]["container_infra_networks"]["lln"]["ip"]
    # 8972 bytes of payload + 28 of headers = 9000, and "do" forbids fragmenting it.
    result = operator.ansible(first, "ansible.builtin.command", f"ping -c 2 -W 2 -M do -s 8972 {target}")[first]
    assert result.get("rc") == 0, result


def test_second_site_run_changes_nothing(operator):
    before = operator.inventory.read_text()
    stats = operator.playbook("site.yml", node_count=3)
    assert changed_total(stats) == 0, stats
    assert operator.inventory.read_text() == before


def test_grow_to_five_workers_attaches_and_configures_new_nodes(operator):
    before = set(operator.hosts())
    operator.playbook("cluster_resize.yml", 3, "-e", f"container_infra_resize_cluster={NAME}",
                      "-e", "container_infra_resize_node_count=5")
    hosts = operator.hosts()
    new = sorted(set(hosts) - before)
    assert len(new) == 2 and len(workers(operator)) == 6, hosts.keys()
    addresses = lln_addresses(operator, new)
    for host in new:
        lln = hosts[host]["container_infra_networks"]["lln"]
        assert f"{lln['ip']}/{lln['prefix']}" in addresses[host]
        assert "hte" in hosts[host]["container_infra_networks"]


def test_shrink_back_removes_nodes_and_their_ports(operator, cloud):
    before = operator.hosts()
    operator.playbook("cluster_resize.yml", 3, "-e", f"container_infra_resize_cluster={NAME}",
                      "-e", "container_infra_resize_node_count=3")
    after = operator.hosts()
    gone = set(before) - set(after)
    assert len(gone) == 2 and len(workers(operator)) == 4, after.keys()
    gone_ports = [entry["port_id"] for host in gone for net, entry in before[host]["container_infra_networks"].items()
                  if net in ("hte", "lln")]
    remaining = [p.id for p in listed(cloud.sdk.network.ports) if p.id in gone_ports]
    assert remaining == [], remaining


def test_a_lost_directory_still_detaches_a_network_taken_out_of_the_spec(operator, cloud):
    """Neutron, not the written inventory, is the record of the provider ports (issue 14)."""
    before = operator.hosts()
    lln_ports = {v["container_infra_networks"]["lln"]["port_id"] for v in before.values()
                 if "lln" in v["container_infra_networks"]}
    hte_ports = {v["container_infra_networks"]["hte"]["port_id"] for v in before.values()}
    assert len(lln_ports) == len(workers(operator)) and len(hte_ports) == len(before)
    shutil.rmtree(operator.inventory.parent)  # a fresh checkout, a second operator, a lost directory
    operator.playbook("cluster_create.yml", 3, networks=[{"network": "hte"}])
    ports = {p.id: p for p in listed(cloud.sdk.network.ports)}
    assert lln_ports & set(ports) == set(), "the LLN ports are still in Neutron"
    assert hte_ports <= set(ports) and all(ports[p].device_id for p in hte_ports)
    after = operator.hosts()
    assert set(after) == set(before)
    assert not [h for h, v in after.items() if "lln" in v["container_infra_networks"]]


def test_delete_leaves_nothing_behind(operator, cloud):
    hosts = operator.hosts()
    server_ids = {v["container_infra_server_id"] for v in hosts.values()}
    port_ids = {e["port_id"] for v in hosts.values() for e in v["container_infra_networks"].values()}
    floating = {v["ansible_host"] for v in hosts.values()}
    operator.playbook("cluster_delete.yml", 3)
    assert not operator.inventory.exists()
    assert [c for c in listed(cloud.magnum().clusters.list) if c.name == NAME] == []
    assert {s.id for s in listed(cloud.sdk.compute.servers)} & server_ids == set()
    assert {p.id for p in listed(cloud.sdk.network.ports)} & port_ids == set()
    assert {ip.floating_ip_address for ip in listed(cloud.sdk.network.ips)} & floating == set()
    assert [s for s in listed(cloud.heat().stacks.list) if s.stack_name.startswith(NAME)] == []
    containers = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={NODE_LABEL}"],
                                capture_output=True, text=True, check=True).stdout.split()
    labels = subprocess.run(["docker", "inspect", "--format", f'{{{{index .Config.Labels "{NODE_LABEL}"}}}}',
                             *containers], capture_output=True, text=True, check=False).stdout.split() \
        if containers else []
    assert set(labels) & server_ids == set()
