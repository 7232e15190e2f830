"""Forming the swarm-mode cluster's Swarm (container_infra_sandbox.magnum.swarm) against fake nodes.

The fake nodes answer the commands the driver runs in them as dockerd and a shell would, keeping
the Swarm's state, so the tests see which commands a formation issues: the first formation
configures TLS, inits and joins; a second one on the formed Swarm changes nothing.
"""

import datetime
import io
import json
import tarfile
import types
from unittest import mock

import pytest

pytest.importorskip("magnum")

from container_infra_sandbox.magnum import swarm
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from docker import errors as docker_errors

CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA_NAME = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "cluster-ca")])


def sign(csr_pem):
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(CA_NAME)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    for extension in csr.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(CA_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class FakeSwarm:
    def __init__(self):
        self.nodes = {}  # node id -> {"Hostname", "Status", "ManagerStatus"}


class FakeNode:
    """A node container: files, dockerd's TLS listener and its Swarm membership."""

    def __init__(self, name, world, commands):
        self.name = name
        self.world = world
        self.commands = commands
        self.files = {}
        self.listening_tls = False
        self.node_id = None

    def exec_run(self, argv, demux=False):
        self.commands.append((self.name, tuple(argv)))
        match argv:
            case ["docker", "info", "--format", "{{.ID}}"]:
                return 0, b"engine"
            case ["docker", "info", "--format", "{{json .Swarm}}"]:
                member = self.world.nodes.get(self.node_id)
                info = {"LocalNodeState": "active" if member else "inactive", "NodeID": self.node_id or "",
                        "ControlAvailable": bool(member and member["ManagerStatus"])}
                return 0, json.dumps(info).encode()
            case ["cat", path]:
                return (0, self.files[path].encode()) if path in self.files else (1, b"No such file")
            case ["hostname"]:
                return 0, self.name.encode()
            case ["mkdir", *_]:
                return 0, b""
            case ["sh", "-c", script] if script.startswith("ss "):
                return (0 if self.listening_tls else 1), b""
            case ["sh", "-c", script] if script.startswith("pkill -x dockerd"):
                self.listening_tls = swarm.DAEMON_JSON in self.files
                return 0, b""
            case ["docker", "swarm", "init", *_]:
                self._join("Leader")
                return 0, b"Swarm initialized"
            case ["docker", "swarm", "join-token", "-q", role]:
                return 0, f"token-{role}".encode()
            case ["docker", "swarm", "join", *rest]:
                token = rest[rest.index("--token") + 1]
                self._join("Reachable" if token == "token-manager" else "")
                return 0, b"joined"
            case ["docker", "swarm", "leave", *_]:
                self.world.nodes.pop(self.node_id, None)
                return 0, b""
            case ["docker", "node", "ls", "--format", "{{json .}}"]:
                lines = [json.dumps({"ID": node_id, **entry}) for node_id, entry in self.world.nodes.items()]
                return 0, "\n".join(lines).encode()
            case ["docker", "node", "update" | "demote", *_]:
                return 0, b""
            case ["docker", "node", "rm", "--force", node_id]:
                self.world.nodes.pop(node_id, None)
                return 0, b""
        raise AssertionError(f"unexpected command in {self.name}: {argv}")

    def put_archive(self, directory, data):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                self.files[f"{directory}/{member.name}"] = tar.extractfile(member).read().decode()
        return True

    def _join(self, manager_status):
        self.node_id = f"id-{self.name}"
        self.world.nodes[self.node_id] = {"Hostname": self.name, "Status": "Ready", "ManagerStatus": manager_status}


class FakeClient:
    def __init__(self, names):
        self.world = FakeSwarm()
        self.commands = []
        self.nodes = {swarm.CONTAINER_PREFIX + n: FakeNode(n, self.world, self.commands) for n in names}
        self.containers = types.SimpleNamespace(get=self._get)

    def _get(self, name):
        if name not in self.nodes:
            raise docker_errors.NotFound(name)
        return self.nodes[name]


@pytest.fixture
def cert_manager():
    ca = types.SimpleNamespace(get_certificate=lambda: b"-----BEGIN CERTIFICATE-----\nca\n")
    with mock.patch.object(swarm.cert_manager, "get_cluster_ca_certificate", return_value=ca) as get_ca, \
            mock.patch.object(swarm.cert_manager, "sign_node_certificate",
                              side_effect=lambda cluster, csr, context=None: sign(csr)) as signer:
        yield get_ca, signer


CLUSTER = types.SimpleNamespace(uuid="c1")
MANAGERS = [swarm.Node("m0", "10.0.0.10", "127.42.0.10")]
WORKERS = [swarm.Node("w0", "10.0.0.11", "127.42.0.11"), swarm.Node("w1", "10.0.0.12", None)]


def changes(commands):
    """The commands that change something (not the looks before acting)."""
    looks = {("docker", "info"), ("cat",), ("hostname",), ("docker", "node", "ls")}
    return [(node, argv) for node, argv in commands
            if argv[:2] not in looks and argv[:1] not in looks and argv[:3] not in looks
            and not (argv[:2] == ("sh", "-c") and argv[2].startswith("ss "))]


def test_first_formation_secures_the_manager_inits_and_joins(cert_manager):
    client = FakeClient(["m0", "w0", "w1"])
    assert swarm.Cluster(CLUSTER, None, MANAGERS, WORKERS, client=client).form() == (1, 2)

    manager = client.nodes["sandbox-node-m0"]
    assert manager.listening_tls
    assert json.loads(manager.files[swarm.DAEMON_JSON])["tlsverify"] is True
    cert = x509.load_pem_x509_certificate(manager.files[f"{swarm.TLS_DIR}/cert.pem"].encode())
    sans = {str(ip) for ip in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            .get_values_for_type(x509.IPAddress)}
    assert {"10.0.0.10", "127.42.0.10"} <= sans
    assert not client.nodes["sandbox-node-w0"].files, "workers expose no TLS port"
    statuses = {e["Hostname"]: e["ManagerStatus"] for e in client.world.nodes.values()}
    assert statuses == {"m0": "Leader", "w0": "", "w1": ""}
    joins = [argv for _, argv in client.commands if argv[:3] == ("docker", "swarm", "join")]
    assert all("10.0.0.10:2377" in argv for argv in joins) and len(joins) == 2


def test_forming_a_formed_swarm_changes_nothing(cert_manager):
    client = FakeClient(["m0", "w0", "w1"])
    swarm.Cluster(CLUSTER, None, MANAGERS, WORKERS, client=client).form()
    client.commands.clear()
    _, signer = cert_manager
    signer.reset_mock()

    swarm.Cluster(CLUSTER, None, MANAGERS, WORKERS, client=client).form()

    assert changes(client.commands) == []
    signer.assert_not_called()


def test_a_new_floating_ip_gets_a_new_certificate(cert_manager):
    client = FakeClient(["m0"])
    swarm.Cluster(CLUSTER, None, [swarm.Node("m0", "10.0.0.10")], [], client=client).form()
    swarm.Cluster(CLUSTER, None, MANAGERS, [], client=client).form()
    assert cert_manager[1].call_count == 2


def test_nodes_whose_servers_are_gone_leave_the_swarm(cert_manager):
    client = FakeClient(["m0", "w0", "w1"])
    swarm.Cluster(CLUSTER, None, MANAGERS, WORKERS, client=client).form()
    swarm.Cluster(CLUSTER, None, MANAGERS, WORKERS[:1], client=client).form()
    assert {e["Hostname"] for e in client.world.nodes.values()} == {"m0", "w0"}


def test_removal_drains_then_removes_the_node(cert_manager):
    client = FakeClient(["m0", "w0", "w1"])
    swarm.Cluster(CLUSTER, None, MANAGERS, WORKERS, client=client).form()
    client.commands.clear()

    swarm.Cluster(CLUSTER, None, MANAGERS, [], client=client).remove([WORKERS[1]])

    done = [argv[:3] for _, argv in changes(client.commands)]
    assert done == [("docker", "node", "update"), ("docker", "swarm", "leave"), ("docker", "node", "rm")]
    assert "id-w1" not in client.world.nodes


def test_a_missing_node_is_named(cert_manager):
    client = FakeClient(["m0"])
    with pytest.raises(swarm.SwarmError, match="server w0 has no running node"):
        swarm.Cluster(CLUSTER, None, MANAGERS, WORKERS[:1], client=client)


def test_a_second_poll_of_the_same_cluster_is_told_busy():
    swarm._forming.add(CLUSTER.uuid)
    try:
        with pytest.raises(swarm.Busy):
            swarm.form(CLUSTER, None, MANAGERS, [])
    finally:
        swarm._forming.discard(CLUSTER.uuid)


def _polled_cluster(status):
    """A swarm-mode cluster whose stack completed, as the Heat driver's poller holds it."""
    from container_infra_sandbox.magnum import heat_driver

    outputs = {
        "swarm_primary_master_ids": ["m0"], "swarm_primary_master_private": ["10.0.0.10"],
        "swarm_primary_master": ["127.42.0.10"],
        "swarm_secondary_masters_ids": [], "swarm_secondary_masters_private": [], "swarm_secondary_masters": [],
        "swarm_nodes_ids": ["w0"], "swarm_nodes_private": ["10.0.0.11"], "swarm_nodes": ["127.42.0.11"],
    }
    stack = types.SimpleNamespace(stack_status="CREATE_COMPLETE",
                                  outputs=[{"output_key": k, "output_value": v} for k, v in outputs.items()])
    nodegroups = [types.SimpleNamespace(role="master", is_default=True, stack_id=None),
                  types.SimpleNamespace(role="worker", is_default=True, stack_id=None)]
    cluster = types.SimpleNamespace(uuid="c1", stack_id="s1", nodegroups=nodegroups, status=status,
                                    status_reason=None, api_address="tcp://127.42.0.10:2376")
    poller = types.SimpleNamespace(_stack=lambda stack_id: stack)
    return heat_driver, cluster, poller


def test_the_driver_reports_complete_only_with_the_swarm_formed():
    heat_driver, cluster, poller = _polled_cluster("CREATE_COMPLETE")
    with mock.patch.object(swarm, "form", return_value=(1, 1)) as form:
        heat_driver._form_swarm(None, cluster, poller, "CREATE_IN_PROGRESS")
    managers, workers = form.call_args.args[2:]
    assert [n.server_id for n in managers] == ["m0"] and managers[0].public_ip == "127.42.0.10"
    assert [n.fixed_ip for n in workers] == ["10.0.0.11"]
    assert cluster.status == "CREATE_COMPLETE"
    assert "Docker Swarm formed: 1 manager(s), 1 worker(s)" in cluster.status_reason


def test_a_failed_formation_fails_the_operation_and_a_busy_one_waits():
    heat_driver, cluster, poller = _polled_cluster("UPDATE_COMPLETE")
    with mock.patch.object(swarm, "form", side_effect=swarm.SwarmError("dockerd did not answer")):
        heat_driver._form_swarm(None, cluster, poller, "UPDATE_IN_PROGRESS")
    assert cluster.status == "UPDATE_FAILED"
    assert cluster.status_reason == "Forming the Docker Swarm failed: dockerd did not answer"

    heat_driver, cluster, poller = _polled_cluster("CREATE_COMPLETE")
    with mock.patch.object(swarm, "form", side_effect=swarm.Busy("c1")):
        heat_driver._form_swarm(None, cluster, poller, "CREATE_IN_PROGRESS")
    assert cluster.status == "CREATE_IN_PROGRESS"
