"""The sandbox's image registry without starting it: its configuration, TLS, trust and API client."""

from __future__ import annotations

import http.server
import ipaddress
import json
import socket
import ssl
import stat
import threading

import pytest
import yaml

from container_infra.sandbox import configs, manager, registry, supervisor
from container_infra.sandbox.layout import REGISTRY_PORT, STORAGE_CIDR, STORAGE_SERVICE_ADDRESS, Layout

SECRETS = {name: f"pw-{name}" for name in ["database", "rabbit", "admin", "demo", "heat_domain_admin"]} | {
    f"service_{user}": f"pw-{user}" for user in configs.SERVICE_USERS
}


@pytest.fixture
def layout(tmp_path) -> Layout:
    return Layout(tmp_path / "sandbox")


def test_registry_listens_on_the_storage_address_only_over_tls(layout):
    config = yaml.safe_load(registry.render_config(layout))
    assert config["http"]["addr"] == f"{STORAGE_SERVICE_ADDRESS}:{REGISTRY_PORT}" == registry.REGISTRY
    # The storage network's service address: on a bridge of the sandbox's own, never a host address.
    assert ipaddress.ip_address(STORAGE_SERVICE_ADDRESS) in ipaddress.ip_network(STORAGE_CIDR)
    # No debug listener (pprof, metrics) at all, and no other address.
    assert "debug" not in config["http"]
    assert config["http"]["tls"] == {"certificate": str(layout.etc / "registry" / "server.crt"),
                                     "key": str(layout.etc / "registry" / "server.key")}
    assert config["storage"]["filesystem"]["rootdirectory"] == str(layout.data / "registry")
    assert config["storage"]["delete"]["enabled"] is True
    assert "auth" not in config


