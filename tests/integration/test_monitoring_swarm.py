"""The monitoring role on a small Swarm of the sandbox: playbooks/monitoring.yml as an operator runs it, with the
inventory a cluster's written one would be (two Docker-backed nodes, the first a manager, the second a GPU node of
bm.gpu.v100 with two emulated GPUs, which playbooks/gpu.yml equips as test_gpu_swarm.py does), images from the
sandbox's registry (built from Debian's packages).

Prometheus is asked through its HTTP API on the manager (over SSH to the node's floating IP, a loopback address
here, as the demo reaches nodes; the sandbox forwards only SSH and the Swarm's TLS port). The tests run in order.
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
from test_gpu_swarm import Operator, assert_ok
from test_storage import wait_for

from container_infra import inventory
from container_infra import monitoring as monitoring_module
from container_infra.sandbox import images, registry
from container_infra.sandbox.layout import STORAGE_NETWORK

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUN = uuid.uuid4().hex[:6]
CLUSTER = f"mon-{RUN}"


def run(node, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return ssh(node["address"], node["key"], command, check=check)


GPUS = 2  # bm.gpu.v100's gpu:count
# The cluster's storage spec as the storage role reads it: a share on the workers (the mount alert's rule).
MOUNT = "/mnt/scratch"
STORAGE = [{"name": "scratch", "kind": "cephfs", "path": MOUNT, "roles": ["worker"],
            "cephfs": {"share": f"mon-{RUN}-share"}}]


def spec(**more) -> dict:
    return {"enabled": True, "node_exporter_image": f"{images.image_name('node-exporter')}:latest",
            "prometheus_image": f"{images.image_name('prometheus')}:latest",
            "gpu_metrics_image": f"{images.image_name('base')}:latest", "gpu_metrics_interval": "5s",
            "scrape_interval": "5s", "evaluation_interval": "5s", "node_down_for": "30s", **more}


class Monitoring:
    def __init__(self, work: Path, nodes: list[dict]):
        self.work, self.nodes = work, nodes
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        hosts = {node["name"]: {
            "ansible_host": node["address"], "ansible_user": "core",
            "ansible_ssh_private_key_file": str(node["key"]),
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
            "container_infra_cluster": CLUSTER, "container_infra_role": node["role"],
            "container_infra_nodegroup": f"default-{node['role']}",
            "container_infra_gpu": node["gpu"],
            # What the inventories write from the flavor's gpu:count.
            **({"container_infra_gpu_count": GPUS} if node["gpu"] else {}),
        } for node in nodes}
        by_role = {role: {n: hosts[n] for n in hosts if hosts[n]["container_infra_role"] == role}
                   for role in ("master", "worker")}
        self.inventory = work / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {
            "masters": {"hosts": by_role["master"]}, "workers": {"hosts": by_role["worker"]},
            "gpu": {"hosts": {n: {} for n in hosts if hosts[n]["container_infra_gpu"]}},
            inventory.cluster_group(CLUSTER): {"hosts": {n: {} for n in hosts}}}}}))

    def play(self, monitoring: dict):
        variables = self.work / "vars.json"
        variables.write_text(json.dumps({"container_infra_monitoring": monitoring, "container_infra_storage": STORAGE}))
        started = time.monotonic()
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), "-e", f"@{variables}",
                               str(REPO / "playbooks" / "monitoring.yml")],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=600)
        done.elapsed = time.monotonic() - started
        try:
            done.report = json.loads(done.stdout[done.stdout.index("{"):])
        except ValueError:
            raise AssertionError(f"no JSON (rc {done.returncode}): {done.stdout[-3000:]} {done.stderr[-2000:]}") \
                from None
        return done


def failures(done) -> list[str]:
    return [result.get("msg", "") for play in done.report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]


def changed_tasks(done) -> list[str]:
    return [f"{task['task']['name']} on {host}" for play in done.report["plays"] for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("changed")]


def query(node, promql: str) -> list[dict]:
    """An instant query of the Prometheus on ``node`` (its API on the node's loopback, over SSH)."""
    script = ("import json,sys,urllib.parse,urllib.request;"
              "q=urllib.parse.urlencode({'query':sys.argv[1]});"
              "print(urllib.request.urlopen('http://127.0.0.1:9090/api/v1/query?'+q,timeout=10).read().decode())")
    out = run(node, f"python3 -c {json.dumps(script)} {json.dumps(promql)}", check=False)
    if out.returncode != 0:
        return []
    answer = json.loads(out.stdout)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def bring_up(osc, key_name: str, key, wanted: list[tuple[str, str]], addresses: list[str]) -> list[dict]:
    """Docker-backed nodes (name, flavor) with the storage network (it reaches the sandbox's registry, 10.80.0.2),
    a floating IP each (appended to ``addresses`` for the clean-up) and a running engine."""
    servers = {}
    for name, flavor in wanted:
        servers |= boot(osc, [name], key_name, properties={"sandbox_dockerd": "true"}, flavor=flavor)
    names = [name for name, _ in wanted]
    attached = ansible_module("os_server_interface", {
        "cloud": "sandbox", "servers": names, "interfaces": [{"network": STORAGE_NETWORK}], "poll_interval": 1})
    out = []
    for name, flavor in wanted:
        address = with_floating_ip(osc, name)
        addresses.append(address)
        wait_ssh(address, key)
        port = attached["servers"][name][STORAGE_NETWORK]
        node = {"name": name, "address": address, "key": key, "role": "worker", "gpu": flavor != "bm.standard",
                "fixed": servers[name]["addresses"]["private"][0]}
        run(node, f"dev=$(ip -o link | awk -F': ' '/{port['mac']}/ {{print $2}}' | cut -d@ -f1); "
                  f"sudo ip link set $dev up && sudo ip addr replace {port['ip']}/24 dev $dev")
        wait_for(lambda node=node: run(node, "docker info >/dev/null 2>&1", check=False).returncode == 0,
                 "dockerd", timeout=60)
        out.append(node)
    return out


def join(manager, worker) -> None:
    token = run(manager, "docker swarm join-token -q worker").stdout.strip()
    run(worker, f"docker swarm join --advertise-addr {worker['fixed']} --token {token} "
                f"{manager['fixed']}:2377 >/dev/null")


@pytest.fixture(scope="module")
def nodes(sandbox, osc, ssh_keypair):
    key_name, _ = ssh_keypair
    names = [f"mon-{RUN}-a", f"mon-{RUN}-b"]
    addresses: list[str] = []
    try:
        manager, worker = bring_up(osc, key_name, ssh_keypair[1], [(names[0], "bm.standard"),
                                                                   (names[1], "bm.gpu.v100")], addresses)
        manager["role"] = "master"
        run(manager, f"docker swarm init --advertise-addr {manager['fixed']} >/dev/null")
        join(manager, worker)
        yield [manager, worker]
    finally:
        delete(osc, *names)
        for address in addresses:
            osc.run("floating", "ip", "delete", address, check=False)


@pytest.fixture(scope="module")
def monitoring(nodes, sandbox, tmp_path_factory):
    images.build(["prometheus", "node-exporter", "base"], print, registry.ca_path(sandbox))
    return Monitoring(tmp_path_factory.mktemp("monitoring"), nodes)


@pytest.fixture(scope="module")
def gpu_runtime(nodes, tmp_path_factory):
    """The GPU node equipped by the GPU role (driver, toolkit, the engine's nvidia runtime), as site.yml does
    before the monitoring."""
    assert_ok(Operator(tmp_path_factory.mktemp("gpu"), nodes).play())


def test_an_image_the_registry_lacks_is_one_sentence_and_nothing_is_deployed(monitoring, nodes):
    missing = f"{registry.PREFIX}nope-{RUN}:1"
    done = monitoring.play(spec(node_exporter_image=missing))
    assert done.returncode != 0
    (message,) = set(failures(done))
    assert message.startswith(f"The image {missing} is not in the registry {registry.REGISTRY}"), message
    assert changed_tasks(done) == []
    manager = nodes[0]
    assert run(manager, "docker service ls -q").stdout.strip() == ""
    assert run(manager, "docker ps -aq").stdout.strip() == ""


def test_a_gpu_node_without_the_nvidia_runtime_is_one_sentence(monitoring, nodes):
    """Before the GPU role has run there: the GPU node stops at the runtime's check, the manager goes on."""
    done = monitoring.play(spec())
    assert done.returncode != 0
    worker = nodes[1]["name"]
    assert failures(done) == [
        f"{worker} is a GPU node but its Docker engine has no nvidia runtime; run the GPU role there first "
        "(playbooks/gpu.yml, or container_infra_gpu_enabled for the cluster), or set monitoring.gpu_metrics to "
        "false."]
    assert run(nodes[1], f"docker ps -aq --filter name={monitoring_module.GPU_METRICS}").stdout.strip() == ""


def test_converge_every_exporter_and_engine_is_up_with_the_nodes_file_systems(monitoring, nodes, gpu_runtime):
    done = monitoring.play(spec())
    assert done.returncode == 0, failures(done)
    print(f"first run (2 nodes): {done.elapsed:.1f} s")
    manager = nodes[0]
    names = {node["name"] for node in nodes}

    def all_up() -> bool:
        ups = query(manager, 'up{job=~"node|docker-engine"}')
        seen = {(s["metric"]["job"], s["metric"].get("node")) for s in ups if s["value"][1] == "1"}
        return seen == {(job, name) for job in ("node", "docker-engine") for name in names}

    wait_for(all_up, "up == 1 for every node exporter and engine", timeout=120)
    # The root file system is the node's: the size the node itself sees for /, not the exporter container's.
    sizes = {s["metric"]["node"]: int(float(s["value"][1]))
             for s in query(manager, 'node_filesystem_size_bytes{job="node",mountpoint="/"}')}
    for node in nodes:
        # As the exporter computes it: blocks times the block size.
        statvfs = run(node, "python3 -c 'import os; s = os.statvfs(chr(47)); print(s.f_blocks * s.f_bsize)'")
        assert sizes[node["name"]] == int(statvfs.stdout), (node["name"], sizes)


UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}


