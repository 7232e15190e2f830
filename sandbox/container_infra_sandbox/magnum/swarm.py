"""Forming a Docker Swarm in a swarm-mode cluster's nodes: what cloud-init did on a real node.

The nodes are the Docker containers of the sandbox's compute driver (``sandbox-node-<server id>``),
each running dockerd (server metadata ``sandbox_dockerd=true``). The driver runs the commands a
node's boot scripts ran, with ``docker exec``, once the Heat stack is complete:

* every manager's dockerd also listens on TCP 2376 with TLS: a server certificate signed by the
  cluster's CA in Magnum (Magnum's own cert manager), and clients must present a certificate
  signed by the same CA (``tlsverify``), as the removed swarm-mode driver configured it;
* the first manager runs ``docker swarm init``; the other managers join as managers, the rest as
  workers; nodes of the swarm that are no server of the cluster any more are removed;
* before a resize removes servers, each one is drained, leaves the Swarm and is removed from it.

Every step looks before it acts, so forming an already formed Swarm changes nothing.
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import os
import tarfile
import threading
import time

import docker
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from docker import errors as docker_errors
from magnum.conductor.handlers.common import cert_manager
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

CONTAINER_PREFIX = "sandbox-node-"
TLS_PORT = 2376
SWARM_PORT = 2377
TLS_DIR = "/etc/docker/tls"
DAEMON_JSON = "/etc/docker/daemon.json"
# The node image's init starts dockerd so (vfs is what works for Docker in Docker here).
DOCKERD = "dockerd --storage-driver vfs"
DOCKERD_TIMEOUT = 90
READY_TIMEOUT = 90

_forming = set()
_forming_lock = threading.Lock()


class SwarmError(RuntimeError):
    """A step of forming or shrinking the Swarm failed; the message says which and why."""


class Busy(RuntimeError):
    """Another status poll is forming this cluster's Swarm right now."""


@dataclasses.dataclass(frozen=True)
class Node:
    server_id: str
    fixed_ip: str
    public_ip: str | None = None


def _client():
    return docker.from_env(timeout=120)


