"""The sandbox's set-up logic, without running any service."""

from __future__ import annotations

import configparser
import re
import stat
from pathlib import Path

import pytest
import yaml

from container_infra.sandbox import bootstrap, clouds, configs, seed, supervisor
from container_infra.sandbox.layout import APIS, Layout

SECRETS = {name: f"pw-{name}" for name in ["database", "rabbit", "admin", "demo", "heat_domain_admin"]} | {
    f"service_{user}": f"pw-{user}" for user in configs.SERVICE_USERS
}


@pytest.fixture
def layout(tmp_path) -> Layout:
    return Layout(tmp_path / "sandbox")


def parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def test_ports_are_distinct_and_public_differs_from_internal():
    ports = [api.public_port for api in APIS] + [api.internal_port for api in APIS]
    assert len(ports) == len(set(ports))
    for api in APIS:
        assert api.url("public") != api.url("internal")
        assert api.url("public").startswith("http://127.0.0.1:")


@pytest.mark.parametrize("service,files", list(configs.CONFIG_FILES.items()))
def test_every_service_talks_to_keystone_internally(layout, service, files):
    for renderer in files.values():
        conf = parse(configs.render_ini(renderer(layout, SECRETS)))
        if conf.has_section("keystone_authtoken"):
            assert conf["keystone_authtoken"]["auth_url"] == "http://127.0.0.1:25000/v3"
            assert conf["keystone_authtoken"]["www_authenticate_uri"] == "http://127.0.0.1:5000/v3"
        for section in conf.sections():
            for value in conf[section].values():
                # Nothing in a service's config may point at an address off loopback.
                assert "://" not in value or "127.0.0.1" in value or value.startswith("mysql+pymysql://openstack")


def test_nova_compute_gets_no_database(layout):
    compute = parse(configs.render_ini(configs.nova_compute(layout, SECRETS)))
    api = parse(configs.render_ini(configs.nova(layout, SECRETS)))
    assert api.has_section("database") and api.has_section("api_database")
    assert not compute.has_section("database") and not compute.has_section("api_database")


def test_neutron_physnet_mtus_allow_jumbo_and_ipoib_connected(layout):
    neutron = parse(configs.render_ini(configs.neutron(layout, SECRETS)))
    mtus = dict(item.split(":") for item in neutron["ml2"]["physical_network_mtus"].split(","))
    assert int(mtus["hte"]) >= 9000
    assert int(mtus["lln"]) >= seed.IPOIB_MTU["connected"]
    assert neutron["ml2"]["mechanism_drivers"] == "sandbox_bindall"


def test_config_files_are_private_and_rewritten_only_on_change(layout):
    layout.venv.joinpath("etc").mkdir(parents=True)
    for service, names in configs.PASTE_FILES.items():
        for name in names:
            path = layout.venv / "etc" / service / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("[pipeline:main]\n")
    first = configs.write_all(layout, SECRETS)
    assert layout.etc / "nova" / "nova.conf" in first
    mode = stat.S_IMODE((layout.etc / "nova" / "nova.conf").stat().st_mode)
    assert mode == 0o600
    assert configs.write_all(layout, SECRETS) == []
    changed = configs.write_all(layout, SECRETS | {"database": "other"})
    assert layout.etc / "nova" / "nova.conf" in changed


def test_secrets_are_generated_once_and_private(layout):
    first = bootstrap.load_or_create_secrets(layout)
    assert stat.S_IMODE(layout.secrets_file.stat().st_mode) == 0o600
    assert bootstrap.load_or_create_secrets(layout) == first
    assert len(set(first.values())) == len(first)


def test_keystone_bootstrap_takes_the_admin_password_from_its_environment_not_its_argv(layout, monkeypatch):
    """A generated password may begin with "-" (keystone-manage's argparse took one for an option and `up`
    failed), and an argv shows in `ps` and in a failure's message."""
    calls = []
    monkeypatch.setattr(bootstrap.subprocess, "run", lambda argv, **kw: calls.append((argv, kw.get("env") or {})))
    (layout.etc / "keystone" / "fernet-keys" / "0").mkdir(parents=True)
    (layout.etc / "keystone" / "credential-keys" / "0").mkdir(parents=True)
    bootstrap._keystone_bootstrap(layout, SECRETS | {"admin": "-flcB2C5QT3cOZcvUCdObMSM"})
    [(argv, env)] = calls
    assert "bootstrap" in argv and not any("flcB2C5" in arg for arg in argv)
    assert env["OS_BOOTSTRAP_PASSWORD"] == "-flcB2C5QT3cOZcvUCdObMSM"


def test_clouds_yaml_keeps_other_clouds_and_is_private(tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"production": {"auth": {"auth_url": "https://keystone.example"}}}}))
    clouds.write_clouds({"admin": "a", "demo": "d"}, path)
    document = yaml.safe_load(path.read_text())
    assert set(document["clouds"]) == {"production", "sandbox", "sandbox-admin"}
    assert document["clouds"]["sandbox"]["auth"]["username"] == "demo"
    assert document["clouds"]["sandbox"]["auth"]["auth_url"] == "http://127.0.0.1:5000/v3"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    clouds.remove_clouds(path)
    assert set(yaml.safe_load(path.read_text())["clouds"]) == {"production"}


