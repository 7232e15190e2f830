"""The GPU role on a small Swarm of the sandbox: one manager (bm.standard) and one GPU worker (bm.gpu.v100: two
emulated GPUs), playbooks/gpu.yml as an operator runs it with the inventory a cluster's written one would be. The
driver and toolkit come from the sandbox's package repository (NVIDIA's repositories' shape, signed), the check
image from its registry: those URLs are the only sandbox-specific values.

One module-scoped Swarm; the tests run in order (the first converges, the later ones look and run again).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest
import requests
import yaml
from ansible_runner import ansible_module
from cluster_access import SSH_OPTIONS, ssh, wait_ssh
from test_docker_nodes import boot, delete, with_floating_ip
from test_storage import wait_for

from container_infra import inventory, jobs
from container_infra.jobs_swarm import API_VERSION, SwarmJobs
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
            inventory.cluster_group(CLUSTER): {"hosts": {n: {} for n in hosts}}}}}))
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


@contextlib.contextmanager
def engine_api(node):
    """The node's Docker engine on a loopback port of this machine, through an SSH forward of its socket: this
    test's Swarm has no TLS API of its own, and the job backend `container-infra job` uses takes any client."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tunnel = subprocess.Popen(["ssh", *SSH_OPTIONS, "-i", str(node["key"]), "-N", "-o", "ExitOnForwardFailure=yes",
                               "-L", f"127.0.0.1:{port}:/var/run/docker.sock", f"core@{node['address']}"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # A fixed API version: the client asks the engine nothing until the forward answers.
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", timeout=30, version=API_VERSION)

        def answers() -> bool:
            assert tunnel.poll() is None, f"the SSH forward ended: {tunnel.stderr.read().decode()}"
            try:
                return client.ping()
            except (docker.errors.DockerException, requests.RequestException):
                return False

        wait_for(answers, "the manager's engine through SSH", timeout=30)
        yield client
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=10)


def test_a_job_of_three_one_gpu_tasks_runs_two_at_a_time_each_with_its_own_gpu(nodes, sandbox):
    """Through the toolkit's job backend (what `container-infra job submit --gpus-per-task 1 --wait` runs)."""
    manager, worker = nodes
    image = f"{images.image_name('base')}:latest"
    spec = {"name": f"gpujob-{RUN}", "image": image, "tasks": 3, "max_concurrent": 3, "gpus_per_task": 1,
            "command": ["sh", "-c", "nvidia-smi -L; sleep 12"]}
    ca = str(registry.ca_path(sandbox))
    with engine_api(manager) as client:
        backend = SwarmJobs(client)
        assert [(n.hostname, n.gpus) for n in backend.nodes() if n.gpus] == [(worker["name"], 2)]
        # More GPUs per task than the GPU node has: one sentence, nothing submitted.
        with pytest.raises(jobs.JobError, match=r"asks 3 GPU\(s\) per task but the most any node"):
            backend.submit(jobs.parse({**spec, "name": f"toomany-{RUN}", "gpus_per_task": 3}), registry_ca=ca)
        assert [job["name"] for job in backend.list()] == []

        job = jobs.parse(spec)
        backend.submit(job, registry_ca=ca)
        polls: list[dict] = []
        final = backend.wait(job.name, interval=1, timeout=180, progress=polls.append)
        assert final["state"] == "complete", jobs.progress_line(final)
        assert [(t["index"], t["exit_code"]) for t in final["task_states"]] == [(0, 0), (1, 0), (2, 0)]
        assert {t["node"] for t in final["task_states"]} == {worker["name"]}
        # Two GPUs: two tasks at a time, and the third waited for one.
        assert max(p["running"] for p in polls) == 2, [jobs.progress_line(p) for p in polls]
        assert any(p["running"] == 2 and p["pending"] == 1 for p in polls), [jobs.progress_line(p) for p in polls]
        lines = [line for _, line in backend.logs(job.name) if line.startswith("GPU ")]
        backend.cancel(job.name)
    assert len(lines) == 3, lines
    # Each task saw exactly one GPU (as GPU 0, as a container sees its devices), its own, and only the node's.
    hardware = {line.split("\t")[1] for line in run(worker, "cat /etc/sandbox/gpus.tsv").stdout.splitlines()
                if line and not line.startswith("#")}
    assert all(line.startswith("GPU 0: Tesla V100-SXM2-32GB (UUID: GPU-") for line in lines), lines
    assert {line.split("UUID: ")[1].rstrip(")") for line in lines} <= hardware


def test_a_second_run_changes_nothing_and_restarts_no_engine(operator, nodes):
    worker = nodes[1]
    pids = {node["name"]: run(node, "pgrep -x dockerd").stdout.strip() for node in nodes}
    done = operator.play()
    assert_ok(done)
    print(f"second run: {done.elapsed:.1f} s")
    assert changed_tasks(done) == []
    assert done.report["stats"][worker["name"]]["changed"] == 0
    assert {node["name"]: run(node, "pgrep -x dockerd").stdout.strip() for node in nodes} == pids
