"""A swarm-mode cluster made through Magnum is a real Docker Swarm of machines one logs into.

The sandbox's Heat-era swarm-mode driver (`--driver sandbox_swarm_heat`: Magnum 23 accepts only the
kubernetes COE for new templates) boots the nodes in the Docker zone, forms the Swarm in them and
publishes the first master's Docker API on its floating IP, port 2376, behind TLS from the
cluster's CA in Magnum.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

from cluster_access import ssh, wait_cluster_gone, wait_ssh, wait_status

from container_infra.sandbox.nodes import NODE_LABEL


def swarm_nodes(output: str) -> dict[str, str]:
    """hostname -> status from `docker node ls --format '{{.Hostname}} {{.Status}}'`."""
    return dict(line.split() for line in output.splitlines() if line.strip())


NODE_LS = ["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]


def docker_over_tls(api_address: str, cert_dir, *args: str, certs: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": api_address, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(cert_dir)}
    if not certs:
        # The CA only: the server must refuse a client without a certificate of the cluster's CA.
        env.pop("DOCKER_TLS_VERIFY")
        env.pop("DOCKER_CERT_PATH")
        args = ("--tlsverify", "--tlscacert", str(cert_dir / "ca.pem"), *args)
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, env=env)


def server_ids(osc, stack: str) -> set[str]:
    ids = set()
    for output in ("swarm_primary_master_ids", "swarm_secondary_masters_ids", "swarm_nodes_ids"):
        ids |= set(osc.json("stack", "output", "show", stack, output)["output_value"] or [])
    return ids


def retried(call, attempts: int = 3):
    """A read that a busy shared cloud sometimes answers with a 500 (Nova's call to Neutron timing out)."""
    for attempt in range(attempts):
        try:
            return call()
        except AssertionError:
            if attempt == attempts - 1:
                raise
            time.sleep(5)
    return None


def fip_ids(conn, addresses: set[str]) -> set[str]:
    """Floating IPs by id: a freed address may soon belong to another test's server."""
    return {ip.id for ip in conn.network.ips() if ip.floating_ip_address in addresses}


def node_containers(server_id: str) -> list[str]:
    result = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={NODE_LABEL}={server_id}"],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_swarm_mode_cluster_is_a_docker_swarm(osc, conn, ssh_keypair, unique_name, tmp_path):
    key_name, key = ssh_keypair
    template = f"{unique_name}-t"
    cluster = f"{unique_name}-c"
    osc.run("coe", "cluster", "template", "create", template, "--coe", "kubernetes",
            "--image", "fedora-coreos-sandbox", "--external-network", "public", "--fixed-network", "private",
            "--fixed-subnet", "private-subnet", "--flavor", "bm.standard", "--master-flavor", "bm.standard",
            "--server-type", "bm", "--keypair", key_name, "--driver", "sandbox_swarm_heat")
    seen_servers: set[str] = set()
    floating_ips: set[str] = set()
    stack = None
    try:
        osc.run("coe", "cluster", "create", cluster, "--cluster-template", template,
                "--master-count", "1", "--node-count", "2")
        shown = wait_status(osc, cluster, timeout=420, phase="CREATE_")
        assert shown["status"] == "CREATE_COMPLETE", shown["status_reason"]
        assert "Docker Swarm formed: 1 manager(s), 2 worker(s)" in shown["status_reason"]
        match = re.fullmatch(r"tcp://(127\.42\.0\.\d+):2376", shown["api_address"])
        assert match, shown["api_address"]
        stack = shown.get("cluster_id") or shown["stack_id"]
        seen_servers |= server_ids(osc, stack)
        masters, workers = shown["master_addresses"], shown["node_addresses"]
        assert masters == [match.group(1)] and len(workers) == 2
        floating_ips |= fip_ids(conn, {*masters, *workers})

        # Every node is a machine one logs into with the keypair; each runs dockerd in the Swarm.
        hostnames = set()
        for address in masters + workers:
            wait_ssh(address, key)
            out = ssh(address, key, "hostname; docker info --format '{{.Swarm.LocalNodeState}}'").stdout.split()
            assert out[1] == "active", f"{address}: {out}"
            hostnames.add(out[0])
        on_manager = swarm_nodes(ssh(masters[0], key, "docker " + " ".join(f"'{a}'" for a in NODE_LS)).stdout)
        assert on_manager == dict.fromkeys(hostnames, "Ready")

        # From the host over TLS with the cluster's credentials from Magnum.
        cert_dir = tmp_path / "creds"
        cert_dir.mkdir()
        osc.run("coe", "cluster", "config", cluster, "--dir", str(cert_dir), "--output-certs", "--force")
        assert {"ca.pem", "cert.pem", "key.pem"} <= {p.name for p in cert_dir.iterdir()}
        over_tls = docker_over_tls(shown["api_address"], cert_dir, *NODE_LS)
        assert over_tls.returncode == 0, over_tls.stderr
        assert swarm_nodes(over_tls.stdout) == on_manager
        refused = docker_over_tls(shown["api_address"], cert_dir, *NODE_LS, certs=False)
        assert refused.returncode != 0, "the Docker API answered a client without a certificate"

        osc.run("coe", "cluster", "resize", cluster, "3")
        grown = wait_status(osc, cluster, timeout=420, phase="UPDATE_")
        assert grown["status"] == "UPDATE_COMPLETE", grown["status_reason"]
        seen_servers |= server_ids(osc, stack)
        floating_ips |= fip_ids(conn, set(grown["node_addresses"]))
        after_growth = swarm_nodes(docker_over_tls(shown["api_address"], cert_dir, *NODE_LS).stdout)
        assert len(after_growth) == 4 and set(after_growth.values()) == {"Ready"}, after_growth
        assert set(after_growth) > hostnames

        osc.run("coe", "cluster", "resize", cluster, "2")
        shrunk = wait_status(osc, cluster, timeout=420, phase="UPDATE_")
        assert shrunk["status"] == "UPDATE_COMPLETE", shrunk["status_reason"]
        after_shrink = swarm_nodes(docker_over_tls(shown["api_address"], cert_dir, *NODE_LS).stdout)
        assert len(after_shrink) == 3 and set(after_shrink.values()) == {"Ready"}, after_shrink
        assert set(after_shrink) < set(after_growth)
    finally:
        osc.run("coe", "cluster", "delete", cluster, check=False)
        wait_cluster_gone(osc, cluster)
        osc.run("coe", "cluster", "template", "delete", template, check=False)

    # Nothing is left: no server, port, floating IP, stack or node container.
    assert seen_servers
    servers = {s["ID"] for s in retried(lambda: osc.json("server", "list"))}
    assert not seen_servers & servers
    assert not [port.id for port in conn.network.ports() if port.device_id in seen_servers]
    assert floating_ips and not floating_ips & {ip.id for ip in conn.network.ips()}
    assert not [server for server in seen_servers if node_containers(server)]
    # Heat still shows a deleted stack by its id, as DELETE_COMPLETE; listings leave it out.
    assert stack not in {s["ID"] for s in osc.json("stack", "list")}
    shown = osc.run("stack", "show", stack, "-f", "value", "-c", "stack_status", check=False)
    assert shown.returncode != 0 or shown.stdout.strip() == "DELETE_COMPLETE"
