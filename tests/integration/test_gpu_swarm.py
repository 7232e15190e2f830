"""The GPU role on a small Swarm of the sandbox: one manager (bm.standard) and one GPU worker (bm.gpu.v100: two
emulated GPUs), playbooks/gpu.yml as an operator runs it with the inventory a cluster's written one would be. The
driver and toolkit come from the sandbox's package repository (NVIDIA's repositories' shape, signed), the check
image from its registry: those URLs are the only sandbox-specific values.

One module-scoped Swarm; the tests run in order (the first converges, the later ones look and run again).
"""

from __future__ import annotations

import json
import os
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

from container_infra.sandbox import images, packages, registry
from container_infra.sandbox.layout import STORAGE_NETWORK

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUN = uuid.uuid4().hex[:6]
CLUSTER = f"gpu-{RUN}"
# Keys of daemon.json that are not the role's (as the sandbox's TLS settings are on a Magnum Swarm): they stay.
OTHER_KEYS = {"log-level": "info", "labels": [f"org.container-infra.test={RUN}"]}


def run(node, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return ssh(node["address"], node["key"], command, check=check)


def assert_ok(done) -> None:
    assert done.returncode == 0, f"rc {done.returncode}: {failures(done) or done.stdout[-3000:]} {done.stderr[-2000:]}"


def failures(done) -> list[str]:
    return [result.get("msg", "") for play in done.report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]


def changed_tasks(done) -> list[str]:
    return [f"{task['task']['name']} on {host}" for play in done.report["plays"] for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("changed")]


class Operator:
    def __init__(self, work: Path, nodes: list[dict]):
        self.work = work
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                        ANSIBLE_LOAD_CALLBACK_PLUGINS="1", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        hosts = {node["name"]: {
            "ansible_host": node["address"], "ansible_user": "core", "ansible_ssh_private_key_file": str(node["key"]),
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
            "container_infra_cluster": CLUSTER, "container_infra_role": node["role"],
            "container_infra_gpu": node["gpu"]} for node in nodes}
        self.inventory = work / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {
            "masters": {"hosts": {n: hosts[n] for n in hosts if hosts[n]["container_infra_role"] == "master"}},
            "workers": {"hosts": {n: hosts[n] for n in hosts if hosts[n]["container_infra_role"] == "worker"}},
            "gpu": {"hosts": {n: {} for n in hosts if hosts[n]["container_infra_gpu"]}},
            f"cluster_{CLUSTER}": {"hosts": {n: {} for n in hosts}}}}}))
        # What inventories/sandbox/group_vars/all/gpu.yml sets: the repositories' URLs and the check image.
        self.variables = work / "vars.json"
        self.variables.write_text(json.dumps({
            "container_infra_gpu_cuda_repository": f"{packages.URL}/compute/cuda/repos",
            "container_infra_gpu_toolkit_repository": f"{packages.URL}/libnvidia-container",
            "container_infra_gpu_verify_image": f"{images.image_name('base')}:latest"}))

    def play(self):
        started = time.monotonic()
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), "-e", f"@{self.variables}",
                               str(REPO / "playbooks" / "gpu.yml")],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=600)
        done.elapsed = time.monotonic() - started
        try:
            done.report = json.loads(done.stdout[done.stdout.index("{"):])
        except ValueError:
            raise AssertionError(f"no JSON (rc {done.returncode}): {done.stdout[-3000:]} {done.stderr[-2000:]}") \
                from None
        return done


@pytest.fixture(scope="module")
def nodes(sandbox, osc, ssh_keypair):
    key_name, key = ssh_keypair
    names = {"manager": f"gpu-{RUN}-m", "gpu": f"gpu-{RUN}-g"}
    addresses = []
    try:
        servers = boot(osc, [names["manager"]], key_name, properties={"sandbox_dockerd": "true"})
        servers |= boot(osc, [names["gpu"]], key_name, properties={"sandbox_dockerd": "true"}, flavor="bm.gpu.v100")
        # The storage network reaches the sandbox's registry and package repository (10.80.0.2).
        attached = ansible_module("os_server_interface", {
            "cloud": "sandbox", "servers": list(names.values()), "interfaces": [{"network": STORAGE_NETWORK}],
            "poll_interval": 1})
        out = []
        for role, name in names.items():
            address = with_floating_ip(osc, name)
            addresses.append(address)
            wait_ssh(address, key)
            port = attached["servers"][name][STORAGE_NETWORK]
            node = {"name": name, "address": address, "key": key, "role": "master" if role == "manager" else "worker",
                    "gpu": role == "gpu", "fixed": servers[name]["addresses"]["private"][0]}
            run(node, f"dev=$(ip -o link | awk -F': ' '/{port['mac']}/ {{print $2}}' | cut -d@ -f1); "
                      f"sudo ip link set $dev up && sudo ip addr replace {port['ip']}/24 dev $dev")
            wait_for(lambda node=node: run(node, "docker info >/dev/null 2>&1", check=False).returncode == 0,
                     "dockerd", timeout=60)
            out.append(node)
        manager, worker = out
        run(worker, f"echo {json.dumps(json.dumps(OTHER_KEYS))} | sudo tee /etc/docker/daemon.json >/dev/null")
        run(manager, f"docker swarm init --advertise-addr {manager['fixed']} >/dev/null")
        token = run(manager, "docker swarm join-token -q worker").stdout.strip()
        run(worker, f"docker swarm join --advertise-addr {worker['fixed']} --token {token} "
                    f"{manager['fixed']}:2377 >/dev/null")
        yield out
    finally:
        for name in names.values():
            delete(osc, name)
        for address in addresses:
            osc.run("floating", "ip", "delete", address, check=False)