class NodeShell:
    """Commands in one node, as its root user."""

    def __init__(self, client, node):
        self.node = node
        try:
            self.container = client.containers.get(CONTAINER_PREFIX + node.server_id)
        except docker_errors.NotFound as error:
            raise SwarmError(f"server {node.server_id} has no running node (container "
                             f"{CONTAINER_PREFIX}{node.server_id} is missing)") from error

    def run(self, *argv, check=True):
        code, output = self.container.exec_run(list(argv), demux=False)
        text = (output or b"").decode(errors="replace").strip()
        if check and code != 0:
            raise SwarmError(f"`{' '.join(argv)}` failed in node {self.node.server_id}: {text[-500:]}")
        return code, text

    def sh(self, script, check=True):
        return self.run("sh", "-c", script, check=check)

    def read(self, path):
        code, text = self.run("cat", path, check=False)
        return text if code == 0 else None

    def write(self, path, content, mode=0o644):
        """Put a file into the node (never through a command line: the key is a secret)."""
        buffer = io.BytesIO()
        data = content.encode()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        self.run("mkdir", "-p", os.path.dirname(path))
        if not self.container.put_archive(os.path.dirname(path), buffer.getvalue()):
            raise SwarmError(f"could not write {path} in node {self.node.server_id}")

    def swarm_info(self):
        """(LocalNodeState, NodeID, ControlAvailable) as dockerd reports them."""
        _, text = self.run("docker", "info", "--format", "{{json .Swarm}}")
        info = json.loads(text)
        return info.get("LocalNodeState", ""), info.get("NodeID", ""), bool(info.get("ControlAvailable"))

    def wait_dockerd(self, timeout=DOCKERD_TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.run("docker", "info", "--format", "{{.ID}}", check=False)[0] != 0:
            if time.monotonic() > deadline:
                _, log = self.run("tail", "-n", "5", "/var/log/dockerd.log", check=False)
                raise SwarmError(f"dockerd did not answer in node {self.node.server_id} within {timeout} s: {log}")
            time.sleep(1)


def daemon_config():
    return json.dumps({
        "hosts": ["unix:///var/run/docker.sock", f"tcp://0.0.0.0:{TLS_PORT}"],
        "tls": True,
        "tlsverify": True,
        "tlscacert": f"{TLS_DIR}/ca.pem",
        "tlscert": f"{TLS_DIR}/cert.pem",
        "tlskey": f"{TLS_DIR}/key.pem",
    }, indent=2, sort_keys=True) + "\n"


def server_csr(node, hostname):
    """A key and a CSR for the manager's TLS port: every address a client may name, as SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    addresses = {node.fixed_ip, "127.0.0.1"} | ({node.public_ip} if node.public_ip else set())
    names = [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)]
    names += [x509.DNSName(hostname), x509.DNSName("localhost")]
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def _cert_covers(cert_pem, node):
    """Whether the node's certificate names its addresses (a floating IP can come later)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return {node.fixed_ip, node.public_ip or node.fixed_ip} <= ips


def _pem(value):
    return value.decode() if isinstance(value, bytes) else value


class Cluster:
    """One cluster's Swarm: its managers (the first one leads) and workers."""

    def __init__(self, cluster, context, managers, workers, client=None):
        if not managers:
            raise SwarmError("the cluster has no master to form a Swarm on")
        self.cluster = cluster
        self.context = context
        self.client = client or _client()
        self.managers = [NodeShell(self.client, n) for n in managers]
        self.workers = [NodeShell(self.client, n) for n in workers]
        self.leader = self.managers[0]

    def form(self):
        """Make the Swarm match the cluster's servers; returns (managers, workers) in it."""
        for shell in self.managers + self.workers:
            shell.wait_dockerd()
        ca_pem = None
        for shell in self.managers:
            if not self._tls_ready(shell):
                ca_pem = ca_pem or _pem(cert_manager.get_cluster_ca_certificate(
                    self.cluster, context=self.context).get_certificate())
                self._configure_tls(shell, ca_pem)
        state, _, _ = self.leader.swarm_info()
        if state != "active":
            LOG.info("Initialising the Swarm of cluster %s on %s", self.cluster.uuid, self.leader.node.server_id)
            self.leader.run("docker", "swarm", "init", "--advertise-addr", self.leader.node.fixed_ip)
        tokens = {}
        wanted = {}
        for role, shells in (("manager", self.managers), ("worker", self.workers)):
            for shell in shells:
                state, node_id, _ = shell.swarm_info()
                if state != "active":
                    if role not in tokens:
                        tokens[role] = self.leader.run("docker", "swarm", "join-token", "-q", role)[1]
                    if state not in ("inactive", ""):
                        # pending or error: a half-made join; start it over.
                        shell.run("docker", "swarm", "leave", "--force", check=False)
                    LOG.info("Node %s joins the Swarm of cluster %s as a %s", shell.node.server_id,
                             self.cluster.uuid, role)
                    shell.run("docker", "swarm", "join", "--advertise-addr", shell.node.fixed_ip,
                              "--token", tokens[role], f"{self.leader.node.fixed_ip}:{SWARM_PORT}")
                    _, node_id, _ = shell.swarm_info()
                wanted[node_id] = role
        self._remove_strangers(wanted)
        self._wait_ready(wanted)
        return len(self.managers), len(self.workers)

    def remove(self, doomed):
        """Drain the doomed nodes, make them leave and remove them, before their servers go."""
        for node in doomed:
            try:
                shell = NodeShell(self.client, node)
                state, node_id, is_manager = shell.swarm_info()
            except SwarmError as error:
                LOG.warning("Node %s cannot leave the Swarm on its own: %s", node.server_id, error)
                continue
            if state != "active" or not node_id:
                continue
            LOG.info("Draining node %s (%s) of cluster %s", node.server_id, node_id, self.cluster.uuid)
            if is_manager:
                self.leader.run("docker", "node", "demote", node_id, check=False)
            self.leader.run("docker", "node", "update", "--availability", "drain", node_id)
            shell.run("docker", "swarm", "leave", "--force", check=False)
            self.leader.run("docker", "node", "rm", "--force", node_id)

    def _tls_ready(self, shell):
        cert = shell.read(f"{TLS_DIR}/cert.pem")
        return (shell.read(DAEMON_JSON) == daemon_config().strip() and cert is not None
                and _cert_covers(cert, shell.node)
                and shell.sh(f"ss -Hltn 'sport = :{TLS_PORT}' | grep -q .", check=False)[0] == 0)

    def _configure_tls(self, shell, ca_pem):
        _, hostname = shell.run("hostname")
        key_pem, csr_pem = server_csr(shell.node, hostname)
        cert_pem = _pem(cert_manager.sign_node_certificate(self.cluster, csr_pem, context=self.context))
        shell.write(f"{TLS_DIR}/ca.pem", ca_pem)
        shell.write(f"{TLS_DIR}/cert.pem", cert_pem)
        shell.write(f"{TLS_DIR}/key.pem", key_pem, mode=0o600)
        shell.write(DAEMON_JSON, daemon_config())
        LOG.info("Restarting dockerd in node %s with TLS on port %s", shell.node.server_id, TLS_PORT)
        # The Swarm's state lives in /var/lib/docker: a restarted manager keeps it.
        shell.sh("pkill -x dockerd; while pidof dockerd >/dev/null; do sleep 0.2; done; "
                 f"setsid nohup {DOCKERD} >>/var/log/dockerd.log 2>&1 </dev/null &")
        shell.wait_dockerd()

    def _nodes(self):
        _, text = self.leader.run("docker", "node", "ls", "--format", "{{json .}}")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _remove_strangers(self, wanted):
        # Nodes whose servers went without leaving (a nodegroup deleted, a server deleted by hand).
        for entry in self._nodes():
            if entry["ID"] not in wanted:
                LOG.info("Removing node %s (%s) from the Swarm of cluster %s: no server of the cluster",
                         entry["ID"], entry.get("Hostname"), self.cluster.uuid)
                if entry.get("ManagerStatus"):
                    self.leader.run("docker", "node", "demote", entry["ID"], check=False)
                self.leader.run("docker", "node", "rm", "--force", entry["ID"])

    def _wait_ready(self, wanted):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            status = {entry["ID"]: entry["Status"] for entry in self._nodes()}
            waiting = [node_id for node_id in wanted if status.get(node_id) != "Ready"]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise SwarmError(f"Swarm nodes {', '.join(waiting)} were not Ready within {READY_TIMEOUT} s")
            time.sleep(1)


def form(cluster, context, managers, workers):
    """Form the cluster's Swarm, unless another poll of the same cluster is doing so (Busy)."""
    with _forming_lock:
        if cluster.uuid in _forming:
            raise Busy(cluster.uuid)
        _forming.add(cluster.uuid)
    started = time.monotonic()
    try:
        formed = Cluster(cluster, context, managers, workers).form()
        LOG.info("The Swarm of cluster %s has %d manager(s) and %d worker(s), checked or formed in %.1f s",
                 cluster.uuid, *formed, time.monotonic() - started)
        return formed
    finally:
        with _forming_lock:
            _forming.discard(cluster.uuid)


def remove(cluster, context, managers, doomed):
    if not doomed:
        return
    Cluster(cluster, context, managers, []).remove(doomed)