def agents_memory(node) -> dict[str, int]:
    """Bytes of memory each of the node's monitoring agents uses (docker stats; Prometheus is no agent)."""
    stats = run(node, "docker stats --no-stream --format '{{.Name}} {{.MemUsage}}'").stdout
    out = {}
    for line in stats.splitlines():
        name, usage = line.split(" ", 1)
        if name.startswith("container-infra-") and not name.startswith(monitoring_module.PROMETHEUS):
            number, unit = re.match(r"([\d.]+)\s*([A-Za-z]+)", usage.split("/")[0].strip()).groups()
            out[name.split(".")[0]] = int(float(number) * UNITS[unit])
    return out


def test_the_agents_cost_under_100_mb_a_node_and_a_scrape_under_a_second(monitoring, nodes):
    """The issue's cost bounds, measured and printed: every node's agents (the node exporter, and the GPU metrics
    container on the GPU node) together under 100 MB of memory; each scrape of a node under 1 s."""
    for node in nodes:
        memory = agents_memory(node)
        expected = {monitoring_module.NODE_EXPORTER} | ({monitoring_module.GPU_METRICS} if node["gpu"] else set())
        assert set(memory) == expected, memory
        total = sum(memory.values())
        print(f"agents on {node['name']}: {total / 1024 ** 2:.1f} MiB ({memory})")
        assert total < 100 * 1000 ** 2, memory
    durations = {(s["metric"]["job"], s["metric"]["node"]): float(s["value"][1])
                 for s in query(nodes[0], 'scrape_duration_seconds{job=~"node|docker-engine"}')}
    print(f"scrape durations: {durations}")
    assert len(durations) == 2 * len(nodes) and max(durations.values()) < 1, durations


