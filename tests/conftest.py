"""Shared fixtures: the sandbox cloud, brought up once per test run, and ways to talk to it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
from ansible_runner import BIN

# Parallel workers: make test runs pytest-xdist with --dist loadfile, so each file's tests (and its
# module fixtures) stay in one worker. (Grouping several files with xdist_group marks and --dist
# loadgroup was tried; this pytest-xdist split the groups' tests across workers all the same.)


@pytest.fixture(autouse=True)
def _openstacksdk_config_files(monkeypatch):
    """openstacksdk's loader inserts $OS_CLIENT_CONFIG_FILE into its module-level CONFIG_FILES list for
    good: a test that points it at a clouds.yaml of its own would hide the sandbox's from every later test
    of the same worker ("Cloud sandbox was not found"). Each test gets a copy, restored after it."""
    from openstack.config import loader

    monkeypatch.setattr(loader, "CONFIG_FILES", list(loader.CONFIG_FILES))


def pytest_itemcollected(item):
    """Everything under tests/integration needs the sandbox."""
    if "/integration/" in str(item.fspath):
        item.add_marker(pytest.mark.sandbox)


# Each integration file's wall time in a full `make test` on this 2-core machine (seconds, setup and teardown
# included, read from `--durations`), rounded. The workers take whole files in collection order (`--dist
# loadfile --no-loadscope-reorder`, Makefile): longest first, so that the short files fill the end of the run
# instead of a long file starting last on one worker while the other has nothing left to do. A file missing
# here runs after these, in its collection order.
INTEGRATION_FILE_SECONDS = {
    "test_module_container_infra.py": 600,
    "test_jobs_swarm.py": 600,
    "test_gluster_hyperconverged.py": 570,
    "test_molecule.py": 470,
    "test_storage_roles.py": 450,
    "test_magnum.py": 400,
    "test_playbooks.py": 350,
    "test_docker_nodes.py": 280,
    "test_storage.py": 250,
    "test_openstack_cli.py": 200,
    "test_monitoring_swarm.py": 200,
    "test_gpu_swarm.py": 180,
    "test_rundeck_jobs.py": 180,
    "test_swarm.py": 150,
    "test_faults.py": 150,
    "test_module_server_interface.py": 120,
    "test_module_stack_facts.py": 100,
    "test_module_manila_share.py": 100,
    "test_python_clients.py": 40,
    "test_module_inventory.py": 40,
    "test_ssh_key.py": 30,
}


def pytest_collection_modifyitems(items):
    """Longest integration files first (a stable sort: each file's tests keep their order)."""
    items.sort(key=lambda item: -INTEGRATION_FILE_SECONDS.get(item.path.name, 0))


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox cloud, up (``up`` is idempotent: a running sandbox costs a few seconds)."""
    from container_infra.sandbox import manager
    from container_infra.sandbox.layout import Layout

    layout = Layout.default()
    manager.up(layout, lambda message: print(f"sandbox: {message}"))
    return layout


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """This machine's Docker engine, started as `sandbox up` starts it where none answers: a test
    that drives a local engine (check mode included) must not rely on the sandbox having run first."""
    from container_infra.sandbox import nodeimage
    from container_infra.sandbox.layout import Layout

    nodeimage.ensure_dockerd(Layout.default().log, lambda message: print(f"docker: {message}"))


@pytest.fixture
def unique_name(request) -> str:
    """A name no other test uses, so tests share one cloud without meeting."""
    stem = "".join(ch for ch in request.node.name.lower() if ch.isalnum())[:20]
    return f"t{stem}-{uuid.uuid4().hex[:6]}"


class OpenStackCLI:
    """The official `openstack` command, unchanged, as a user runs it."""

    def __init__(self, cloud: str):
        self.cloud = cloud
        self.binary = shutil.which("openstack", path=str(BIN)) or "openstack"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [self.binary, "--os-cloud", self.cloud, *args],
            capture_output=True,
            text=True,
            timeout=300,
            # `coe cluster config` reads $SHELL to pick the env script's syntax; CI runs without one.
            env={"SHELL": "/bin/bash", **os.environ},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result

    def json(self, *args: str):
        """Parse a command's JSON output; some commands print a sentence first ("Request ... accepted")."""
        out = self.run(*args, "-f", "json").stdout
        lines = out.splitlines()
        start = next((i for i, line in enumerate(lines) if line[:1] in "{["), None)
        return json.loads("\n".join(lines[start:])) if start is not None else None


@pytest.fixture(scope="session")
def osc(sandbox) -> OpenStackCLI:
    return OpenStackCLI("sandbox")


@pytest.fixture(scope="session")
def osc_admin(sandbox) -> OpenStackCLI:
    return OpenStackCLI("sandbox-admin")


@pytest.fixture(scope="session")
def conn(sandbox):
    import openstack

    return openstack.connect(cloud="sandbox")


@pytest.fixture(scope="session")
def admin_conn(sandbox):
    import openstack

    return openstack.connect(cloud="sandbox-admin")


@pytest.fixture(scope="module")
def ssh_keypair(osc, tmp_path_factory):
    """A Nova keypair and its private key file, for one test module's nodes: (name, path)."""
    path = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    name = f"test-key-{uuid.uuid4().hex[:8]}"
    osc.run("keypair", "create", "--public-key", f"{path}.pub", name)
    yield name, path
    osc.run("keypair", "delete", name, check=False)
