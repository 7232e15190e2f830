"""The Docker-backed nodes' CLI side, without Docker: node image recipe, configuration, zones, cleanup."""

from __future__ import annotations

import configparser
import subprocess

import pytest

from container_infra.sandbox import configs, manager, nodeimage, nodes, supervisor
from container_infra.sandbox.layout import Layout

SECRETS = {name: f"pw-{name}" for name in ["database", "rabbit", "admin", "demo", "heat_domain_admin"]} | {
    f"service_{user}": f"pw-{user}" for user in configs.SERVICE_USERS
}


@pytest.fixture
def layout(tmp_path) -> Layout:
    return Layout(tmp_path / "sandbox")


def test_mirror_from_deb822_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    mirrors = nodeimage.mirrors_from_apt(tmp_path)
    assert nodeimage.Mirror("http://mirror.example/debian", "bookworm") in mirrors
    assert nodeimage.choose_mirror(mirrors) == nodeimage.Mirror("http://mirror.example/debian", "bookworm")


def test_mirror_from_one_line_sources(tmp_path):
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian trixie main\n"
    )
    mirror = nodeimage.choose_mirror(nodeimage.mirrors_from_apt(tmp_path))
    assert mirror == nodeimage.Mirror("http://mirror.example/debian", "trixie")


def test_no_mirror_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="no Debian archive"):
        nodeimage.choose_mirror(nodeimage.mirrors_from_apt(tmp_path))


def test_image_tag_follows_the_recipe(monkeypatch):
    tag = nodeimage.image_tag("bookworm")
    assert tag == nodeimage.image_tag("bookworm")
    assert tag.startswith(f"{nodeimage.IMAGE_REPOSITORY}:bookworm-")
    assert nodeimage.image_tag("trixie") != tag
    monkeypatch.setattr(nodeimage, "PACKAGES", (*nodeimage.PACKAGES, "vim"))
    assert nodeimage.image_tag("bookworm") != tag


def test_image_recipe_has_what_nodes_need():
    for package in ("openssh-server", "python3", "sudo", "iproute2", "iputils-ping", "docker.io"):
        assert package in nodeimage.PACKAGES
    # FUSE clients of the shared file systems (nodes get /dev/fuse), without Ceph's daemons.
    for package in ("ceph-fuse", "glusterfs-client", "fuse3"):
        assert package in nodeimage.PACKAGES
    assert not [package for package in nodeimage.PACKAGES if package in ("ceph", "ceph-mon", "ceph-osd", "ceph-common")]
    assert set(nodeimage.USERS) == {"core", "ubuntu"}
    assert "NOPASSWD:ALL" in nodeimage.SETUP_SCRIPT
    assert "exec /usr/sbin/sshd -D" in nodeimage.INIT_SCRIPT


def test_existing_image_is_reused(monkeypatch):
    monkeypatch.setattr(nodeimage, "mirrors_from_apt", lambda: [nodeimage.Mirror("http://m/debian", "bookworm")])
    monkeypatch.setattr(nodeimage, "image_exists", lambda tag: True)
    monkeypatch.setattr(nodeimage, "_debootstrap_and_import", lambda *a: pytest.fail("rebuilt"))
    assert nodeimage.build(lambda message: None) == (nodeimage.image_tag("bookworm"), None)


def parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def test_docker_compute_has_its_own_host_identity_and_driver(layout):
    fake = parse(configs.render_ini(configs.nova_compute(layout, SECRETS)))
    docker = parse(configs.render_ini(configs.nova_compute_docker(layout, SECRETS)))
    assert docker["DEFAULT"]["host"] == configs.DOCKER_COMPUTE_HOST != fake["DEFAULT"]["host"]
    assert docker["DEFAULT"]["compute_driver"] == "container_infra_sandbox.SandboxDockerDriver"
    # Two nova-computes must not share a node identity file (state_path/compute_id) or locks.
    assert docker["DEFAULT"]["state_path"] != fake["DEFAULT"]["state_path"]
    assert docker["oslo_concurrency"]["lock_path"] != fake["oslo_concurrency"]["lock_path"]
    assert "database" not in docker
    # Zones keep zone-less servers off the Docker host; it never has to refuse a build.
    assert "require_zone" not in docker["sandbox_docker"]


