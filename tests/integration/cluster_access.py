"""What the integration tests share to reach clusters and nodes: ssh, a wait for it, a status wait."""

from __future__ import annotations

import re
import subprocess
import time

import yaml

# Nodes are short-lived and floating IPs come back: no host keys kept, no prompts, a quick give-up.
SSH_OPTIONS = [
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
]



def ssh(address: str, key, command: str, user: str = "core", check: bool = True) -> subprocess.CompletedProcess:
    """One command on a node; with ``check`` a failure is an assertion naming the command and ssh's stderr."""
    result = subprocess.run(["ssh", *SSH_OPTIONS, "-i", str(key), f"{user}@{address}", command],
                            capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, f"ssh {user}@{address} {command!r}: {result.stderr}"
    return result


def wait_ssh(address: str, key, timeout: float = 30, interval: float = 1) -> None:
    """Until the node answers over SSH (a new node boots; the forwarder picks a new floating IP up within a
    second or two)."""
    deadline = time.monotonic() + timeout
    while ssh(address, key, "true", check=False).returncode != 0:
        assert time.monotonic() < deadline, f"no SSH to {address} within {timeout} s"
        time.sleep(interval)


FINAL = re.compile(r"_(COMPLETE|FAILED)$")


def wait_status(osc, cluster: str, timeout: float = 300, phase: str = "") -> dict:
    """Poll `coe cluster show` until the status is final (and of ``phase``, e.g. "UPDATE_", so that an
    update is not taken as done before Magnum has started it), riding over Magnum's early 400s."""
    deadline = time.monotonic() + timeout
    delay = 1.0
    while True:
        result = osc.run("coe", "cluster", "show", cluster, "-f", "yaml", check=False)
        if result.returncode == 0:
            shown = yaml.safe_load(result.stdout)
            if FINAL.search(shown["status"]) and shown["status"].startswith(phase):
                return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"cluster {cluster} still not final after {timeout} s: {result.stdout[-500:]}")
        time.sleep(delay)
        delay = min(delay * 1.5, 5)