def node_gpus(node) -> dict[str, int]:
    """UUID -> memory in MiB of the node's emulated GPUs (its hardware: the file the sandbox's driver reads)."""
    rows = [line.split("\t") for line in run(node, "cat /etc/sandbox/gpus.tsv").stdout.splitlines()
            if line and not line.startswith("#")]
    return {row[1]: int(row[3]) for row in rows}


def gpu_series(manager) -> dict[str, set[str]]:
    """node -> the GPU UUIDs Prometheus has a container_infra_gpu_info series for."""
    out: dict[str, set[str]] = {}
    for sample in query(manager, "container_infra_gpu_info"):
        out.setdefault(sample["metric"]["node"], set()).add(sample["metric"]["uuid"])
    return out


def test_a_gpu_node_has_one_series_per_gpu_and_its_flavors_count(monitoring, nodes):
    manager, worker = nodes
    gpus = node_gpus(worker)
    assert len(gpus) == GPUS
    wait_for(lambda: gpu_series(manager) == {worker["name"]: set(gpus)},
             "one container_infra_gpu_info series per emulated GPU of the GPU node, none elsewhere", timeout=60)
    expected = {s["metric"]["node"]: s["value"][1] for s in query(manager, "container_infra_gpus_expected")}
    assert expected == {worker["name"]: str(GPUS)}
    memory = {s["metric"]["uuid"]: int(s["value"][1])
              for s in query(manager, f'container_infra_gpu_memory_total_bytes{{node="{worker["name"]}"}}')}
    assert memory == {uuid: mib * 1048576 for uuid, mib in gpus.items()}
    assert not firing(manager, "GpusMissing", worker["name"])