def test_clouds_yaml_location_follows_os_client_config_file(monkeypatch, tmp_path):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "elsewhere.yaml"))
    assert clouds.clouds_file() == tmp_path / "elsewhere.yaml"


def test_shipped_seed_is_valid_and_names_what_the_plugins_expect(layout):
    data = seed.load_seed(layout.source / "seed.yaml")
    networks = {network["name"]: network for network in data["networks"]}
    assert {"public", "private", "hte", "lln"} <= set(networks)
    assert networks["public"]["subnets"][0]["cidr"].startswith("127.42.")
    assert seed.network_mtu(networks["hte"]) == 9000
    assert seed.network_mtu(networks["lln"]) in seed.IPOIB_MTU.values()
    assert networks["lln"]["subnets"][0]["enable_dhcp"] is False
    gpu = [flavor for flavor in data["flavors"] if "gpu:count" in flavor.get("extra_specs", {})]
    assert gpu and all(flavor["ram"] >= 2048 for flavor in data["flavors"])
    images = {image["name"]: image["properties"] for image in data["images"]}
    assert images["ubuntu-capi-sandbox"]["magnum_driver"] == "sandbox_k8s_capi"
    assert all("os_distro" in props and "os_admin_user" in props for props in images.values())


@pytest.mark.parametrize(
    "text,message",
    [
        ("networks: [{name: lln, ipoib_mode: bogus}]", "use datagram or connected"),
        ("- just a list", "must hold a mapping"),
        ("networks: [unclosed", "is not valid YAML"),
    ],
)
def test_bad_seed_files_get_one_clear_sentence(tmp_path, text, message):
    path = tmp_path / "seed.yaml"
    path.write_text(text)
    with pytest.raises(seed.SeedError, match=message):
        seed.load_seed(path)


def test_supervisor_programs_carry_the_marker_and_escalate_to_kill(layout):
    conf = parse(supervisor.render_conf(layout))
    programs = [section for section in conf.sections() if section.startswith("program:")]
    assert len(programs) == len(supervisor.programs(layout))
    for section in programs:
        options = conf[section]
        assert f'CONTAINER_INFRA_SANDBOX_DIR="{layout.root}"' in options["environment"]
        assert options["killasgroup"] == "true" and int(options["stopwaitsecs"]) > 0
        assert options["autorestart"] == "false"


def test_sandbox_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CONTAINER_INFRA_SANDBOX_DIR", str(tmp_path / "x"))
    assert Layout.default().root == tmp_path / "x"
    monkeypatch.delenv("CONTAINER_INFRA_SANDBOX_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert Layout.default().root == tmp_path / "data" / "container-infra" / "sandbox"


def test_a_changed_config_restarts_exactly_its_readers(layout):
    from container_infra.sandbox.manager import programs_reading

    # Every program of a service directory restarts: they share its files (policy, paste).
    assert programs_reading(layout, [layout.etc / "nova" / "nova.conf"]) == [
        "nova-api", "nova-compute", "nova-compute-docker", "nova-conductor", "nova-scheduler"
    ]
    assert programs_reading(layout, [layout.etc / "keystone" / "keystone.conf"]) == ["keystone"]
    assert programs_reading(layout, [layout.etc / "faultproxy.json"]) == ["fault-proxy"]
    assert programs_reading(layout, []) == []


def test_services_keep_idle_connections_longer_than_the_fault_proxy_pools_them(layout):
    """Otherwise the proxy can send a POST on a connection gunicorn is closing, and answer 502."""
    source = (Path(__file__).resolve().parents[2] / "sandbox/container_infra_sandbox/faultproxy.py").read_text()
    pooled = int(re.search(r"^UPSTREAM_KEEPALIVE_S = (\d+)$", source, re.MULTILINE).group(1))
    parser = parse(supervisor.render_conf(layout))
    commands = [parser[s]["command"].split() for s in parser.sections() if "gunicorn" in parser[s].get("command", "")]
    assert len(commands) == len(APIS)  # every API is served by gunicorn
    for command in commands:
        assert int(command[command.index("--keep-alive") + 1]) > pooled, command


def test_every_program_keeps_its_marker_readable(layout):
    """setproctitle writes process titles over /proc/PID/environ unless SPT_NOENV is set; the marker
    there is how down, reset and crash recovery find the sandbox's processes."""
    parser = parse(supervisor.render_conf(layout))
    programs = [s for s in parser.sections() if s.startswith("program:")]
    assert len(programs) == len(supervisor.programs(layout))
    for section in programs:
        environment = parser[section]["environment"]
        assert 'SPT_NOENV="1"' in environment and supervisor.MARKER_ENV in environment, section
