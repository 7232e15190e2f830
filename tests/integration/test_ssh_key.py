"""The cluster role's SSH key step against the sandbox: a keypair another checkout made from its own key
is explained in one sentence (issue 15, finding 4), and the keypair's own key passes."""

from __future__ import annotations

import subprocess

import yaml
from ansible_runner import BIN, REPO, report_of, run

SSH_KEY = REPO / "roles" / "container_infra_cluster" / "tasks" / "ssh_key.yml"


def ssh_key_step(tmp_path, keypair: str, key_file):
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_tasks": str(SSH_KEY), "vars": {
            "container_infra_cluster_cloud": "sandbox",
            "container_infra_cluster_spec": {"name": "never-made", "keypair": keypair},
            "container_infra_cluster_ssh_key_file": str(key_file)}}]}]))
    done = run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                "-e", f"ansible_python_interpreter={BIN / 'python'}", str(playbook)], timeout=300)
    failed = [(task["task"]["name"], result.get("msg", "")) for play in report_of(done.stdout)["plays"]
              for task in play["tasks"] for result in task["hosts"].values() if result.get("failed")]
    return done, failed


def fingerprint_of(path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1].removeprefix("MD5:")


def test_a_keypair_made_from_another_key_is_explained(tmp_path, ssh_keypair, osc):
    name, theirs = ssh_keypair
    ours = tmp_path / "second-checkout" / "id_ed25519"   # made by the step, as in a fresh checkout
    done, failed = ssh_key_step(tmp_path, name, ours)
    assert done.returncode != 0
    (task, message), = failed
    assert task == "Check the keypair holds this key", task
    assert message == (
        f"keypair {name} in the cloud holds another key (fingerprint {fingerprint_of(theirs)}) than {ours} "
        f"(fingerprint {fingerprint_of(ours)}); point container_infra_cluster_ssh_key_file at the key the "
        "cluster was built with, or give new clusters a new keypair name (the spec's keypair)"), message
    # Nothing changed in the cloud: the keypair still holds its own key.
    assert osc.json("keypair", "show", name)["fingerprint"] == fingerprint_of(theirs)

    done, failed = ssh_key_step(tmp_path, name, theirs)   # the key the keypair was made from
    assert done.returncode == 0 and not failed, failed