def test_docker_programs_are_supervised_and_restart_alone(layout):
    programs = {program.name: program for program in supervisor.programs(layout)}
    assert "nova-compute-docker.conf" in " ".join(programs["nova-compute-docker"].command)
    assert "container_infra_sandbox.fipforward" in programs["fip-forwarder"].command
    changed = [layout.etc / "nova" / "nova-compute-docker.conf", layout.etc / "fipforward.json"]
    assert manager.programs_reading(layout, changed) == ["fip-forwarder", "nova-compute-docker"]
    # nova.conf is read by every nova program but nova-compute's own files.
    assert "nova-api" in manager.programs_reading(layout, [layout.etc / "nova" / "nova.conf"])


def test_forwarder_config_reaches_neutrons_database():
    config = configs.fip_forwarder_config(SECRETS)
    assert config["database"]["name"] == "neutron"
    assert config["database"]["host"].startswith("127.")
    assert 22 in config["ports"] and 2376 in config["ports"]


class FakeHost:
    """The host as `docker` and `ip` see it, with what cleanup ran."""

    def __init__(self, containers, links, rules=1):
        self.containers, self.links, self.rules, self.calls = list(containers), list(links), rules, []

    def __call__(self, args):
        args = list(args)
        self.calls.append(args)
        out, rc = "", 0
        if args[:2] == ["docker", "ps"]:
            out = "".join(f"{c}\n" for c in self.containers)
        elif args[:2] == ["docker", "rm"]:
            self.containers = [c for c in self.containers if c not in args]
        elif args[:4] == ["ip", "-o", "link", "show"]:
            names = ["lo", "eth0", "docker0", *self.links]
            out = "".join(f"{i}: {name}@if9: <BROADCAST> mtu 1500\n" for i, name in enumerate(names, 1))
        elif args[:3] == ["ip", "link", "del"]:
            rc = 0 if args[3] in self.links else 1
            self.links = [name for name in self.links if name != args[3]]
        elif args[:2] == ["iptables", "-D"]:
            rc = 0 if self.rules else 1
            self.rules = max(self.rules - 1, 0)
        return subprocess.CompletedProcess(args, rc, out, "")


def test_cleanup_leaves_no_container_link_or_rule():
    host = FakeHost(["c1", "c2"], ["sbx-v0123456789", "sbx-b0123456789", "sbx-vabcdefabcd"], rules=2)
    removed = nodes.cleanup(host)
    assert removed["containers"] == ["c1", "c2"]
    assert removed["links"][0] == "sbx-b0123456789"  # bridges first
    assert host.containers == [] and host.links == [] and host.rules == 0
    # Only the sandbox's own links: never lo, eth0 or docker0.
    deleted = [call[3] for call in host.calls if call[:3] == ["ip", "link", "del"]]
    assert all(name.startswith(nodes.LINK_PREFIX) for name in deleted)
    assert ["docker", "ps", "-aq", "--filter", f"label={nodes.NODE_LABEL}"] in host.calls


def test_cleanup_on_a_clean_host_does_nothing():
    host = FakeHost([], [], rules=0)
    assert nodes.cleanup(host) == {"containers": [], "links": []}
    assert not [call for call in host.calls if call[:2] == ["docker", "rm"]]


def test_down_cleans_up_the_nodes(layout, monkeypatch):
    calls = []
    monkeypatch.setattr(manager.Supervisor, "shutdown", lambda self: calls.append("shutdown"))
    monkeypatch.setattr(manager, "kill_strays", lambda layout: [])
    monkeypatch.setattr(manager.nodes, "cleanup", lambda: calls.append("cleanup"))
    manager.down(layout)
    assert calls == ["shutdown", "cleanup"]


