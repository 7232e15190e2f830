"""A storage run with nothing to do, side by side with `ansible -m ping` of the same nodes (issue 10's budget:
at most 3 times the ping).

    .venv/bin/python -u benchmarks/storage_noop.py                      # 2 nodes booted here, one CephFS share
    .venv/bin/python -u benchmarks/storage_noop.py --nodes 3 --runs 7
    .venv/bin/python -u benchmarks/storage_noop.py --inventory clusters/<name>/hosts.yml   # a written cluster

By default it boots N Docker-backed sandbox nodes with a port on the storage network (as the tests do), makes
one CephFS share through the role (its first run mounts it everywhere), then alternates R pings
(`ansible -i INV all -m ansible.builtin.ping`) and R runs of `playbooks/storage.yml` on the same inventory
(each checked to change nothing), and prints each one's median wall time and their ratio; it exits 1 when the
ratio is over 3. With --inventory it measures that inventory's nodes and storage spec as they are (a cluster
the demo or cluster_create.yml wrote: its nodes carry container_infra_storage), booting and making nothing.
Both commands start a fresh Ansible each time, as an operator runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "integration")]
from ansible_runner import ansible_module  # noqa: E402
from cluster_access import wait_ssh  # noqa: E402
from conftest import OpenStackCLI  # noqa: E402
from test_docker_nodes import boot, delete, with_floating_ip  # noqa: E402

from container_infra.sandbox.layout import STORAGE_CIDR, STORAGE_NETWORK  # noqa: E402

BUDGET = 3.0


def env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def ping(inventory: Path) -> float:
    started = time.monotonic()
    subprocess.run([str(BIN / "ansible"), "-i", str(inventory), "masters:workers", "-m", "ansible.builtin.ping"],
                   cwd=REPO, env=env(), capture_output=True, check=True, timeout=600)
    return time.monotonic() - started


def storage_run(inventory: Path, extra: list[str]) -> tuple[float, int]:
    """One run of playbooks/storage.yml: its wall time and the number of changes it reported."""
    started = time.monotonic()
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), *extra,
                           str(REPO / "playbooks" / "storage.yml")], cwd=REPO, capture_output=True, text=True,
                          env=dict(env(), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"), timeout=600)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"storage.yml failed (rc {done.returncode}): {done.stdout[-2000:]} {done.stderr[-1000:]}")
    report = json.loads(done.stdout[done.stdout.index("{"):])
    return elapsed, sum(host.get("changed", 0) for host in report["stats"].values())


def boot_nodes(osc: OpenStackCLI, count: int, stem: str, work: Path) -> tuple[list[str], list[str], Path]:
    """N nodes with a storage port, reachable over SSH: (server names, floating IPs, inventory path)."""
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    osc.run("keypair", "create", "--public-key", f"{key}.pub", stem)
    names = [f"{stem}-{index}" for index in range(count)]
    addresses: list[str] = []
    started = time.monotonic()
    boot(osc, names, stem)
    attached = ansible_module("os_server_interface", {
        "cloud": "sandbox", "servers": names, "interfaces": [{"network": STORAGE_NETWORK}], "poll_interval": 1})
    hosts = {}
    for name in names:
        address = with_floating_ip(osc, name)
        addresses.append(address)
        wait_ssh(address, key, timeout=120)
        port = attached["servers"][name][STORAGE_NETWORK]
        hosts[name] = {
            "ansible_host": address, "ansible_user": "core", "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
            "container_infra_cluster": stem, "container_infra_role": "worker",
            "container_infra_nodegroup": "default-worker",
            "container_infra_networks": {STORAGE_NETWORK: {
                "ip": port["ip"], "mac": port["mac"], "mtu": port["mtu"], "cidr": STORAGE_CIDR,
                "prefix": int(STORAGE_CIDR.split("/")[1]), "port_id": port["port_id"], "gateway": None,
                "ipoib_mode": None}}}
    print(f"{count} nodes booted with a storage port and reachable in {time.monotonic() - started:.1f} s")
    inventory = work / "hosts.yml"
    spec = [{"name": "scratch", "kind": "cephfs", "path": "/mnt/scratch", "mode": "0777",
             "cephfs": {"share": stem, "create": True, "size": 1, "share_type": "cephfs"}}]
    inventory.write_text(json.dumps({"all": {
        "vars": {"container_infra_storage_cloud": "sandbox", "container_infra_storage": spec},
        "children": {"workers": {"hosts": hosts}, "masters": {"hosts": {}}}}}))
    return names, addresses, inventory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="pings and storage runs measured (medians)")
    parser.add_argument("--inventory", type=Path, help="measure this written cluster inventory instead")
    args = parser.parse_args()

    osc = OpenStackCLI("sandbox")
    stem = f"bench-stor-{uuid.uuid4().hex[:6]}"
    names: list[str] = []
    addresses: list[str] = []
    extra = ["-e", f"container_infra_storage_cloud={os.environ.get('OS_CLOUD', 'sandbox')}"]
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        try:
            if args.inventory:
                inventory = args.inventory.resolve()
            else:
                names, addresses, inventory = boot_nodes(osc, args.nodes, stem, Path(tmp))
            first, changes = storage_run(inventory, extra)
            print(f"first storage run (share made, mounted where it was not): {first:.1f} s, {changes} changes")
            pings, runs = [], []
            for _ in range(args.runs):
                pings.append(ping(inventory))
                elapsed, changes = storage_run(inventory, extra)
                if changes:
                    raise SystemExit(f"a storage run with nothing to do reported {changes} changes")
                runs.append(elapsed)
            hosts = args.nodes if not args.inventory else "the inventory's"
            p, r = statistics.median(pings), statistics.median(runs)
            print(f"ansible -m ping of {hosts} nodes: median {p:.2f} s ({', '.join(f'{x:.2f}' for x in pings)})")
            print(f"no-change storage.yml on them:    median {r:.2f} s ({', '.join(f'{x:.2f}' for x in runs)})")
            print(f"ratio {r / p:.2f} (budget {BUDGET:.0f})")
            return 0 if r / p <= BUDGET else 1
        finally:
            if names:
                for address in addresses:
                    subprocess.run(["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                    "-i", str(Path(tmp) / "id_ed25519"), f"core@{address}",
                                    "sudo umount /mnt/scratch"], capture_output=True, timeout=60, check=False)
                delete(osc, *names)
                for address in addresses:
                    osc.run("floating", "ip", "delete", address, check=False)
                osc.run("keypair", "delete", stem, check=False)
                osc.run("share", "delete", "--wait", stem, check=False)


if __name__ == "__main__":
    sys.exit(main())
