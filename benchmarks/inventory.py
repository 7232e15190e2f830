"""The inventory's cost: API calls that do not grow with the nodes, and time, for a large cluster.

    .venv/bin/python benchmarks/inventory.py [--servers 100] [--small 10] [--latency-ms 100] [--synthetic 1000]
                                             [--no-cloud]

1. Cloud part: boots --servers servers (and, apart, --small) on the fake host (zone "scale") in one
   request per cluster, named as a Cluster-API-era cluster's nodes (``<stack_id>-control-plane-N``,
   ``<stack_id>-default-worker-N``), then reads each "cluster" as the module does (one server listing,
   one port, network, subnet and image listing) and prints the API calls and seconds, with no added
   latency and with --latency-ms added to each of this client's own requests (so neighbours sharing
   the sandbox are not slowed). The clusters are synthetic (no Magnum cluster owns these servers), so
   Magnum's two requests (the cluster and its nodegroups) are counted apart: the calls printed are
   the listings plus those two.
2. CPU part: builds and renders the inventory of --synthetic nodes from recorded-shape listings (no
   cloud), and counts the listings collect() asks for with as many nodes.
3. Deletes the servers.

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import requests.adapters

from container_infra import discovery, inventory
from container_infra.cloud import Cloud
from container_infra.cloud.rest import DETAIL_PAGE

MAGNUM_CALLS = 2  # the cluster and its nodegroups, made by the module but not here (synthetic clusters)


class DelayedAdapter(requests.adapters.HTTPAdapter):
    """Every request waits ``delay`` seconds before it is sent: a slower network, for this client only."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def send(self, request, **kwargs):
        time.sleep(self.delay)
        return super().send(request, **kwargs)


class SyntheticMagnum:
    """Answers the cluster get and the nodegroup listing for servers that no Magnum cluster owns."""

    def __init__(self, clusters: dict[str, str]) -> None:
        self._clusters = clusters  # name -> stack_id
        self.clusters = self
        self.nodegroups = self

    def get(self, name):
        return {"uuid": f"bench-{name}", "name": name, "cluster_id": self._clusters[name], "status": "CREATE_COMPLETE"}

    def list(self, *args):
        return [{"name": "default-master", "role": "master"}, {"name": "default-worker", "role": "worker"}]


def read_cluster(cloud: Cloud, magnum: SyntheticMagnum, name: str) -> tuple[int, float, int]:
    """(API calls, seconds, hosts) of reading one cluster and building its inventory, as the module does."""
    cloud.magnum = lambda: magnum  # the synthetic cluster; the listings are the cloud's
    cloud.api_calls.reset()
    started = time.monotonic()
    collected = discovery.collect(cloud, [name])
    built = inventory.inventory_of(collected)
    inventory.render(built, [name], "sandbox")
    seconds = time.monotonic() - started
    return cloud.api_calls.total, seconds, len(inventory.hostvars_of(built))


def cloud_part(args, prefix: str) -> None:
    import openstack

    # The servers are the tests' fixture code (tests/cloud_servers.py).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from cloud_servers import boot_servers, delete_servers

    from container_infra.sandbox.nodes import FAKE_ZONE

    conn = openstack.connect(cloud="sandbox")
    sizes = {f"{prefix}-big": (f"kube-{prefix[-5:]}b", args.servers), f"{prefix}-small": (f"kube-{prefix[-5:]}s",
                                                                                          args.small)}
    try:
        for _name, (stack, count) in sizes.items():
            started = time.monotonic()
            boot_servers(conn, f"{stack}-control-plane", 2, zone=FAKE_ZONE)
            boot_servers(conn, f"{stack}-default-worker", count - 2, zone=FAKE_ZONE)
            print(f"booted {count} servers named {stack}-... (zone {FAKE_ZONE}): {time.monotonic() - started:.1f} s")
        magnum = SyntheticMagnum({name: stack for name, (stack, _) in sizes.items()})
        cloud = Cloud.from_params({"cloud": "sandbox"})
        read_cluster(cloud, magnum, f"{prefix}-small")  # catalog and connections warm before timing
        for label, delay in (("no added latency", 0.0), (f"{args.latency_ms} ms added per request", None)):
            if delay is None:
                adapter = DelayedAdapter(args.latency_ms / 1000)
                cloud.session.session.mount("http://", adapter)
                cloud.session.session.mount("https://", adapter)
            for name, (_stack, count) in sizes.items():
                calls, seconds, hosts = read_cluster(cloud, magnum, name)
                print(f"  {label}: {count:4d} nodes -> {hosts} hosts, {calls} listing calls "
                      f"(+{MAGNUM_CALLS} Magnum = {calls + MAGNUM_CALLS}), {seconds:.2f} s")
        cloud.close()
    finally:
        for _name, (stack, _count) in sizes.items():
            print(f"deleted {delete_servers(conn, stack)} servers named {stack}-...")