@pytest.fixture(scope="module")
def operator(nodes, sandbox, tmp_path_factory):
    images.build(["base"], print, registry.ca_path(sandbox))
    return Operator(tmp_path_factory.mktemp("gpu"), nodes)


def test_the_role_installs_wires_and_checks_the_gpu_node(operator, nodes):
    manager, worker = nodes
    done = operator.play()
    assert_ok(done)
    print(f"first run (1 GPU node): {done.elapsed:.1f} s")
    # The emulated hardware (the compute driver's) is what the driver reports and what Swarm advertises.
    hardware = [line.split("\t")[1] for line in run(worker, "cat /etc/sandbox/gpus.tsv").stdout.splitlines()
                if line and not line.startswith("#")]
    assert len(hardware) == 2
    assert run(worker, "nvidia-smi --query-gpu=uuid --format=csv,noheader").stdout.split() == hardware
    info = json.loads(run(worker, "docker info --format '{{json .}}'").stdout)
    assert info["DefaultRuntime"] == "nvidia" and "nvidia" in info["Runtimes"]
    resources = json.loads(run(manager, f"docker node inspect {worker['name']} "
                                        "--format '{{json .Description.Resources.GenericResources}}'").stdout)
    assert sorted(r["NamedResourceSpec"]["Value"] for r in resources) == sorted(hardware)
    assert {r["NamedResourceSpec"]["Kind"] for r in resources} == {"gpu"}
    labels = json.loads(run(manager, f"docker node inspect {worker['name']} "
                                     "--format '{{json .Spec.Labels}}'").stdout)
    assert labels == {"gpu": "true", "gpu.model": "Tesla V100-SXM2-32GB", "gpu.count": "2"}
    daemon = json.loads(run(worker, "cat /etc/docker/daemon.json").stdout)
    assert {key: daemon[key] for key in OTHER_KEYS} == OTHER_KEYS
    assert daemon["node-generic-resources"] == [f"gpu={uuid_}" for uuid_ in hardware]
    # The manager is no GPU node: the role left it alone.
    assert run(manager, "test -e /etc/docker/daemon.json || echo none").stdout.strip() == "none"


def test_a_job_of_three_one_gpu_tasks_runs_two_at_a_time_each_with_its_own_gpu(nodes):
    manager, worker = nodes
    image = f"{images.image_name('base')}:latest"
    run(manager, f"docker service create -d --name gpujob --mode replicated-job --replicas 3 --max-concurrent 3 "
                 f"--generic-resource gpu=1 --restart-condition none {image} "
                 "sh -c 'nvidia-smi -L; sleep 12'")
    states, most = [], 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        tasks = run(manager, "docker service ps gpujob --format '{{.CurrentState}}'").stdout.split("\n")
        current = [state.split()[0] for state in tasks if state.strip()]
        states.append(current)
        running = current.count("Running")
        most = max(most, running)
        if running == 2 and "Complete" not in current:
            # Two GPUs: the third task waits for one.
            assert current.count("Pending") == 1, current
        if current.count("Complete") == 3:
            break
        time.sleep(1)
    assert states and states[-1].count("Complete") == 3, states[-12:]
    assert most == 2, states
    logs = run(manager, "docker service logs --raw gpujob").stdout.splitlines()
    lines = [line for line in logs if line.startswith("GPU ")]
    assert len(lines) == 3, logs
    # Each task saw exactly one GPU (as GPU 0, as a container sees its devices) and only the node's.
    hardware = {line.split("\t")[1] for line in run(worker, "cat /etc/sandbox/gpus.tsv").stdout.splitlines()
                if line and not line.startswith("#")}
    assert all(line.startswith("GPU 0: Tesla V100-SXM2-32GB (UUID: GPU-") for line in lines), lines
    assert {line.split("UUID: ")[1].rstrip(")") for line in lines} <= hardware
    run(manager, "docker service rm gpujob >/dev/null")


def test_a_second_run_changes_nothing_and_restarts_no_engine(operator, nodes):
    worker = nodes[1]
    pids = {node["name"]: run(node, "pgrep -x dockerd").stdout.strip() for node in nodes}
    done = operator.play()
    assert_ok(done)
    print(f"second run: {done.elapsed:.1f} s")
    assert changed_tasks(done) == []
    assert done.report["stats"][worker["name"]]["changed"] == 0
    assert {node["name"]: run(node, "pgrep -x dockerd").stdout.strip() for node in nodes} == pids
