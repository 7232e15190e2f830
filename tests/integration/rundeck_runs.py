"""The project's Rundeck jobs as Rundeck's Ansible plugin runs them, against a one-cluster spec of the sandbox.

Shared by tests/integration/test_rundeck_jobs.py (runs them) and tests/unit/test_rundeck.py (checks the
same command lines with ``ansible-playbook --syntax-check``, no cloud needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from container_infra import rundeck

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
BECOME_KEY = "keys/project/container-infra/become-password"


def small_cluster(name: str) -> dict:
    """The fewest nodes a cluster has: a Heat-era Kubernetes cluster, one master, one worker, no extras."""
    return {
        "name": name,
        "template": {
            "name": f"{name}-t1", "coe": "kubernetes", "image": "fedora-coreos-sandbox",
            "external_network": "public", "fixed_network": "private", "fixed_subnet": "private-subnet",
            "flavor": "bm.standard", "master_flavor": "bm.standard", "server_type": "bm",
            "floating_ip_enabled": True, "master_lb_enabled": False,
        },
        "master_count": 1,
        "node_count": 1,
        "host_vars": {"ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no"},
    }


def spec_inventory(work: Path, name: str) -> Path:
    """An operator's inventory for one cluster (localhost.yml and the spec in group_vars), as the
    project's ``container_infra_inventory`` global names one; its written inventories stay in ``work``."""
    inventory = work / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (inventory / "localhost.yml").write_text((REPO / "inventories" / "sandbox" / "localhost.yml").read_text())
    (inventory / "group_vars" / "all" / "clusters.yml").write_text(yaml.safe_dump({
        "container_infra_cluster_cloud": "sandbox",
        "container_infra_cluster_ssh_key_file": str(work / "ssh" / "id_ed25519"),
        "container_infra_cluster_inventory_root": str(work / "inventories"),
        "container_infra_clusters": [small_cluster(name)],
    }, sort_keys=False))
    return inventory / "localhost.yml"


def project_globals(inventory: Path) -> dict[str, str]:
    """The project's globals with this checkout, its virtual environment and the given spec inventory."""
    return {
        **rundeck.project_globals(),
        "container_infra_dir": str(REPO),
        "container_infra_bin": str(BIN),
        "container_infra_inventory": str(inventory),
    }


def job(stem: str, cluster: str) -> rundeck.Job:
    """The project's job of ``rundeck/jobs/<stem>.yaml``, its cluster choices those of the test's spec
    (what an operator does for their own spec)."""
    (found,) = rundeck.load_jobs(rundeck.PROJECT_DIR / "jobs" / f"{stem}.yaml")
    return found.with_choices("cluster", [cluster]) if any(o.name == "cluster" for o in found.options) else found


def playbook_run(stem: str, cluster: str, inventory: Path, options: dict[str, str],
                 become_password: str | None = None) -> rundeck.PlaybookRun:
    """The command the plugin builds for the job, with the become password as key storage holds it."""
    storage = {BECOME_KEY: become_password} if become_password is not None else None
    return rundeck.playbook_run(job(stem, cluster), options, globals_=project_globals(inventory),
                                key_storage=storage, environ={**os.environ, "ANSIBLE_NOCOLOR": "1"},
                                job_context={"execid": "1", "username": "pytest"})
