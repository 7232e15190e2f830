"""Test fixture code: many servers booted in one request and deleted again, for the integration tests
and benchmarks that need servers to attach ports to (plain openstacksdk; nothing sandbox-specific but
the zone they name)."""

from __future__ import annotations

import contextlib
import time

from openstack.exceptions import SDKException

from container_infra.cloud.rest import DETAIL_PAGE as PAGE


def servers_named(conn, prefix: str, attempts: int = 5) -> list:
    """The servers whose names start with ``prefix``. Once, under load, openstacksdk rejected such a
    listing, taken while the servers were being booted, as an "endless pagination loop" (a next page
    asked with the marker of the page before; the cause in Nova was not pinned down): the listing is
    taken again. With pages of 1,000 a prefix's listing is one page anyway."""
    for attempt in range(1, attempts + 1):
        try:
            return [s for s in conn.compute.servers(name=f"^{prefix}", limit=PAGE) if s.name.startswith(prefix)]
        except SDKException as exc:
            if "pagination" not in str(exc) or attempt == attempts:
                raise
            time.sleep(attempt)
    raise ValueError(f"attempts must be 1 or more, not {attempts}")


def boot_servers(conn, prefix: str, count: int, *, zone: str | None = None, metadata: dict | None = None,
                 image: str = "fedora-coreos-sandbox", flavor: str = "bm.standard", network: str = "private",
                 timeout: float = 900, retries: int = 4) -> list:
    """``count`` servers named ``prefix-N`` in ONE request (min_count = max_count), waited for until
    ACTIVE; a server that ends in ERROR (a host that could not place it) is booted again under its name,
    up to ``retries`` times. Returns them sorted by name."""
    image_id = conn.image.find_image(image, ignore_missing=False).id
    flavor_id = conn.compute.find_flavor(flavor, ignore_missing=False).id
    networks = [{"uuid": conn.network.find_network(network, ignore_missing=False).id}]
    extra = {"availability_zone": zone} if zone else {}
    conn.compute.create_server(name=prefix, image_id=image_id, flavor_id=flavor_id, networks=networks,
                               min_count=count, max_count=count, metadata=metadata or {}, **extra)
    deadline = time.monotonic() + timeout
    while True:
        servers = servers_named(conn, prefix)
        if len(servers) == count and all(s.status == "ACTIVE" for s in servers):
            return sorted(servers, key=lambda s: s.name)
        for broken in [s for s in servers if s.status == "ERROR"]:
            retries -= 1
            if retries <= 0:
                raise AssertionError(f"{broken.name} went to ERROR: {broken.fault}")
            conn.compute.delete_server(broken)
            conn.compute.wait_for_delete(broken, wait=120)
            conn.compute.create_server(name=broken.name, image_id=image_id, flavor_id=flavor_id, networks=networks,
                                       metadata=metadata or {}, **extra)
        if time.monotonic() > deadline:
            raise AssertionError(f"{prefix}: {count} servers not ACTIVE within {timeout:.0f} s")
        time.sleep(1)


def delete_servers(conn, prefix: str, *, timeout: float = 600) -> int:
    """Delete the servers whose names start with ``prefix``, wait until they are gone, then delete the
    ports named with the prefix that were left detached. Returns how many servers there were."""
    servers = servers_named(conn, prefix)
    for server in servers:
        conn.compute.delete_server(server)
    for server in servers:
        with contextlib.suppress(Exception):
            conn.compute.wait_for_delete(server, wait=timeout)
    for port in conn.network.ports():
        if port.name and port.name.startswith(prefix):
            with contextlib.suppress(Exception):
                conn.network.delete_port(port, ignore_missing=True)
    return len(servers)