def engine_state(node) -> str:
    """Every service's ID and version and every container's ID on the node: what a redeploy would change."""
    services = run(node, "docker service ls -q | xargs -r docker service inspect --format '{{.ID}} {{.Version.Index}}'",
                   check=False).stdout
    return services + run(node, "docker ps -q --no-trunc | sort").stdout


def test_a_second_run_changes_nothing_and_redeploys_nothing(monitoring, nodes):
    before = [engine_state(node) for node in nodes]
    done = monitoring.play(spec())
    assert done.returncode == 0, failures(done)
    print(f"second run: {done.elapsed:.1f} s")
    assert changed_tasks(done) == []
    assert [engine_state(node) for node in nodes] == before


def firing(manager, alert: str, node: str) -> bool:
    return any(s["metric"].get("node") == node
               for s in query(manager, f'ALERTS{{alertname="{alert}",alertstate="firing"}}'))


def wait_fired_in_time(manager, alert: str, node: str, cause: str) -> None:
    """From now (just after ``cause``), ``alert`` fires for ``node`` within the spec's node_down_for (30 s), two
    scrape intervals (5 s each) and one evaluation (5 s), with room for this busy machine's slowness (the query runs
    over SSH, each try a few seconds)."""
    since = time.monotonic()
    wait_for(lambda: firing(manager, alert, node), f"{alert} firing for {node}", timeout=120)
    fired = time.monotonic() - since
    print(f"{alert} fired {fired:.0f} s after {cause}")
    assert fired <= 30 + 2 * 5 + 5 + 20, fired


def test_a_gpu_the_node_loses_fires_gpus_missing(monitoring, nodes):
    """A GPU gone from the node (its line out of the emulated hardware's table; the metrics container made again,
    as after a driver reload) fires GpusMissing within its for (30 s) and a few scrapes; back, it resolves."""
    manager, worker = nodes
    table = "/etc/sandbox/gpus.tsv"
    run(worker, f"sudo cp {table} /tmp/gpus.tsv.all && grep -v '^1\t' /tmp/gpus.tsv.all | sudo tee {table} >/dev/null "
                f"&& docker restart {monitoring_module.GPU_METRICS} >/dev/null")
    try:
        wait_for(lambda: len(gpu_series(manager).get(worker["name"], ())) == GPUS - 1, "one GPU series gone",
                 timeout=60)
        wait_for(lambda: firing(manager, "GpusMissing", worker["name"]), "GpusMissing firing", timeout=90)
    finally:
        run(worker, f"sudo cp /tmp/gpus.tsv.all {table} && docker restart {monitoring_module.GPU_METRICS} >/dev/null")
    wait_for(lambda: not firing(manager, "GpusMissing", worker["name"]), "GpusMissing resolved", timeout=90)


