"""Users' jobs and host-network stacks on one small Swarm of the sandbox: a Magnum swarm-mode cluster of one
manager and three workers (its TLS Docker API on the manager's floating IP, port 2376, with the credentials
os_container_infra_config writes), every node with a port on the storage network (the registry, Ceph) and
a CephFS share mounted by the storage role (playbooks/storage.yml), two workers with a port on the LLN.

Jobs go through `container-infra job` as a user runs it. The tests run in order on the one cluster.
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
from cluster_access import ssh, wait_cluster_gone, wait_ssh, wait_status
from test_storage import wait_for
from test_swarm import server_ids

from container_infra import jobs
from container_infra.jobs_swarm import SwarmJobs, connect
from container_infra.sandbox import images, registry
from container_infra.sandbox.layout import STORAGE_CIDR, STORAGE_NETWORK

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUN = uuid.uuid4().hex[:6]
CLUSTER = f"jobs-{RUN}"
SHARE = f"jobs-{RUN}-share"
MOUNT = "/mnt/scratch"
IMAGE = f"{images.image_name('base')}:latest"
STORAGE = [{"name": "scratch", "kind": "cephfs", "path": MOUNT, "mode": "0777",
            "cephfs": {"share": SHARE, "create": True, "size": 1, "share_type": "cephfs"}}]
STARTED = time.monotonic()


def run(node, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return ssh(node["address"], node["key"], command, check=check)


def playbook(work: Path, inventory: dict, playbook_path: Path, variables: dict) -> subprocess.CompletedProcess:
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (work / "vars.json").write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(work / "hosts.yml"), "-e", f"@{work / 'vars.json'}",
                           str(playbook_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    try:
        done.report = json.loads(done.stdout[done.stdout.index("{"):])
    except ValueError:
        raise AssertionError(f"no JSON (rc {done.returncode}): {done.stdout[-3000:]} {done.stderr[-2000:]}") from None
    return done


def changed(done) -> int:
    return sum(host.get("changed", 0) for host in done.report["stats"].values())


def failures(done) -> list[str]:
    return [result.get("msg", "") for play in done.report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]


@pytest.fixture(scope="module")
def swarm(sandbox, osc, ssh_keypair, tmp_path_factory):
    """The cluster: its nodes (name, address, role, hostname, ports), credentials and a jobs client."""
    key_name, key = ssh_keypair
    work = tmp_path_factory.mktemp("jobs")
    template = f"{CLUSTER}-t"
    osc.run("coe", "cluster", "template", "create", template, "--coe", "kubernetes",
            "--image", "fedora-coreos-sandbox", "--external-network", "public", "--fixed-network", "private",
            "--fixed-subnet", "private-subnet", "--flavor", "bm.standard", "--master-flavor", "bm.standard",
            "--server-type", "bm", "--keypair", key_name, "--driver", "sandbox_swarm_heat")
    try:
        osc.run("coe", "cluster", "create", CLUSTER, "--cluster-template", template,
                "--master-count", "1", "--node-count", "3")
        # The registry's images while the cluster builds (a no-op where they are there).
        images.build(["base"], print, registry.ca_path(sandbox))
        shown = wait_status(osc, CLUSTER, timeout=420, phase="CREATE_")
        assert shown["status"] == "CREATE_COMPLETE", shown["status_reason"]
        print(f"cluster of 4 built: {time.monotonic() - STARTED:.0f} s into the file")
        stack = shown.get("cluster_id") or shown["stack_id"]
        ids = sorted(server_ids(osc, stack))
        # Where the cluster role writes them: <inventory root>/<cluster>/credentials.
        credentials = work / CLUSTER / "credentials"
        written = ansible_module("os_container_infra_config", {"cloud": "sandbox", "cluster": CLUSTER,
                                                               "dest": str(credentials)})
        assert not written.get("failed"), written
        nodes = []
        for server_id in ids:
            server = osc.json("server", "show", server_id)
            address = next(a for a in server["addresses"]["private"] if a.startswith("127.42."))
            nodes.append({"id": server_id, "name": server["name"], "address": address, "key": key,
                          "role": "master" if address in shown["master_addresses"] else "worker"})
        interfaces = ansible_module("os_server_interface", {
            "cloud": "sandbox", "servers": [n["name"] for n in nodes], "interfaces": [{"network": STORAGE_NETWORK}]})
        assert not interfaces.get("failed"), interfaces
        for node in nodes:
            port = interfaces["servers"][node["name"]][STORAGE_NETWORK]
            node["port"] = {"ip": port["ip"], "mac": port["mac"], "mtu": port["mtu"], "cidr": STORAGE_CIDR,
                            "prefix": int(STORAGE_CIDR.split("/")[1]), "port_id": port["port_id"],
                            "gateway": None, "ipoib_mode": None}
        nodes.sort(key=lambda n: (n["role"] != "master", n["name"]))
        for node in nodes:
            wait_ssh(node["address"], key)
            node["hostname"] = run(node, "hostname").stdout.strip()
        # Two workers on the LLN, configured as the NIC role would (address and the network's MTU).
        lln_nodes = [n for n in nodes if n["role"] == "worker"][:2]
        lln = ansible_module("os_server_interface", {
            "cloud": "sandbox", "servers": [n["name"] for n in lln_nodes], "interfaces": [{"network": "lln"}]})
        assert not lln.get("failed"), lln
        for node in lln_nodes:
            port = lln["servers"][node["name"]]["lln"]
            node["lln"] = port["ip"]
            run(node, f"dev=$(ip -o link | awk -F': ' '/{port['mac']}/ {{print $2}}' | cut -d@ -f1); "
                      f"sudo ip link set $dev up && sudo ip addr replace {port['ip']}/16 dev $dev")
        client = connect(credentials)
        yield {"nodes": nodes, "credentials": credentials, "jobs": SwarmJobs(client), "client": client,
               "work": work, "lln": lln_nodes, "registry_ca": str(registry.ca_path(sandbox))}
    finally:
        osc.run("coe", "cluster", "delete", CLUSTER, check=False)
        wait_cluster_gone(osc, CLUSTER)
        osc.run("coe", "cluster", "template", "delete", template, check=False)
        osc.run("share", "delete", "--wait", SHARE, check=False)
        print(f"test_jobs_swarm.py took {time.monotonic() - STARTED:.0f} s")


@pytest.fixture(scope="module")
def mounted(swarm):
    """The CephFS share on every node, by the storage role as an operator runs it (which also brings up the
    storage network's NIC, the nodes' way to the registry: every job needs it)."""
    hosts = {node["name"]: {
        "ansible_host": node["address"], "ansible_user": "core", "ansible_ssh_private_key_file": str(node["key"]),
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
        "container_infra_cluster": CLUSTER, "container_infra_role": node["role"],
        "container_infra_nodegroup": f"default-{node['role']}",
        "container_infra_networks": {STORAGE_NETWORK: node["port"]}} for node in swarm["nodes"]}
    inventory = {"all": {"vars": {"container_infra_storage_cloud": "sandbox"}, "children": {
        "masters": {"hosts": {n: hosts[n] for n in hosts if hosts[n]["container_infra_role"] == "master"}},
        "workers": {"hosts": {n: hosts[n] for n in hosts if hosts[n]["container_infra_role"] == "worker"}}}}}
    work = swarm["work"] / "storage"
    work.mkdir()
    done = playbook(work, inventory, REPO / "playbooks" / "storage.yml", {"container_infra_storage": STORAGE})
    assert done.returncode == 0, failures(done)
    (swarm["work"] / "storage.json").write_text(json.dumps(STORAGE))
    return swarm["work"] / "storage.json"


def cli(swarm, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "container-infra"), "job", "--credentials", str(swarm["credentials"]), *args],
                          capture_output=True, text=True, timeout=timeout)


def submit(swarm, name: str, *args: str, command: str, storage: Path | None = None,
           timeout: float = 240) -> subprocess.CompletedProcess:
    more = ["--storage", str(storage)] if storage else []
    return cli(swarm, "submit", "--name", name, "--image", IMAGE, "--registry-ca", swarm["registry_ca"], *more, *args,
               "--", "sh", "-c", command, timeout=timeout)


def job_services(swarm) -> list[str]:
    return sorted(s["Spec"]["Name"] for s in swarm["client"].api.services(filters={"label": jobs.LABEL}))


def test_eight_tasks_across_four_nodes_write_their_index_to_the_shared_file_system(swarm, mounted):
    name = f"write-{RUN}"
    started = time.monotonic()
    done = submit(swarm, name, "--tasks", "8", "--max-concurrent", "8", "--mount", f"{MOUNT}:/shared", "--json",
                  storage=mounted,
                  command=f"mkdir -p /shared/{name} && echo $(hostname) > /shared/{name}/${jobs.INDEX_VARIABLE}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"8-task job: {time.monotonic() - started:.1f} s")
    summary = json.loads(done.stdout)
    assert summary["state"] == "complete" and summary["done"] == 8
    assert [t["exit_code"] for t in summary["task_states"]] == [0] * 8
    indexes = sorted(t["index"] for t in summary["task_states"])
    assert indexes == list(range(8)), indexes
    assert {t["node"] for t in summary["task_states"]} == {n["hostname"] for n in swarm["nodes"]}
    # The progress went to stderr while it waited, and each task says where its log is.
    assert "job " + name + ": running" in done.stderr or "done 8" in done.stderr, done.stderr[-1000:]
    assert all(summary["logs"][str(i)].startswith(f"container-infra job logs {name} --task {i}") for i in indexes)
    written = run(swarm["nodes"][1], f"ls {MOUNT}/{name}").stdout.split()
    assert sorted(int(i) for i in written) == list(range(8))


def test_a_failing_task_makes_the_job_failed_with_its_exit_code_and_log_tail(swarm, mounted):
    name = f"fail-{RUN}"
    done = submit(swarm, name, "--tasks", "3", "--max-concurrent", "3", "--json",
                  command=f'echo "task ${jobs.INDEX_VARIABLE} here"; '
                          f'if [ "${jobs.INDEX_VARIABLE}" = 1 ]; then echo boom >&2; exit 7; fi')
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["state"] == "failed" and summary["failed"] == 1 and summary["done"] == 2
    codes = {t["index"]: t["exit_code"] for t in summary["task_states"]}
    assert codes == {0: 0, 1: 7, 2: 0}, codes
    # stdout and stderr are two streams: their lines keep no order between them.
    assert sorted(summary["failed_logs"]["1"][-2:]) == ["boom", "task 1 here"], summary["failed_logs"]
    # The logs stream per task.
    logs = cli(swarm, "logs", name)
    assert logs.returncode == 0, logs.stderr
    assert {"[task 0] task 0 here", "[task 1] boom", "[task 2] task 2 here"} <= set(logs.stdout.splitlines())


def test_bad_input_is_one_sentence_each_and_submits_nothing(swarm, mounted):
    before = job_services(swarm)
    cases = {
        "more GPUs per task than any node has": (["--gpus-per-task", "1"], IMAGE,
                                                 "The job asks 1 GPU(s) per task but the most any node"),
        "a constraint no node matches": (["--island", "nowhere"], IMAGE, "No ready node matches the job's placement"),
        "an image the registry lacks": ([], f"{images.image_name('nope')}:1",
                                        f"The image {images.image_name('nope')}:1 is not in the registry"),
        "a mount path not mounted": (["--mount", "/mnt/elsewhere:/x"], IMAGE,
                                     "The mount source /mnt/elsewhere is not on a file system the storage role"),
    }
    for what, (args, image, words) in cases.items():
        done = cli(swarm, "submit", "--name", f"bad-{RUN}", "--image", image, "--storage", str(mounted),
                   "--registry-ca", swarm["registry_ca"], *args, "--", "true")
        assert done.returncode == 1, what
        message = done.stderr.strip().removeprefix("Error: nothing submitted: ")
        assert message.startswith(words), (what, done.stderr)
        assert message.count(". ") == 0 and message.endswith("."), (what, message)  # one sentence
    assert job_services(swarm) == before


def wait_stopped(swarm, name: str) -> None:
    """Until no container of the job runs on any node (its tasks stopped, not merely its service gone)."""
    left: dict[str, str] = {}

    def stopped() -> bool:
        for node in swarm["nodes"]:
            left[node["hostname"]] = run(node, f"docker ps -a --filter label={jobs.LABEL}={name} "
                                               "--format '{{.ID}} {{.Status}}'").stdout.strip()
        return not any("Up " in text for text in left.values())

    try:
        wait_for(stopped, f"the job {name}'s containers stopped on every node", timeout=90)
    except AssertionError as error:
        raise AssertionError(f"{error}: {left}; services {job_services(swarm)}") from None


def test_a_name_already_running_is_refused_and_cancel_stops_the_running_tasks(swarm, mounted):
    name = f"sleep-{RUN}"
    done = submit(swarm, name, "--tasks", "2", "--no-wait", command="sleep 600")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: swarm["jobs"].status(name)["running"] == 2, "2 tasks running", timeout=120)
    again = submit(swarm, name, "--no-wait", command="true")
    assert again.returncode == 1
    assert again.stderr.strip() == (f"Error: nothing submitted: A job named {name} is already running; cancel it "
                                    f"(container-infra job cancel {name}) or give this one another name.")
    listed = json.loads(cli(swarm, "list", "--json").stdout)
    assert {j["name"]: j["state"] for j in listed}[name] == "running"
    cancelled = cli(swarm, "cancel", name, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["state"] == "cancelled"

    wait_stopped(swarm, name)
    assert name not in job_services(swarm)


def test_a_job_past_its_deadline_is_cancelled_and_reported_so(swarm, mounted):
    name = f"late-{RUN}"
    done = submit(swarm, name, "--deadline", "5s", "--json", command="sleep 300")
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["state"] == "deadline-exceeded" and summary["cancelled"], summary
    assert name not in job_services(swarm)
    wait_stopped(swarm, name)


def test_a_host_network_job_reaches_another_node_over_the_lln_with_jumbo_frames(swarm, mounted):
    source, target = swarm["lln"]
    swarm["client"].api.update_node(*_node_update(swarm, source["hostname"], {"lln": "source"}))
    name = f"lln-{RUN}"
    # 8972 bytes of payload + 28 of headers = 9000, and "do" forbids fragmenting it.
    done = submit(swarm, name, "--host-network", "--label", "lln=source", "--json",
                  command=f"ping -c 2 -W 2 -M do -s 8972 {target['lln']}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (task,) = json.loads(done.stdout)["task_states"]
    assert task["node"] == source["hostname"] and task["exit_code"] == 0
    # On the engine's bridge instead (MTU 1500) the same unfragmented jumbo ping cannot leave the task.
    bridged = submit(swarm, f"lln-bridged-{RUN}", "--label", "lln=source", "--json",
                     command=f"ping -c 1 -W 2 -M do -s 8972 {target['lln']}")
    assert bridged.returncode == 1, bridged.stdout[-2000:]
    assert json.loads(bridged.stdout)["state"] == "failed"


def _node_update(swarm, hostname: str, labels: dict) -> tuple:
    (node,) = [n for n in swarm["client"].api.nodes() if n["Description"]["Hostname"] == hostname]
    spec = dict(node["Spec"], Labels={**(node["Spec"].get("Labels") or {}), **labels})
    return node["ID"], node["Version"]["Index"], spec


def job_play(swarm, work: Path, spec: dict):
    """playbooks/job.yml on the control host, the cluster's credentials where the cluster role writes them."""
    local = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                             "ansible_python_interpreter": sys.executable}}}}
    return playbook(work, local, REPO / "playbooks" / "job.yml", {
        "container_infra_job_cluster": CLUSTER, "container_infra_cluster_inventory_root": str(swarm["work"]),
        "container_infra_job_registry_ca": swarm["registry_ca"], "container_infra_job": spec})


