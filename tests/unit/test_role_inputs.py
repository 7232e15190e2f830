"""The cluster role refuses, before it makes anything, a spec it cannot carry out (no cloud needed:
the refusal comes before the role's first cloud call)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"


def run_role(tmp_path: Path, spec: dict) -> subprocess.CompletedProcess:
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {"name": "container_infra_cluster"},
                   "vars": {"container_infra_cluster_cloud": "no-such-cloud",
                            "container_infra_cluster_spec": spec,
                            "container_infra_cluster_inventory_dir": str(tmp_path / "inv"),
                            "container_infra_cluster_ssh_key_file": str(tmp_path / "key")}}],
    }]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={BIN / 'python'}", str(playbook)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def failures(done: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    report = json.loads(done.stdout[done.stdout.index("{"):])
    return [(task["task"]["name"], result.get("msg", "")) for play in report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]


CHECK = "Provider networks of a Swarm without Magnum go to every node"
SWARM = {"name": "hs-test", "driver": "heat-swarm", "image": "img", "flavor": "bm.standard",
         "fixed_network": "private", "node_count": 1}


@pytest.mark.parametrize(("networks", "named"), [
    ([{"network": "hte"}, {"network": "lln", "roles": ["worker"]}], "lln"),
    ([{"network": "hte", "nodegroups": ["gpu"]}, {"network": "lln"}], "hte"),
])
def test_heat_swarm_refuses_network_placement_before_making_anything(tmp_path, networks, named):
    done = run_role(tmp_path, SWARM | {"networks": networks})
    assert done.returncode != 0
    (task, message), = failures(done)
    assert task == f"container_infra_cluster : {CHECK}"
    assert f"cluster hs-test: a Swarm without Magnum attaches every provider network to every node at boot, " \
           f"so network(s) {named} cannot be limited" in message
    assert not (tmp_path / "key").exists() and not (tmp_path / "inv").exists()


def test_heat_swarm_takes_networks_for_every_role(tmp_path):
    done = run_role(tmp_path, SWARM | {"networks": [{"network": "hte"}, {"network": "lln",
                                                                          "roles": ["master", "worker"]}]})
    # Past the check: the run goes on to its first cloud call, for a cloud that does not exist here.
    (task, message), = failures(done)
    assert task != f"container_infra_cluster : {CHECK}" and "no-such-cloud was not found" in message
