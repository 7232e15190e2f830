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

# Waits poll Magnum in this process: one `openstack` command costs about 2 s of CPU (its start-up and
# authentication), and the polls of a full run's waits added up to minutes of a two-core machine's time.
_MAGNUM: dict[str, object] = {}


def _magnum(cloud: str):
    if cloud not in _MAGNUM:
        from container_infra.cloud import Cloud

        _MAGNUM[cloud] = Cloud.from_params({"cloud": cloud}).magnum()
    return _MAGNUM[cloud]


def cluster_status(cloud: str, cluster: str) -> str | None:
    """The cluster's status; "" while Magnum cannot answer for it (early in a create it answers 400, and a
    busy shared cloud sometimes 500); None once Magnum says it could not be found."""
    from keystoneauth1 import exceptions as transport
    from magnumclient import exceptions

    try:
        return _magnum(cloud).clusters.get(cluster).status
    except exceptions.NotFound:
        return None
    except (exceptions.ClientException, transport.ClientException):
        return ""


def wait_status(osc, cluster: str, timeout: float = 300, phase: str = "") -> dict:
    """Until the status is final, riding over Magnum's early 400s; then what `coe cluster show` says (itself final).

    With ``phase`` (e.g. "UPDATE_", after a resize) the change must have been seen under way (<phase>IN_PROGRESS)
    first: Magnum's API takes a resize before its conductor starts it, so for a moment the cluster still shows the
    last change's UPDATE_COMPLETE, which is not this change's end."""
    deadline = time.monotonic() + timeout
    delay = 1.0
    under_way, first = not phase, None
    while True:
        status = cluster_status(osc.cloud, cluster)
        first = first or status
        # Seen under way, or a status other than the one found first (a change that failed before any look).
        under_way = under_way or status == f"{phase}IN_PROGRESS" or bool(status and first and status != first)
        if under_way and status and FINAL.search(status) and status.startswith(phase):
            shown = yaml.safe_load(osc.run("coe", "cluster", "show", cluster, "-f", "yaml").stdout)
            if FINAL.search(shown["status"]) and shown["status"].startswith(phase):
                return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"cluster {cluster} still not final after {timeout} s: {status!r}")
        time.sleep(delay)
        delay = min(delay * 1.5, 5)


def wait_cluster_gone(osc, *clusters: str, timeout: float = 300) -> None:
    """Until Magnum says each cluster could not be found (one look per cluster, never the listing: in a full
    run Magnum answered the listing with 400 while clusters were being deleted)."""
    deadline = time.monotonic() + timeout
    while left := [cluster for cluster in clusters if cluster_status(osc.cloud, cluster) is not None]:
        assert time.monotonic() < deadline, f"clusters {left} still there {timeout} s after their delete"
        time.sleep(3)


_COMPUTE: dict[str, object] = {}


def server_status(cloud: str, server: str) -> tuple[str, dict]:
    """A server's status (by name or ID) and its fault, looked up in this process (as the Magnum waits)."""
    import openstack

    if cloud not in _COMPUTE:
        _COMPUTE[cloud] = openstack.connect(cloud=cloud).compute
    found = _COMPUTE[cloud].find_server(server, ignore_missing=False)
    return found.status, found.fault or {}


def wait_server_status(osc, server: str, status: str, timeout: float = 180) -> None:
    """Until the server has ``status``; a server in ERROR fails at once, with Nova's fault."""
    deadline = time.monotonic() + timeout
    while (now := server_status(osc.cloud, server))[0] != status:
        assert now[0] != "ERROR", f"server {server} failed: {now[1]}"
        assert time.monotonic() < deadline, f"server {server} is {now[0]}, not {status}, after {timeout} s"
        time.sleep(1)