class FakeCompute:
    def __init__(self, aggregates=(), hosts=("sandbox-docker-1", "sandbox-compute-1")):
        self.aggregates_ = {a.name: a for a in aggregates}
        self.hosts = hosts

    def aggregates(self):
        return list(self.aggregates_.values())

    def services(self, host, binary):
        return [object()] if host in self.hosts else []

    def create_aggregate(self, name, availability_zone):
        aggregate = type("Aggregate", (), {"name": name, "availability_zone": availability_zone, "hosts": []})()
        self.aggregates_[name] = aggregate
        return aggregate

    def update_aggregate(self, aggregate, availability_zone):
        aggregate.availability_zone = availability_zone
        return aggregate

    def add_host_to_aggregate(self, aggregate, host):
        aggregate.hosts.append(host)

    def remove_host_from_aggregate(self, aggregate, host):
        aggregate.hosts.remove(host)


def test_zones_put_each_host_in_its_aggregate(monkeypatch):
    compute = FakeCompute()
    conn = type("Conn", (), {"compute": compute})()
    monkeypatch.setattr(nodes, "DOCKER_ZONE", "nova")
    monkeypatch.setattr(nodes, "FAKE_ZONE", "scale")
    nodes.ensure_zones(conn, lambda message: None)
    assert compute.aggregates_["sandbox-docker"].hosts == ["sandbox-docker-1"]
    assert compute.aggregates_["sandbox-docker"].availability_zone == "nova"
    assert compute.aggregates_["sandbox-scale"].hosts == ["sandbox-compute-1"]
    assert compute.aggregates_["sandbox-scale"].availability_zone == "scale"
    # Idempotent, and moving back takes the fake host out of its zone.
    monkeypatch.setattr(nodes, "FAKE_ZONE", None)
    nodes.ensure_zones(conn, lambda message: None)
    assert compute.aggregates_["sandbox-docker"].hosts == ["sandbox-docker-1"]
    assert compute.aggregates_["sandbox-scale"].hosts == []


def test_zones_wait_for_an_unregistered_host_without_failing(monkeypatch):
    compute = FakeCompute(hosts=("sandbox-compute-1",))
    messages = []
    nodes.ensure_zones(type("Conn", (), {"compute": compute})(), messages.append, timeout=0)
    assert "sandbox-docker" not in compute.aggregates_
    assert any("has not registered" in message for message in messages)


def test_reconcile_removes_containers_of_servers_nova_forgot():
    calls = []

    def run(args):
        calls.append(list(args))
        out = "c1 server-a\nc2 server-gone\n" if args[:2] == ["docker", "ps"] else ""
        return subprocess.CompletedProcess(args, 0, out, "")

    server = type("Server", (), {"id": "server-a"})()
    compute = type("Compute", (), {"servers": lambda self, **query: [server]})()
    conn = type("Conn", (), {"compute": compute})()
    assert nodes.reconcile_containers(conn, lambda message: None, run) == ["c2"]
    assert ["docker", "rm", "--force", "--volumes", "c2"] in calls


def test_default_zone_follows_the_zone_switch(layout, monkeypatch):
    assert configs.nova(layout, SECRETS)["DEFAULT"]["default_schedule_zone"] == nodes.FAKE_ZONE
    monkeypatch.setattr(nodes, "DEFAULT_ZONE", nodes.DOCKER_ZONE)
    assert configs.nova(layout, SECRETS)["DEFAULT"]["default_schedule_zone"] == nodes.DOCKER_ZONE
    assert "require_zone" not in configs.nova_compute_docker(layout, SECRETS)["sandbox_docker"]


def test_cleanup_without_docker_or_iptables(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError(args[0][0])

    monkeypatch.setattr(nodes.subprocess, "run", missing)
    assert nodes.cleanup() == {"containers": [], "links": []}
