"""How long booting N Docker-backed sandbox nodes takes, until every one answers SSH.

    .venv/bin/python benchmarks/boot_nodes.py            # 10 nodes
    .venv/bin/python benchmarks/boot_nodes.py --count 20

Creates N servers at once (bm.standard, fedora-coreos-sandbox, network private) in the Docker
host's availability zone through the public API, waits until all are ACTIVE (the driver reports
ACTIVE once sshd listens in the node), prints the time, then deletes them and waits until their
containers are gone.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import uuid

import openstack

from container_infra.sandbox.nodes import DOCKER_ZONE, NODE_LABEL


def containers() -> int:
    result = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={NODE_LABEL}"],
                            capture_output=True, text=True, check=True)
    return len(result.stdout.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--zone", default=DOCKER_ZONE)
    args = parser.parse_args()

    conn = openstack.connect(cloud="sandbox")
    flavor = conn.compute.find_flavor("bm.standard", ignore_missing=False)
    image = conn.image.find_image("fedora-coreos-sandbox", ignore_missing=False)
    network = conn.network.find_network("private", ignore_missing=False)
    stem = f"bench-{uuid.uuid4().hex[:6]}"
    before = containers()
    started = time.monotonic()
    servers = [
        conn.compute.create_server(name=f"{stem}-{index}", flavor_id=flavor.id, image_id=image.id,
                                   networks=[{"uuid": network.id}], availability_zone=args.zone)
        for index in range(args.count)
    ]
    try:
        pending = {server.id for server in servers}
        while pending:
            for server in conn.compute.servers(name=f"^{stem}-"):
                if server.status == "ERROR":
                    raise SystemExit(f"{server.name} failed: {server.fault}")
                if server.status == "ACTIVE":
                    pending.discard(server.id)
            time.sleep(0.5)
        booted = time.monotonic() - started
        print(f"{args.count} nodes ACTIVE (sshd answering) in {booted:.1f} s "
              f"({containers() - before} new containers)")
    finally:
        deleting = time.monotonic()
        for server in servers:
            conn.compute.delete_server(server, ignore_missing=True)
        for server in servers:
            conn.compute.wait_for_delete(server, wait=300)
        while containers() > before:
            time.sleep(0.5)
        print(f"deleted in {time.monotonic() - deleting:.1f} s")


if __name__ == "__main__":
    main()
