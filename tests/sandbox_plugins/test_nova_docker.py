"""The Docker-backed compute driver's pure parts: NIC naming and wiring commands, flavor scaling,
the config drive, and the floating IP forwarder's plan and namespace-crossing connect.

Runs with the services' interpreter (``make plugin-tests``); nothing here needs Docker.
"""

import io
import os
import socket
import tarfile
import threading
import types
from unittest import mock

import pytest

pytest.importorskip("nova")

from container_infra_sandbox import fipforward, nodenet, nova_docker
from container_infra_sandbox.nova_docker import container_name, node_script, scaled_limits
from nova import exception
from nova.compute import power_state

NETWORK = "4ec04ac0-31aa-4b3c-9c1e-0123456789ab"
PORT = "d7d677a8-d9b0-4c2e-8f00-abcdefabcdef"


def vif(**overrides):
    value = {
        "id": PORT,
        "address": "fa:16:3e:aa:bb:cc",
        "network": {
            "id": NETWORK,
            "meta": {"mtu": 9000},
            "subnets": [{"cidr": "10.60.0.0/16", "gateway": {"address": "10.60.0.1"},
                         "ips": [{"address": "10.60.3.4"}]}],
        },
        "details": {},
    }
    value.update(overrides)
    return value


def test_interface_names_fit_linux_and_derive_from_ids():
    assert nodenet.bridge_name(NETWORK) == "sbx-b4ec04ac031"
    assert nodenet.host_veth_name(PORT) == "sbx-vd7d677a8d9"
    for name in (nodenet.bridge_name(NETWORK), nodenet.host_veth_name(PORT), nodenet.temp_veth_name(PORT)):
        assert len(name) <= 15 and name.startswith(nodenet.PREFIX)


def test_a_bridge_is_removed_with_its_last_port_unless_it_carries_the_sandboxs_address(tmp_path, monkeypatch):
    """The storage network's bridge holds Ceph's and the registry's address: it outlives its last node."""
    brif = tmp_path / "brif"
    brif.mkdir()
    real_path = nodenet.Path
    monkeypatch.setattr(nodenet, "Path", lambda p: brif if p.endswith("/brif") else real_path(p))
    for address, removed in (("", True), (" inet 10.80.0.2/24 ...", False)):
        calls = []

        def run(args, stdin=None, check=True, address=address, calls=calls):
            calls.append(args)
            return types.SimpleNamespace(stdout=address if "addr" in args else "", returncode=0)

        monkeypatch.setattr(nodenet, "_run", run)
        nodenet.remove_bridge_if_unused(NETWORK)
        assert (["ip", "link", "del", nodenet.bridge_name(NETWORK)] in calls) is removed


def test_primary_interface_is_configured_as_cloud_init_would():
    lines = nodenet.node_commands(vif(), "eth0", configure=True)
    assert lines[0] == "link set dev sbx-td7d677a8d9 name eth0 address fa:16:3e:aa:bb:cc mtu 9000"
    assert "address add 10.60.3.4/16 dev eth0" in lines
    assert "route replace default via 10.60.0.1 dev eth0 onlink" in lines


def test_hot_plugged_interface_stays_unconfigured():
    lines = nodenet.node_commands(vif(), "eth2", configure=False)
    assert len(lines) == 1 and "name eth2" in lines[0] and "mtu 9000" in lines[0]


def test_mtu_falls_back_to_binding_details_then_1500():
    assert nodenet.vif_mtu(vif(network={"id": NETWORK, "meta": {}}, details={"mtu": 65520})) == 65520
    assert nodenet.vif_mtu(vif(network={"id": NETWORK, "meta": {}})) == 1500


def test_flavor_limits_scale_to_this_machine():
    assert scaled_limits(32, 131072, host_cpus=2) == (1.0, 1024)  # bm.standard
    assert scaled_limits(64, 262144, host_cpus=2) == (2.0, 2048)  # bm.large
    assert scaled_limits(64, 524288, host_cpus=2) == (2.0, 4096)  # bm.gpu.a100
    assert scaled_limits(1, 2048, host_cpus=2) == (0.25, 512)  # floors


def test_config_drive_writes_the_login_users_key():
    script = node_script("ubuntu", "ssh-ed25519 AAAAkey user@host\n")
    assert "/home/ubuntu/.ssh/authorized_keys" in script
    assert "'ssh-ed25519 AAAAkey user@host'" in script
    assert "authorized_keys" not in node_script("core", None)
    assert container_name("abc") == "sandbox-node-abc"


