"""BeeGFS (not runnable here: no packages, no kernel module): the client configuration each version reads,
the files' modes, the spec's refusals, and the role's BeeGFS tasks in check mode (nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from container_infra import beegfs, storage

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"


def entry(version: str, **more) -> dict:
    spec = {"version": version, "mgmtd_host": "mgmt01", "auth_file": "/secrets/beegfs.auth",
            "interfaces": ["ib0", "eth1"], "rdma": True, "rdma_interfaces": ["ib0"]}
    return {"name": "work", "kind": "beegfs", "path": "/mnt/beegfs", "beegfs": spec | more}


def conf(text: str) -> dict[str, str]:
    return {key.strip(): value.strip() for key, _, value in
            (line.partition("=") for line in text.splitlines() if line and not line.startswith("#"))}


def test_version_7_4_client_talks_to_helperd_and_sets_ports_per_transport():
    keys = conf(beegfs.client_conf(entry("7.4")))
    assert keys == {
        "sysMgmtdHost": "mgmt01", "connMgmtdPortUDP": "8008", "connMgmtdPortTCP": "8008",
        "connClientPortUDP": "8004", "connHelperdPortTCP": "8006", "logType": "helperd",
        "connAuthFile": "/etc/beegfs/connauthfile", "connDisableAuthentication": "false",
        "connInterfacesFile": "/etc/beegfs/beegfs-client-work.interfaces", "connUseRDMA": "true",
        "connRDMAInterfacesFile": "/etc/beegfs/beegfs-client-work.rdma-interfaces"}
    helperd = conf(beegfs.helperd_conf(entry("7.4")))
    assert helperd == {"connHelperdPortTCP": "8006", "connAuthFile": "/etc/beegfs/connauthfile",
                       "connDisableAuthentication": "false"}
    assert beegfs.packages([entry("7.4")]) == ["beegfs-client-dkms", "beegfs-helperd", "beegfs-utils"]
    assert beegfs.services([entry("7.4")]) == ["beegfs-helperd", "beegfs-client"]


def test_version_8_has_no_helperd_one_mgmtd_port_and_the_default_auth_path():
    keys = conf(beegfs.client_conf(entry("8")))
    assert keys["connMgmtdPort"] == "8008" and keys["connAuthFile"] == "/etc/beegfs/conn.auth"
    assert not {"connMgmtdPortUDP", "connMgmtdPortTCP", "connHelperdPortTCP", "logType"} & set(keys)
    assert keys["connUseRDMA"] == "true" and keys["connInterfacesFile"].endswith(".interfaces")
    paths = [f["path"] for f in beegfs.node_files([entry("8")])]
    assert "/etc/beegfs/beegfs-helperd.conf" not in paths
    assert beegfs.packages([entry("8")]) == ["beegfs-client-dkms", "beegfs-tools"]
    assert beegfs.services([entry("8")]) == ["beegfs-client"]


def test_without_authentication_and_rdma_the_keys_say_so():
    keys = conf(beegfs.client_conf(entry("8", auth=False, rdma=False, rdma_interfaces=None, interfaces=None)))
    assert keys["connAuthFile"] == "" and keys["connDisableAuthentication"] == "true"
    assert keys["connUseRDMA"] == "false" and keys["connInterfacesFile"] == ""
    assert keys["connRDMAInterfacesFile"] == ""


def test_node_files_are_the_configs_interfaces_and_one_mounts_file():
    files = {f["path"]: f for f in beegfs.node_files([entry("7.4"), entry("7.4") | {"name": "b", "path": "/mnt/b"}])}
    assert files["/etc/beegfs/beegfs-client-work.interfaces"]["content"] == "ib0\neth1\n"
    assert files["/etc/beegfs/beegfs-client-work.rdma-interfaces"]["content"] == "ib0\n"
    assert files["/etc/beegfs/beegfs-mounts.conf"]["content"].splitlines()[1:] == [
        "/mnt/beegfs /etc/beegfs/beegfs-client-work.conf", "/mnt/b /etc/beegfs/beegfs-client-b.conf"]
    assert all(f["mode"] == "0644" for f in files.values())
    assert not any("auth" in path for path in files)


@pytest.mark.parametrize(("change", "words"), [
    ({"version": "9"}, "BeeGFS version '9' is not one this role knows (7.4, 8); set beegfs.version to 7.4 or 8."),
    ({"version": "7.3"}, "BeeGFS version '7.3' is not one this role knows"),
    ({"auth_file": None}, "beegfs.auth_file is missing; name the file on the control host"),
    ({"rdma": False}, "beegfs.rdma_interfaces is given but beegfs.rdma is off"),
])
def test_bad_beegfs_input_is_one_sentence(change, words):
    spec = entry("8")
    spec["beegfs"] = spec["beegfs"] | change
    (error,) = storage.check_spec([spec], "c1")
    assert words in error and error.count(". ") == 0


def test_the_roles_beegfs_tasks_in_check_mode_change_nothing(tmp_path):
    secret = tmp_path / "auth"
    secret.write_text("canary-beegfs-secret\n")
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"container_infra_storage_filesystems": [entry("8", auth_file=str(secret))],
                 "container_infra_storage_cluster": "c1", "container_infra_storage_beegfs_packages": False,
                 "ansible_become": False},
        "roles": [{"role": "container_infra_storage"}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "--check", "-vvvv",
                           "-e", f"ansible_python_interpreter={BIN / 'python'}", str(play)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert "canary-beegfs-secret" not in done.stdout + done.stderr
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert done.returncode == 0, done.stdout[-3000:]
    tasks = {task["task"]["name"]: task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]}
    files = tasks["container_infra_storage : BeeGFS client configuration, interfaces and mounts files"]
    assert files["changed"] and {r["item"]["path"] for r in files["results"]} == {
        "/etc/beegfs/beegfs-client-work.conf", "/etc/beegfs/beegfs-client-work.interfaces",
        "/etc/beegfs/beegfs-client-work.rdma-interfaces", "/etc/beegfs/beegfs-mounts.conf"}
    assert tasks["container_infra_storage : BeeGFS authentication file (0400, root)"]["changed"]
    directory = tasks["container_infra_storage : BeeGFS configuration directory"]
    assert directory["changed"] and [r["item"] for r in directory["results"]] == ["/etc/beegfs"]
    assert not Path("/etc/beegfs/beegfs-client-work.conf").exists()