def test_files_are_made_once_with_private_keys_and_a_certificate_for_the_address(layout):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    written = registry.write_files(layout)
    etc = layout.etc / "registry"
    assert set(written) == {etc / name for name in ("ca.crt", "ca.key", "server.crt", "server.key", "config.yml")}
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((etc / key).stat().st_mode) == 0o600
    assert registry.certificate_addresses(etc / "server.crt") == (STORAGE_SERVICE_ADDRESS,)
    ca = x509.load_pem_x509_certificate((etc / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((etc / "server.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes, ec.ECDSA(server.signature_hash_algorithm))
    assert (layout.data / "registry").is_dir()
    # A second `up` writes nothing, so the registry is not restarted.
    assert registry.write_files(layout) == []


def test_a_new_address_gets_a_new_server_certificate_from_the_same_ca(layout):
    registry.write_files(layout)
    ca = (layout.etc / "registry" / "ca.crt").read_bytes()
    changed = registry.write_files(layout, address="10.80.0.3")
    assert layout.etc / "registry" / "ca.crt" not in changed
    assert (layout.etc / "registry" / "ca.crt").read_bytes() == ca
    assert registry.certificate_addresses(layout.etc / "registry" / "server.crt") == ("10.80.0.3",)
    assert registry.config_path(layout) in changed


def test_a_server_certificate_of_another_ca_is_made_again(layout, tmp_path):
    registry.write_files(layout)
    other = tmp_path / "other"
    registry.ensure_tls(other)
    (layout.etc / "registry" / "server.crt").write_bytes((other / "server.crt").read_bytes())
    assert layout.etc / "registry" / "server.crt" in registry.write_files(layout)


def test_registry_is_a_phase_3_program_restarted_when_its_files_change(layout):
    programs = {program.name: program for program in supervisor.programs(layout)}
    program = programs["registry"]
    assert program.phase == 3
    assert program.command == ["/usr/bin/docker-registry", "serve", str(layout.etc / "registry" / "config.yml")]
    for name in ("config.yml", "server.crt", "ca.crt"):
        assert manager.programs_reading(layout, [layout.etc / "registry" / name]) == ["registry"]


def test_docker_nodes_are_told_the_registry_and_its_ca(layout):
    section = configs.nova_compute_docker(layout, SECRETS)["sandbox_docker"]
    assert section["registry"] == f"{STORAGE_SERVICE_ADDRESS}:{REGISTRY_PORT}"
    assert section["registry_ca_file"] == str(layout.etc / "registry" / "ca.crt")


def test_host_docker_trusts_the_ca_through_certs_d(layout, tmp_path):
    certs_d = tmp_path / "certs.d"
    with pytest.raises(RuntimeError, match="container-infra sandbox up"):
        registry.trust_on_host(registry.ca_path(layout), certs_d=certs_d)
    registry.write_files(layout)
    assert registry.trust_on_host(registry.ca_path(layout), certs_d=certs_d)
    target = certs_d / "10.80.0.2:5000" / "ca.crt"
    assert target.read_bytes() == registry.ca_path(layout).read_bytes()
    assert not registry.trust_on_host(registry.ca_path(layout), certs_d=certs_d)
    assert registry.untrust_on_host(certs_d=certs_d)
    assert not (certs_d / "10.80.0.2:5000").exists()
    assert not registry.untrust_on_host(certs_d=certs_d)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_registry_that_does_not_answer_is_one_sentence(layout):
    registry.write_files(layout)
    client = registry.Client(f"127.0.0.1:{_free_port()}", registry.ca_path(layout), timeout=2)
    with pytest.raises(registry.RegistryDown, match=r"start the sandbox with `container-infra sandbox up`"):
        client.check()


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """The registry API's answers the image builder reads."""

    manifests: dict = {}  # noqa: RUF012

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v2/":
            self._send(200, b"{}")
        elif self.path == "/v2/container-infra/base/tags/list":
            self._send(200, json.dumps({"name": "container-infra/base", "tags": sorted(self.manifests)}).encode())
        elif self.path.startswith("/v2/container-infra/base/manifests/"):
            ref = self.path.rsplit("/", 1)[1]
            if ref in self.manifests:
                headers = [("Content-Type", "application/vnd.docker.distribution.manifest.v2+json"),
                           ("Docker-Content-Digest", f"sha256:{ref}")]
                self._send(200, self.manifests[ref], headers)
            else:
                self._send(404)
        else:
            self._send(404, b'{"errors": [{"code": "NAME_UNKNOWN"}]}')

    do_HEAD = do_GET

    def do_PUT(self):
        ref = self.path.rsplit("/", 1)[1]
        self.manifests[ref] = self.rfile.read(int(self.headers["Content-Length"]))
        self._send(201)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """An HTTPS server on loopback with a certificate of the sandbox's own CA for 127.0.0.1."""
    etc = tmp_path / "tls"
    registry.ensure_tls(etc, ("127.0.0.1",))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(etc / "server.crt", etc / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    FakeRegistry.manifests = {"abc": b'{"schemaVersion": 2}'}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # The machine's CA bundle in the environment must not replace the sandbox's CA (requests prefers it).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca-bundle.crt")
    yield f"127.0.0.1:{server.server_address[1]}", etc / "ca.crt"
    server.shutdown()
    server.server_close()


def test_client_verifies_the_registry_with_the_sandbox_ca(fake_registry, tmp_path):
    address, ca = fake_registry
    client = registry.Client(address, ca)
    client.check()
    assert client.tags("container-infra/base") == ["abc"]
    assert client.tags("container-infra/nothing") == []
    assert client.manifest_digest("container-infra/base", "abc") == "sha256:abc"
    assert client.manifest_digest("container-infra/base", "latest") is None
    client.copy_tag("container-infra/base", "abc", "latest")
    assert FakeRegistry.manifests["latest"] == FakeRegistry.manifests["abc"]
    # Another CA's certificate is refused, with what to do.
    registry.ensure_tls(tmp_path / "other")
    with pytest.raises(registry.RegistryDown, match="certificate of the sandbox's CA"):
        registry.Client(address, tmp_path / "other" / "ca.crt").check()