@pytest.mark.parametrize("user", ["core; touch /pwned", "$(id)", "a b", "root`id`", ""])
def test_config_drive_refuses_an_image_user_that_is_no_login_name(user):
    """Issue 15, finding 14: os_admin_user is image data and the script runs as root."""
    from nova import exception

    with pytest.raises(exception.InstanceDeployFailure, match="is not a login name"):
        node_script(user, "ssh-ed25519 AAAAkey user@host")


def test_config_drive_quotes_every_value_for_the_shell(tmp_path):
    import shlex

    key = "ssh-ed25519 AAAAkey it's $(id) `id`"
    script = node_script("core", key)
    printf = next(line for line in script.splitlines() if line.startswith("printf"))
    assert shlex.split(printf)[:3] == ["printf", "%s\\n", key]


def test_forwarder_listens_on_loopback_only():
    rows = [("127.42.0.11", "10.0.0.5", "a"), ("192.0.2.7", "10.0.0.6", "b"), ("0.0.0.0", "10.0.0.7", "c"),  # noqa: S104
            ("::", "10.0.0.8", "d"), ("localhost", "10.0.0.9", "e")]
    assert set(fipforward.desired_forwards(rows, [22])) == {("127.42.0.11", 22)}
    assert fipforward.on_loopback("127.0.0.1") and not fipforward.on_loopback("128.0.0.1")


def test_forwarder_plan_lists_associated_floating_ips_only():
    rows = [("127.42.0.11", "10.0.0.5", "server-a"), ("127.42.0.12", None, None), ("127.42.0.13", "10.0.0.6", "")]
    assert fipforward.desired_forwards(rows, [22, 2376]) == {
        ("127.42.0.11", 22): ("server-a", "10.0.0.5"),
        ("127.42.0.11", 2376): ("server-a", "10.0.0.5"),
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="setns needs root")
def test_connect_in_a_network_namespace():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()))
    thread.start()
    sock = fipforward.connect_in_netns(os.getpid(), "127.0.0.1", port)
    thread.join(5)
    assert accepted
    sock.close()
    accepted[0][0].close()
    listener.close()


def reconciling_driver(container):
    """A driver whose Docker holds ``container`` (or nothing); start, create and tracking are recorded."""
    driver = nova_docker.SandboxDockerDriver.__new__(nova_docker.SandboxDockerDriver)
    driver._interfaces = {}
    driver._net_lock = threading.Lock()
    driver._container = mock.Mock(return_value=container)
    driver._create = mock.Mock(return_value=types.SimpleNamespace(status="created", reload=lambda: None))
    driver._start = mock.Mock()
    driver._track = mock.Mock()
    driver._pid = mock.Mock(return_value=4242)
    return driver


def server(vm_state="active"):
    running = power_state.RUNNING if vm_state == "active" else power_state.SHUTDOWN
    return types.SimpleNamespace(uuid="i-1", vm_state=vm_state, power_state=running, image_meta=None)


def test_start_up_rebuilds_the_node_of_a_server_whose_container_is_gone():
    driver = reconciling_driver(None)
    driver.plug_vifs(server(), [vif()])
    driver._create.assert_called_once()
    driver._start.assert_called_once()


def test_start_up_starts_a_stopped_node_of_a_running_server_only():
    stopped = types.SimpleNamespace(status="exited", reload=lambda: None)
    driver = reconciling_driver(stopped)
    driver.plug_vifs(server(), [vif()])
    driver._start.assert_called_once()
    driver = reconciling_driver(stopped)
    driver.plug_vifs(server("stopped"), [vif()])
    driver._start.assert_not_called()


def test_start_up_plugs_the_nics_a_running_node_lacks():
    running = types.SimpleNamespace(status="running", reload=lambda: None)
    driver = reconciling_driver(running)
    second = vif(id="port-2", address="fa:16:3e:00:00:02")
    with mock.patch.object(nodenet, "node_links", return_value={"fa:16:3e:aa:bb:cc": "eth0"}), \
            mock.patch.object(nodenet, "plug") as plug:
        driver.plug_vifs(server(), [vif(), second])
    plug.assert_called_once_with(4242, second, "eth1", configure=False)
    assert set(driver._interfaces) == {PORT, "port-2"}


def test_a_node_that_cannot_come_back_marks_its_server_not_the_host():
    driver = reconciling_driver(None)
    driver._create.side_effect = RuntimeError("image missing")
    with pytest.raises(exception.VirtualInterfacePlugException, match="image missing"):
        driver.plug_vifs(server(), [vif()])


def test_nodes_get_dev_fuse_where_the_host_has_it():
    assert nova_docker.node_devices(lambda path: path == "/dev/fuse") == ["/dev/fuse:/dev/fuse:rwm"]
    assert nova_docker.node_devices(lambda path: False) == []


