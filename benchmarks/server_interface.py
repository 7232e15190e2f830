"""os_server_interface on 100 servers x 2 networks (hte, lln) against the sandbox, side by side.

    .venv/bin/python benchmarks/server_interface.py [--servers 100] [--latency-ms 100]

1. boots N servers in ONE request (min_count = max_count = N) and waits for them;
2. with the fault proxy adding --latency-ms to every request, first runs (every port to create):
   a. "one after another" (concurrency 1) on a sample of --sample servers, timed and scaled to N
      (the cost is linear in the servers; running it on all N at 100 ms would take minutes for nothing);
   b. the module's way (a bounded pool of --concurrency) on the other N - sample servers, scaled to N;
3. latency back to 0, a no-change re-run over all N servers: its API calls, counted by Cloud.api_calls
   (and by the proxy's counters, which include other clients of the shared sandbox);
4. deletes the servers and every port it created.

Not a timed test: it prints the figures (the note in the issue quotes them).
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid

import openstack

from container_infra.cloud import Cloud
from container_infra.modules.os_server_interface import ensure
from container_infra.openstack_rest import Rest
from container_infra.sandbox.faults import FaultClient

NETWORKS = ("hte", "lln")


def params(servers: list[str], concurrency: int) -> dict:
    return {"servers": servers, "interfaces": [{"network": n} for n in NETWORKS], "state": "present",
            "concurrency": concurrency, "wait": True, "timeout": 1800, "poll_interval": 2.0}


# Detailed server listings go in pages of 50: Nova asks Neutron about every server of a page in one
# request, and a page of 100 makes that request line longer than eventlet's WSGI server takes (414).
def boot(conn, prefix: str, count: int) -> list[str]:
    image = conn.image.find_image("fedora-coreos-sandbox")
    flavor = conn.compute.find_flavor("bm.standard")
    network = conn.network.find_network("private")
    started = time.monotonic()
    conn.compute.create_server(name=prefix, image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": network.id}],
                               min_count=count, max_count=count)
    while True:
        servers = [s for s in conn.compute.servers(name=f"^{prefix}", limit=50) if s.name.startswith(prefix)]
        if len(servers) == count and all(s.status == "ACTIVE" for s in servers):
            break
        for broken in [s for s in servers if s.status == "ERROR"]:
            # The shared sandbox may hold a compute host that fails builds: boot that one again.
            conn.compute.delete_server(broken)
            conn.compute.wait_for_delete(broken, wait=120)
            conn.compute.create_server(name=broken.name, image_id=image.id, flavor_id=flavor.id,
                                       networks=[{"uuid": network.id}])
        if time.monotonic() - started > 900:
            raise SystemExit(f"{prefix}: servers not ACTIVE after 900 s")
        time.sleep(2)
    print(f"booted {count} servers in one request: {time.monotonic() - started:.1f} s")
    return sorted(s.name for s in servers)


def cleanup(conn, prefix: str) -> None:
    servers = list(conn.compute.servers(name=f"^{prefix}", limit=50))
    for server in servers:
        conn.compute.delete_server(server)
    for server in servers:
        with contextlib.suppress(Exception):
            conn.compute.wait_for_delete(server, wait=600)
    for port in conn.network.ports():
        if port.name and port.name.startswith(prefix):
            with contextlib.suppress(Exception):
                conn.network.delete_port(port, ignore_missing=True)
    print(f"deleted {len(servers)} servers and their ports")


def timed(cloud, servers, concurrency) -> float:
    started = time.monotonic()
    result = ensure(Rest(cloud), params(servers, concurrency))
    assert result["changed"]
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--sample", type=int, default=10,
                        help="servers attached one after another, timed and scaled to --servers")
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    prefix = f"modb-bench-{uuid.uuid4().hex[:6]}"
    conn = openstack.connect(cloud="sandbox")
    faults = FaultClient()
    try:
        names = boot(conn, prefix, args.servers)
        sample, rest = names[:args.sample], names[args.sample:]
        cloud = Cloud.from_params({"cloud": "sandbox"})
        Rest(cloud).list_networks(names=list(NETWORKS))  # token and catalog fetched before timing
        # Latency on the two services the module talks to (the sandbox is shared: keystone, Heat,
        # Magnum and Manila stay fast for everyone else).
        for service in ("compute", "network"):
            faults.set_latency(args.latency_ms, service=service)
        sequential = timed(cloud, sample, 1)
        per_server = sequential / len(sample)
        print(f"one after another ({args.latency_ms} ms latency): {len(sample)} servers in {sequential:.1f} s "
              f"= {per_server:.2f} s/server -> {per_server * args.servers:.1f} s for {args.servers} servers")
        concurrent = timed(cloud, rest, args.concurrency)
        scaled = concurrent * args.servers / len(rest)
        print(f"concurrent, pool of {args.concurrency} ({args.latency_ms} ms latency): {len(rest)} servers in "
              f"{concurrent:.1f} s -> {scaled:.1f} s for {args.servers} servers")
        print(f"speed-up: {per_server * args.servers / scaled:.1f}x")
        for service in ("compute", "network"):
            faults.set_latency(0, service=service)
        faults.reset_counts()
        cloud.api_calls.reset()
        again = ensure(Rest(cloud), params(names, args.concurrency))
        counts = faults.counts()
        proxy_total = sum(v.get("total", 0) for v in counts.values())
        print(f"no-change re-run on {args.servers} servers x {len(NETWORKS)} networks: changed={again['changed']}, "
              f"API calls {cloud.api_calls.total} (Cloud.api_calls), {proxy_total} through the proxy "
              f"(other clients of the shared sandbox included)")
        fresh = Cloud.from_params({"cloud": "sandbox"})
        ensure(Rest(fresh), params(names, args.concurrency))
        print(f"no-change re-run with a fresh connection (authentication included): {fresh.api_calls.total} calls")
    finally:
        with contextlib.suppress(Exception):
            for service in ("compute", "network"):
                faults.set_latency(0, service=service)
        cleanup(conn, prefix)


if __name__ == "__main__":
    main()
