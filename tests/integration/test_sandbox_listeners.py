"""Every socket the running sandbox listens on is on loopback or on an address of its own bridges."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path

from container_infra.sandbox.layout import CEPH_MON_PORTS, PACKAGES_PORT, REGISTRY_PORT, STORAGE_SERVICE_ADDRESS
from container_infra.sandbox.supervisor import sandbox_pids

PIDS = re.compile(r"pid=(\d+)")
STORAGE_DAEMONS = {"ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "docker-registry"}


def listeners() -> list[tuple[str, int, set[int]]]:
    """(address, port, pids) of every TCP and UDP socket this machine's network namespace listens on."""
    out = subprocess.run(["ss", "-H", "-l", "-n", "-p", "-t", "-u"], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[4]
        address, _, port = local.rpartition(":")
        address = address.strip("[]").split("%")[0]
        found.append((address, int(port), {int(pid) for pid in PIDS.findall(line)}))
    return found


def sandbox_bridge_addresses() -> set[str]:
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines() if line.split()[1].startswith("sbx-")}


def allowed(address: str, own: set[str]) -> bool:
    if address in ("*", "0.0.0.0", "::"):  # noqa: S104 (the wildcards are what this refuses)
        return False
    return ipaddress.ip_address(address).is_loopback or address in own


def test_every_listener_of_the_sandbox_is_on_loopback_or_its_own_bridges(sandbox):
    pids = set(sandbox_pids(sandbox))
    assert pids, "no process of the sandbox found"
    own = sandbox_bridge_addresses()
    assert own == {STORAGE_SERVICE_ADDRESS}
    ours = [(address, port, owners) for address, port, owners in listeners() if owners & pids]
    wrong = [(address, port) for address, port, _ in ours if not allowed(address, own)]
    assert not wrong, f"the sandbox listens beyond loopback and its bridges: {wrong}"
    # The storage services (and the GPU package repository) are among them, on the storage network's address only.
    assert {(STORAGE_SERVICE_ADDRESS, port) for port in (*CEPH_MON_PORTS, REGISTRY_PORT, PACKAGES_PORT)} <= \
        {(address, port) for address, port, _ in ours}
    storage = [(address, port) for address, port, owners in ours if {command(pid) for pid in owners} & STORAGE_DAEMONS]
    assert len(storage) >= 4 and {address for address, _ in storage} == {STORAGE_SERVICE_ADDRESS}, storage


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_the_check_itself_catches_a_wildcard_listener():
    assert not allowed("0.0.0.0", {STORAGE_SERVICE_ADDRESS})  # noqa: S104
    assert not allowed("::", set())
    assert not allowed("10.0.0.5", {STORAGE_SERVICE_ADDRESS})
    assert allowed("127.0.0.1", set()) and allowed("::1", set()) and allowed(STORAGE_SERVICE_ADDRESS,
                                                                              {STORAGE_SERVICE_ADDRESS})