def synthetic(count: int) -> tuple[list[dict], inventory.Listings]:
    """``count`` nodes of one Cluster-API-era cluster as Nova, Neutron and Glance list them."""
    net = {"id": "net-private", "name": "private", "mtu": 1450, "tags": []}
    lln = {"id": "net-lln", "name": "lln", "mtu": 65520, "tags": ["ipoib_mode=connected"]}
    subnets = [{"id": "sub-private", "network_id": "net-private", "cidr": "10.0.0.0/16", "gateway_ip": "10.0.0.1",
                "ip_version": 4},
               {"id": "sub-lln", "network_id": "net-lln", "cidr": "10.70.0.0/16", "gateway_ip": None, "ip_version": 4}]
    servers, ports = [], []
    for n in range(count):
        role = "control-plane" if n < 3 else "default-worker"
        sid = f"srv-{n:06d}"
        ip = f"10.0.{n // 250}.{n % 250 + 2}"
        mac = f"fa:16:3e:00:{n // 256:02x}:{n % 256:02x}"
        servers.append({"id": sid, "name": f"kube-bench-{role}-{n:05d}", "status": "ACTIVE",
                        "flavor": {"original_name": "bm.gpu.a100" if n % 10 == 0 else "bm.standard",
                                   "extra_specs": {"gpu:count": "4"} if n % 10 == 0 else {}},
                        "image": {"id": "img-ubuntu"},
                        "addresses": {"private": [{"addr": ip, "OS-EXT-IPS:type": "fixed",
                                                   "OS-EXT-IPS-MAC:mac_addr": mac}]}})
        ports.append({"id": f"port-{n:06d}", "device_id": sid, "network_id": "net-private", "mac_address": mac,
                      "created_at": "2026-01-01T00:00:00Z",
                      "fixed_ips": [{"subnet_id": "sub-private", "ip_address": ip}]})
        ports.append({"id": f"port-lln-{n:06d}", "device_id": sid, "network_id": "net-lln", "mac_address": mac,
                      "created_at": "2026-01-01T00:01:00Z",
                      "fixed_ips": [{"subnet_id": "sub-lln", "ip_address": f"10.70.{n // 250}.{n % 250 + 2}"}]})
    images = [{"id": "img-ubuntu", "name": "ubuntu", "os_distro": "ubuntu"}]
    return servers, inventory.Listings(servers=servers, ports=ports, networks=[net, lln], subnets=subnets,
                                       images=images)


class CountingRest:
    """Recorded listings behind collect(): counts the listings it asks for."""

    def __init__(self, listings: inventory.Listings) -> None:
        self.listings, self.calls = listings, 0

    def list_servers(self, name_regex=None, detail=True):
        self.calls += 1 + max(0, (len(self.listings.servers) - 1) // DETAIL_PAGE)  # Nova's pages
        return self.listings.servers

    def list_ports_where(self, device_ids, fields=None):
        self.calls += 1
        return self.listings.ports

    def list_networks(self, names=None, ids=None):
        self.calls += 1
        return self.listings.networks

    def list_subnets(self, network_ids):
        self.calls += 1
        return self.listings.subnets

    def list_images(self, ids=None, names=None):
        self.calls += 1
        return self.listings.images

    def list_flavors(self):
        self.calls += 1
        return []


def cpu_part(count: int) -> None:
    servers, listings = synthetic(count)
    magnum = SyntheticMagnum({"bench": "kube-bench"})
    fake_cloud = type("FakeCloud", (), {"magnum": lambda self: magnum})()
    for size in sorted({10, count}):
        subset = inventory.Listings(servers=servers[:size], ports=listings.ports[:2 * size],
                                    networks=listings.networks, subnets=listings.subnets, images=listings.images)
        rest = CountingRest(subset)
        started = time.monotonic()
        collected = discovery.collect(fake_cloud, ["bench"], rest=rest)
        built = inventory.inventory_of(collected)
        building = time.monotonic() - started
        text = inventory.render(built, ["bench"], "sandbox")
        rendering = time.monotonic() - started - building
        print(f"  recorded listings, {size:5d} nodes: {rest.calls} listings (Nova pages of {DETAIL_PAGE}) "
              f"+{MAGNUM_CALLS} Magnum; discovery + build {building:.3f} s (the plugin's part), YAML text "
              f"{rendering:.3f} s (the module's file, {len(text) // 1024} KiB), "
              f"{len(inventory.groups_of(built)['gpu'])} GPU hosts")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100, help="nodes of the large cluster (cloud part)")
    parser.add_argument("--small", type=int, default=10, help="nodes of the small cluster (cloud part)")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--synthetic", type=int, default=1000, help="nodes of the recorded-listings cluster")
    parser.add_argument("--no-cloud", action="store_true", help="the CPU part only")
    args = parser.parse_args()
    print(f"CPU part ({args.synthetic} synthetic nodes):")
    cpu_part(args.synthetic)
    if not args.no_cloud:
        print("cloud part (sandbox):")
        cloud_part(args, f"binv{uuid.uuid4().hex[:5]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
