"""What the integration tests share to reach clusters and nodes: ssh options and a status wait."""

from __future__ import annotations

import re
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