def test_a_share_unmounted_from_a_node_fires_the_mount_alert(monitoring, nodes):
    """The rule watches the spec's mount point on the nodes the spec places it on. A tmpfs stands in for the share
    here (the rule looks at the mount point whatever its file system; the CephFS mount itself is tested in
    test_storage_roles.py). The spec's node_down_for (30 s) is the rule's for."""
    manager, worker = nodes
    run(worker, f"sudo mkdir -p {MOUNT} && sudo mount -t tmpfs -o size=1m share-stand-in {MOUNT}")
    try:
        wait_for(lambda: query(manager, f'node_filesystem_size_bytes{{node="{worker["name"]}",mountpoint="{MOUNT}"}}')
                 and not firing(manager, "StorageMountMissing", worker["name"]),
                 "the mount seen and no mount alert", timeout=90)
    finally:
        run(worker, f"sudo umount {MOUNT}")
    wait_fired_in_time(manager, "StorageMountMissing", worker["name"], "the unmount")
    # Only where the spec places the share: the manager has no such mount and no alert.
    assert not firing(manager, "StorageMountMissing", manager["name"])


def prometheus_state(manager) -> str:
    """What a change of Prometheus's configuration would change: its files' checksums and its container's ID."""
    return run(manager, f"sudo sha256sum {monitoring_module.CONFIG_DIR}/* && "
                        f"docker ps -q --no-trunc --filter name={monitoring_module.PROMETHEUS}").stdout


def test_a_node_that_joins_is_a_target_and_one_that_leaves_is_not_with_no_change_to_prometheus(
        monitoring, nodes, osc, ssh_keypair):
    """Growing and shrinking the Swarm (as a resize does): the new node's exporter (the global service's task
    there) is scraped with Prometheus's files and container untouched; after it leaves, it is no target."""
    manager = nodes[0]
    before = prometheus_state(manager)
    name = f"mon-{RUN}-c"
    addresses: list[str] = []
    try:
        (extra,) = bring_up(osc, ssh_keypair[0], ssh_keypair[1], [(name, "bm.standard")], addresses)
        join(manager, extra)
        wait_for(lambda: any(s["metric"].get("node") == name for s in query(manager, 'up{job="node"} == 1')),
                 "the joined node's exporter up", timeout=120)
        assert prometheus_state(manager) == before
        run(extra, "docker swarm leave >/dev/null")
        node_id = run(manager, f"docker node ls --filter name={name} -q").stdout.strip()
        wait_for(lambda: run(manager, f"docker node rm {node_id} >/dev/null 2>&1", check=False).returncode == 0,
                 "the node removed from the Swarm", timeout=60)
        wait_for(lambda: not any(s["metric"].get("node") == name for s in query(manager, 'up{job="node"}')),
                 "no target for the node that left", timeout=60)
        assert prometheus_state(manager) == before
    finally:
        delete(osc, name)
        for address in addresses:
            osc.run("floating", "ip", "delete", address, check=False)


def test_a_stopped_node_fires_the_node_down_alert_and_its_start_resolves_it(monitoring, nodes, osc):
    """Runs last in this file: it stops the worker. The spec's node_down_for is 30 s, its scrape interval 5 s."""
    manager, worker = nodes
    assert not firing(manager, "NodeDown", worker["name"])
    osc.run("server", "stop", worker["name"])
    wait_server_status(osc, worker["name"], "SHUTOFF", timeout=120)
    wait_fired_in_time(manager, "NodeDown", worker["name"], "the worker stopped")
    osc.run("server", "start", worker["name"])
    wait_for(lambda: not firing(manager, "NodeDown", worker["name"]), "NodeDown resolved after the start",
             timeout=240)
    # The node is back in Prometheus: its exporter (the Swarm's global service restarted it) is up.
    assert {s["metric"].get("node") for s in query(manager, 'up{job="node"} == 1')} == {n["name"] for n in nodes}
