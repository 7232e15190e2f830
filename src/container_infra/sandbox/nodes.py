"""The sandbox's Docker-backed nodes seen from the CLI: availability zones, and cleaning up after them.

Two compute hosts: ``sandbox-docker-1`` (servers are containers of the node image, reachable over
SSH) and ``sandbox-compute-1`` (Nova's fake driver, for scale tests). Each is chosen by its
availability zone, set through a host aggregate as an operator would:

* ``DOCKER_ZONE``: the zone of the Docker host;
* ``FAKE_ZONE``: the zone of the fake host;
* ``DEFAULT_ZONE``: the zone servers that name none are given (``default_schedule_zone``).

``down`` and ``reset`` call :func:`cleanup`, which removes every node container, the host ends of
their veths, the bridges (one per Neutron network) and the iptables rule that lets bridged frames
through; the Docker engine itself keeps running (it is the machine's).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence

from container_infra.sandbox.configs import DOCKER_COMPUTE_HOST, FAKE_COMPUTE_HOST

DOCKER_ZONE = "docker"
FAKE_ZONE = "scale"
# Where servers that name no zone go: Nova 34 filters by zone only through the aggregates of the
# zone a request carries, so nova.conf's default_schedule_zone gives zone-less requests this one.
# The fake host (fast; what scale tests use). Magnum clusters' servers name DOCKER_ZONE themselves:
# the sandbox's Magnum drivers default to it (container_infra_sandbox.magnum.common.DEFAULT_ZONE),
# and a cluster's label availability_zone overrides it.
DEFAULT_ZONE = FAKE_ZONE

AGGREGATES = {
    # aggregate name -> (host, zone attribute)
    "sandbox-docker": (DOCKER_COMPUTE_HOST, "DOCKER_ZONE"),
    "sandbox-scale": (FAKE_COMPUTE_HOST, "FAKE_ZONE"),
}

NODE_LABEL = "org.container-infra.sandbox.instance"
LINK_PREFIX = "sbx-"
IPTABLES_RULE = ["FORWARD", "-i", f"{LINK_PREFIX}b+", "-o", f"{LINK_PREFIX}b+", "-j", "ACCEPT"]

Report = Callable[[str], None]
Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


def _run(args: Sequence[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(args), capture_output=True, text=True, check=False)
    except FileNotFoundError:  # no docker or iptables on this machine: nothing of ours to clean
        return subprocess.CompletedProcess(list(args), 127, "", f"{args[0]}: not found")


def zones() -> dict[str, tuple[str, str | None]]:
    """aggregate -> (host, zone) as configured now."""
    return {name: (host, globals()[attr]) for name, (host, attr) in AGGREGATES.items()}


def ensure_zones(conn, report: Report, timeout: float = 60) -> None:
    """Put each compute host into its zone's aggregate (once its service has registered)."""
    compute = conn.compute
    deadline = time.monotonic() + timeout
    existing = {aggregate.name: aggregate for aggregate in compute.aggregates()}
    for name, (host, zone) in zones().items():
        aggregate = existing.get(name)
        if zone is None:
            if aggregate is not None and host in (aggregate.hosts or []):
                compute.remove_host_from_aggregate(aggregate, host)
            continue
        while not list(compute.services(host=host, binary="nova-compute")):
            if time.monotonic() > deadline:
                report(f"compute host {host} has not registered; it is not in zone {zone} yet "
                       f"(see `container-infra sandbox logs nova-compute-docker`)")
                break
            time.sleep(1)
        else:
            if aggregate is None:
                aggregate = compute.create_aggregate(name=name, availability_zone=zone)
            elif aggregate.availability_zone != zone:
                aggregate = compute.update_aggregate(aggregate, availability_zone=zone)
            if host not in (aggregate.hosts or []):
                try:
                    compute.add_host_to_aggregate(aggregate, host)
                except Exception as error:  # Nova refuses a zone change for a host that has servers
                    raise RuntimeError(
                        f"compute host {host} cannot join availability zone {zone}: {error}; this sandbox's "
                        "servers predate its zones, so delete them or run `container-infra sandbox reset`"
                    ) from error
                report(f"compute host {host} is in availability zone {zone}")


def node_containers(run: Runner = _run) -> list[str]:
    result = run(["docker", "ps", "-aq", "--filter", f"label={NODE_LABEL}"])
    return result.stdout.split() if result.returncode == 0 else []


def sandbox_links(run: Runner = _run) -> list[str]:
    """The host's interfaces the sandbox made: bridges first, then veth ends."""
    result = run(["ip", "-o", "link", "show"])
    names = []
    for line in result.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(LINK_PREFIX):
                names.append(name)
    return sorted(names, key=lambda name: (not name.startswith(f"{LINK_PREFIX}b"), name))


def cleanup(run: Runner = _run) -> dict[str, list[str]]:
    """Remove node containers, the sandbox's links and its iptables rule; returns what was removed."""
    removed: dict[str, list[str]] = {"containers": [], "links": []}
    containers = node_containers(run)
    if containers:
        run(["docker", "rm", "--force", "--volumes", *containers])
        removed["containers"] = containers
    for name in sandbox_links(run):
        if run(["ip", "link", "del", name]).returncode == 0:
            removed["links"].append(name)
    while run(["iptables", "-D", *IPTABLES_RULE]).returncode == 0:
        pass
    return removed


def reconcile_containers(conn, report: Report, run: Runner = _run) -> list[str]:
    """Remove node containers whose server Nova no longer has (deleted while nova-compute was down).

    The other half (a server whose container is gone) is nova-compute's: at start it rebuilds such
    a server's node, and its power-state sync marks a node that died as SHUTOFF.
    """
    result = run(["docker", "ps", "-a", "--filter", f"label={NODE_LABEL}",
                  "--format", f'{{{{.ID}}}} {{{{.Label "{NODE_LABEL}"}}}}'])
    if result.returncode != 0:
        return []
    containers = dict(line.split() for line in result.stdout.splitlines() if len(line.split()) == 2)
    if not containers:
        return []
    known = {server.id for server in conn.compute.servers(all_projects=True, compute_host=DOCKER_COMPUTE_HOST)}
    orphans = [container for container, server in containers.items() if server not in known]
    if orphans:
        run(["docker", "rm", "--force", "--volumes", *orphans])
        report(f"removed {len(orphans)} node container(s) whose server is gone")
    return orphans
