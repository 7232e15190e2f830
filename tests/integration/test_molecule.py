"""The Molecule scenario (molecule/default) against the sandbox: cleanup, syntax, converge,
idempotence, verify, cleanup. Run here so that it shares the test run's sandbox and workers."""

from __future__ import annotations

import os
import subprocess

from ansible_runner import BIN, REPO

from container_infra.sandbox import images, registry


def failure_report(output: str) -> str:
    """The first failed task's lines and the run's end: a long scenario's tail alone is its clean-up."""
    at = min((i for i in (output.find("fatal: ["), output.find("FAILED!"), output.find("failed: [")) if i >= 0),
             default=-1)
    first = output[max(0, at - 3000):at + 3000] if at >= 0 else ""
    return f"{first}\n...\n{output[-3000:]}"


def test_molecule_scenario_converges_idempotently_and_verifies(sandbox, tmp_path):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", ANSIBLE_NOCOLOR="1",
               MOLECULE_NO_COLOR="1", NO_COLOR="1", SHELL=os.environ.get("SHELL", "/bin/bash"),
               # Molecule's own state and ephemeral files stay out of the user's ~/.cache.
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([str(BIN / "molecule"), "test", "--scenario-name", "default"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, failure_report(output)
    # The idempotence step ran and found nothing to change.
    assert "idempotence" in output.lower(), output[-3000:]
    assert "The Swarm holds exactly the cluster" in output, output[-3000:]


def test_molecule_storage_scenario_mounts_a_share_on_two_nodes_idempotently(sandbox, tmp_path):
    """molecule/storage: a CephFS share the toolkit makes through Manila, mounted on two nodes of a cluster whose
    spec attaches the storage network, and the monitoring role on them (no orchestrator: plain containers);
    idempotence; a file written on one node read on the other; Prometheus's `up` and the share's file system."""
    # The monitoring images in the sandbox's registry (a no-op where they are there).
    images.build(["prometheus", "node-exporter"], print, registry.ca_path(sandbox))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", ANSIBLE_NOCOLOR="1",
               MOLECULE_NO_COLOR="1", NO_COLOR="1", SHELL=os.environ.get("SHELL", "/bin/bash"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([str(BIN / "molecule"), "test", "--scenario-name", "storage"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, failure_report(output)
    assert "idempotence" in output.lower(), output[-3000:]
    assert "The share is the same file system on every node" in output, output[-3000:]
    assert "Prometheus reports up == 1 for every node's exporter and engine" in output, output[-3000:]
