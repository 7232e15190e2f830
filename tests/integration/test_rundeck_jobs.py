"""The Rundeck jobs for create, resize and delete, run exactly as Rundeck's Ansible plugin runs them.

Each test builds, from the job definition in rundeck/jobs/ and a set of option values, the
``ansible-playbook`` argv, environment, working directory and extra-vars file that the plugin's playbook
workflow step builds (container_infra.rundeck), runs it against the sandbox, and checks the cluster
with the ``openstack`` CLI: created with the asked size, resized, gone. One cluster with the fewest
nodes (a Heat-era Kubernetes cluster, one master, one worker); the tests run in order and each needs
the ones before it. The resize passes a become password as from key storage: it must appear in
neither the command line, the environment nor the log.
"""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest
import yaml
from rundeck_runs import BIN, REPO, playbook_run, spec_inventory

NAME = f"rd-{uuid.uuid4().hex[:6]}"
SECRET = f"rd-become-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def inventory(sandbox, tmp_path_factory):
    work = tmp_path_factory.mktemp("rundeck")
    path = spec_inventory(work, NAME)
    yield path
    # Whatever happened, the cluster goes (test_delete_job asserts this; this is the safety net).
    subprocess.run([str(BIN / "ansible-playbook"), "-i", str(path), str(REPO / "playbooks" / "cluster_delete.yml")],
                   cwd=REPO, capture_output=True, text=True, timeout=900, check=False)


def written_hosts(inventory) -> dict[str, dict]:
    """The hosts of the cluster's inventory the playbooks wrote, with their variables."""
    data = yaml.safe_load((inventory.parent.parent / "inventories" / NAME / "hosts.yml").read_text())
    out: dict[str, dict] = {}
    for group in data["all"]["children"].values():
        for host, host_vars in (group.get("hosts") or {}).items():
            out.setdefault(host, {}).update(host_vars or {})
    return out


def run_job(stem: str, inventory, options: dict[str, str], become_password: str | None = None) -> str:
    """Run the job's command; its log (stdout and stderr, as Rundeck shows them), failing with it on rc != 0."""
    with playbook_run(stem, NAME, inventory, options, become_password) as run:
        assert run.extra_vars_file.stat().st_mode & 0o777 == 0o600
        done = run.run(timeout=1800)
        for text in (*run.argv, *run.env.keys(), *run.env.values(), done.stdout):
            assert not run.leaks(text), "a secure option's value is in the argv, the environment or the log"
    assert done.returncode == 0, f"{stem}: rc {done.returncode}\n{run.mask(done.stdout)[-6000:]}"
    return done.stdout


def test_create_job_makes_the_cluster_with_the_asked_size(inventory, osc):
    log = run_job("cluster_create", inventory, {"cluster": NAME, "poll_interval": "3"})
    # The wait's progress lines (callback container_infra_progress) are in the log Rundeck shows.
    assert re.search(rf"\[localhost\] cluster {NAME}: \w+ - .*nodes ACTIVE", log), log[-3000:]
    cluster = osc.json("coe", "cluster", "show", NAME)
    assert cluster["status"] == "CREATE_COMPLETE", cluster
    assert (cluster["master_count"], cluster["node_count"]) == (1, 1), cluster
    roles = sorted(v["container_infra_role"] for v in written_hosts(inventory).values())
    assert roles == ["master", "worker"], roles


def test_resize_job_grows_it_and_keeps_the_secret_out_of_sight(inventory, osc):
    run_job("cluster_resize", inventory, {"cluster": NAME, "node_count": "2", "poll_interval": "3"},
            become_password=SECRET)
    cluster = osc.json("coe", "cluster", "show", NAME)
    assert cluster["status"] == "UPDATE_COMPLETE", cluster
    assert cluster["node_count"] == 2, cluster
    roles = sorted(v["container_infra_role"] for v in written_hosts(inventory).values())
    assert roles == ["master", "worker", "worker"], roles


def test_delete_job_removes_it(inventory, osc):
    run_job("cluster_delete", inventory, {"cluster": NAME, "poll_interval": "3"})
    # A show, not the listing: in a full run Magnum answered a listing with 400 while clusters were being deleted.
    assert "could not be found" in osc.run("coe", "cluster", "show", NAME, check=False).stderr
    assert not (inventory.parent.parent / "inventories" / NAME).exists()