def test_config_drive_carries_the_registry_ca_for_the_nodes_docker(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nsandbox\n-----END CERTIFICATE-----\n")
    files = nova_docker.registry_ca_files("10.80.0.2:5000", str(ca))
    assert files == {"/etc/docker/certs.d/10.80.0.2:5000/ca.crt": ca.read_text()}
    assert nova_docker.registry_ca_files("", str(ca)) == {}
    assert nova_docker.registry_ca_files("10.80.0.2:5000", "") == {}
    with pytest.raises(exception.InstanceDeployFailure, match="sandbox up"):
        nova_docker.registry_ca_files("10.80.0.2:5000", str(tmp_path / "missing.crt"))


def test_config_drive_tar_holds_each_file_and_its_directories():
    data = nova_docker._tar_of({"/etc/sandbox/node.sh": "echo hi\n",
                                "/etc/docker/certs.d/10.80.0.2:5000/ca.crt": "CA\n"})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert tar.extractfile(members["etc/docker/certs.d/10.80.0.2:5000/ca.crt"]).read() == b"CA\n"
        assert tar.extractfile(members["etc/sandbox/node.sh"]).read() == b"echo hi\n"
    for directory in ("etc/sandbox", "etc/docker", "etc/docker/certs.d", "etc/docker/certs.d/10.80.0.2:5000"):
        assert members[directory].isdir() and members[directory].mode == 0o755
    # /etc itself is left as the image has it.
    assert "etc" not in members


def test_a_new_node_gets_dev_fuse_and_the_registry_ca(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("CA\n")
    driver = nova_docker.SandboxDockerDriver.__new__(nova_docker.SandboxDockerDriver)
    driver._docker = mock.Mock()
    driver._docker.containers.get.side_effect = nova_docker.docker_errors.NotFound("none")
    container = driver._docker.containers.create.return_value
    instance = types.SimpleNamespace(
        uuid="i-1", name="instance-1", hostname="node-1", display_name="node-1", key_data="ssh-ed25519 AAAA k",
        metadata={}, flavor=types.SimpleNamespace(vcpus=32, memory_mb=131072, extra_specs={}))
    conf = nova_docker.CONF
    conf.set_override("registry", "10.80.0.2:5000", group="sandbox_docker")
    conf.set_override("registry_ca_file", str(ca), group="sandbox_docker")
    try:
        with mock.patch.object(nova_docker, "node_devices", return_value=["/dev/fuse:/dev/fuse:rwm"]):
            driver._create(instance, None)
    finally:
        conf.clear_override("registry", group="sandbox_docker")
        conf.clear_override("registry_ca_file", group="sandbox_docker")
    kwargs = driver._docker.containers.create.call_args.kwargs
    assert kwargs["devices"] == ["/dev/fuse:/dev/fuse:rwm"]
    assert kwargs["network_mode"] == "none"
    path, archive = container.put_archive.call_args.args
    assert path == "/"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert tar.extractfile("etc/docker/certs.d/10.80.0.2:5000/ca.crt").read() == b"CA\n"
        assert b"authorized_keys" in tar.extractfile("etc/sandbox/node.sh").read()
        assert "etc/sandbox/gpus.tsv" not in tar.getnames()  # bm.standard: no GPU
    assert kwargs["labels"]["org.container-infra.sandbox.gpus"] == "0"


def test_a_gpu_flavors_node_gets_its_gpus_before_its_first_start():
    driver = nova_docker.SandboxDockerDriver.__new__(nova_docker.SandboxDockerDriver)
    driver._docker = mock.Mock()
    driver._docker.containers.get.side_effect = nova_docker.docker_errors.NotFound("none")
    container = driver._docker.containers.create.return_value
    specs = {"gpu:vendor": "nvidia", "gpu:model": "V100", "gpu:count": "2"}
    instance = types.SimpleNamespace(
        uuid="i-2", name="instance-2", hostname="gpu-1", display_name="gpu-1", key_data=None,
        metadata={}, flavor=types.SimpleNamespace(vcpus=40, memory_mb=393216, extra_specs=specs))
    driver._create(instance, None)
    assert driver._docker.containers.create.call_args.kwargs["labels"]["org.container-infra.sandbox.gpus"] == "2"
    _, archive = container.put_archive.call_args.args
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        text = tar.extractfile("etc/sandbox/gpus.tsv").read().decode()
    assert [line.split("\t")[2] for line in text.splitlines() if not line.startswith("#")] == [
        "Tesla V100-SXM2-32GB"] * 2