def test_the_playbook_submits_a_job_and_reports_each_task(swarm, mounted):
    work = swarm["work"] / "playbook"
    work.mkdir()
    done = job_play(swarm, work, {"name": f"play-{RUN}", "image": IMAGE, "command": "hostname", "tasks": 2})
    assert done.returncode == 0, failures(done)
    lines = [result["msg"] for play in done.report["plays"] for task in play["tasks"]
             if task["task"]["name"] == "Each task's exit code and where its log is"
             for result in task["hosts"]["localhost"]["results"]]
    assert len(lines) == 2 and all(": complete, exit code 0;" in line for line in lines), lines
    # Bad input through the playbook: one sentence, nothing submitted.
    again = job_play(swarm, work, {"name": f"play2-{RUN}", "image": IMAGE, "command": "true", "gpus_per_task": 4})
    assert again.returncode != 0
    assert "The job asks 4 GPU(s) per task" in json.dumps(again.report)
    assert f"play2-{RUN}" not in job_services(swarm)


def test_a_host_network_stack_deploys_once_and_a_second_run_changes_nothing(swarm, mounted):
    manager = swarm["nodes"][0]
    work = swarm["work"] / "stack"
    work.mkdir()
    (work / "play.yml").write_text(yaml.safe_dump([{
        "name": "A stack", "hosts": "masters", "gather_facts": False,
        "roles": [{"role": "container_infra_stack"}]}]))
    inventory = {"all": {"children": {"masters": {"hosts": {manager["name"]: {
        "ansible_host": manager["address"], "ansible_user": "core",
        "ansible_ssh_private_key_file": str(manager["key"]),
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"}}}}}}
    # json-file: the sandbox's nodes run no journald (the role's default driver).
    variables = {"container_infra_stack_name": f"st{RUN}", "container_infra_stack_logging": {"driver": "json-file"},
                 "container_infra_stack_definition": {"services": {"probe": {
                     "image": IMAGE, "command": ["sleep", "infinity"], "deploy": {"mode": "global"}}}}}
    first = playbook(work, inventory, work / "play.yml", variables)
    assert first.returncode == 0, failures(first)
    assert changed(first) > 0
    second = playbook(work, inventory, work / "play.yml", variables)
    assert second.returncode == 0, failures(second)
    assert changed(second) == 0
    (service,) = swarm["client"].api.services(filters={"name": f"st{RUN}_probe"})
    assert service["Spec"]["TaskTemplate"]["LogDriver"]["Name"] == "json-file"
    # The task on the manager (a global service): its container on the node's own network, logging as asked.
    inspect = (f"docker ps -q --filter label=com.docker.swarm.service.name=st{RUN}_probe | xargs -r docker inspect "
               "--format '{{.HostConfig.NetworkMode}} {{.HostConfig.LogConfig.Type}}'")
    wait_for(lambda: run(manager, inspect, check=False).stdout.split() == ["host", "json-file"],
             "the stack's task on the host network, logging to json-file", timeout=90)
