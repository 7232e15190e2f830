"""The sandbox's image registry: Debian's docker-registry (the CNCF distribution registry) over TLS.

A real site runs a registry its clusters pull from (Magnum's ``container_infra_prefix`` label points
at it); the sandbox's sits on the storage network, at ``10.80.0.2:5000`` (``layout.STORAGE_SERVICE_ADDRESS``
on the network's host bridge, which every node plugged into that network reaches), and listens there
only: no debug listener, no other address. What it serves is built by ``container-infra sandbox images
build`` (``container_infra.sandbox.images``) from Debian packages: nothing is pulled from the internet.

Files, all under ``<sandbox dir>/etc/registry/`` (made once, kept across ``up``; ``reset`` wipes them):

* ``ca.crt`` / ``ca.key``: the sandbox's own CA (the key 0600), which the host's Docker (through
  ``/etc/docker/certs.d/10.80.0.2:5000/ca.crt``, read per request, no daemon restart) and every node's
  Docker engine (the compute driver writes it into the node before its first start) trust. No
  ``insecure-registries`` and no dockerd flag: a node's ``daemon.json`` stays the roles' to manage.
* ``server.crt`` / ``server.key``: the registry's certificate for the IP address it listens on,
  signed by that CA; made again when the address changes or it comes near its end.
* ``config.yml``: the registry's configuration; its blobs live in ``<sandbox dir>/data/registry``.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
from collections.abc import Iterable
from pathlib import Path

import yaml

from container_infra.sandbox.layout import REGISTRY_PORT, STORAGE_SERVICE_ADDRESS, Layout

BINARY = "/usr/bin/docker-registry"
# The registry as image names and Docker's certs.d name it.
REGISTRY = f"{STORAGE_SERVICE_ADDRESS}:{REGISTRY_PORT}"
# What Magnum's container_infra_prefix label and the roles' image variables start with in the sandbox.
NAMESPACE = "container-infra"
PREFIX = f"{REGISTRY}/{NAMESPACE}/"
HOST_CERTS_D = Path("/etc/docker/certs.d")

CA_NAME = "container-infra sandbox registry CA"
CA_DAYS = 3650
SERVER_DAYS = 825
# A server certificate closer than this to its end is made again at the next `up`.
RENEW_BEFORE = datetime.timedelta(days=30)


def directory(layout: Layout) -> Path:
    return layout.etc / "registry"


def config_path(layout: Layout) -> Path:
    return directory(layout) / "config.yml"


def ca_path(layout: Layout) -> Path:
    return directory(layout) / "ca.crt"


def data_dir(layout: Layout) -> Path:
    return layout.data / "registry"


def command(layout: Layout) -> list[str]:
    """The supervisor program's command line."""
    return [BINARY, "serve", str(config_path(layout))]


def render_config(layout: Layout, address: str = STORAGE_SERVICE_ADDRESS, port: int = REGISTRY_PORT) -> str:
    """The registry's config.yml: TLS on ``address:port`` only, filesystem storage, deletes allowed.

    ``http.debug`` is left out, so the registry opens no debug (pprof, metrics) listener at all.
    """
    etc = directory(layout)
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(data_dir(layout))},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {
            "addr": f"{address}:{port}",
            "net": "tcp",
            "tls": {"certificate": str(etc / "server.crt"), "key": str(etc / "server.key")},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    return yaml.safe_dump(config, sort_keys=False)


# --- TLS ------------------------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=mode, exist_ok=True)
    path.chmod(mode)
    path.write_bytes(data)


def _make_ca(etc: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(etc / "ca.key", _key_pem(key), 0o600)
    _write(etc / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _make_server(etc: Path, addresses: tuple[str, ...]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key((etc / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((etc / "ca.crt").read_bytes())
    key = _new_key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, addresses[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(etc / "server.key", _key_pem(key), 0o600)
    _write(etc / "server.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def certificate_addresses(path: Path) -> tuple[str, ...]:
    """The IP addresses a certificate's subjectAltName names."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return tuple(str(address) for address in names.get_values_for_type(x509.IPAddress))


def _server_is_current(etc: Path, addresses: tuple[str, ...]) -> bool:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    if not all((etc / name).exists() for name in ("server.crt", "server.key")):
        return False
    try:
        cert = x509.load_pem_x509_certificate((etc / "server.crt").read_bytes())
        ca = x509.load_pem_x509_certificate((etc / "ca.crt").read_bytes())
        ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                               ec.ECDSA(cert.signature_hash_algorithm))
        return (certificate_addresses(etc / "server.crt") == addresses
                and cert.not_valid_after_utc - RENEW_BEFORE > _now())
    except Exception:  # unreadable, another CA's, no SAN: make it again
        return False


def ensure_tls(etc: Path, addresses: Iterable[str] = (STORAGE_SERVICE_ADDRESS,)) -> list[Path]:
    """Make the CA (once) and a server certificate for ``addresses``; returns the files written."""
    addresses = tuple(addresses)
    written = []
    if not ((etc / "ca.crt").exists() and (etc / "ca.key").exists()):
        _make_ca(etc)
        written += [etc / "ca.crt", etc / "ca.key"]
    if not _server_is_current(etc, addresses):
        _make_server(etc, addresses)
        written += [etc / "server.crt", etc / "server.key"]
    return written


def write_files(layout: Layout, address: str = STORAGE_SERVICE_ADDRESS, port: int = REGISTRY_PORT) -> list[Path]:
    """The registry's TLS files and config.yml; returns those whose content changed (configs.write_all)."""
    etc = directory(layout)
    changed = ensure_tls(etc, (address,))
    config = config_path(layout)
    text = render_config(layout, address, port)
    if not config.exists() or config.read_text() != text:
        _write(config, text.encode(), 0o644)
        changed.append(config)
    data_dir(layout).mkdir(parents=True, exist_ok=True)
    return changed


# --- trust ----------------------------------------------------------------------------------------


def trust_on_host(ca_file: Path, registry: str = REGISTRY, certs_d: Path = HOST_CERTS_D) -> bool:
    """Make the host's Docker trust ``ca_file`` for ``registry``; returns whether anything changed.

    Docker reads ``certs.d/<host:port>/ca.crt`` at each pull and push: no restart, no daemon option.
    """
    if not ca_file.exists():
        raise RuntimeError(f"the sandbox's registry has no CA yet ({ca_file}); start the sandbox with "
                           "`container-infra sandbox up`")
    target = certs_d / registry / "ca.crt"
    if target.exists() and target.read_bytes() == ca_file.read_bytes():
        return False
    _write(target, ca_file.read_bytes(), 0o644)
    return True


def untrust_on_host(registry: str = REGISTRY, certs_d: Path = HOST_CERTS_D) -> bool:
    """Remove what ``trust_on_host`` wrote (``reset``: the next ``up`` makes a new CA)."""
    target = certs_d / registry
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True


# --- the registry's API ---------------------------------------------------------------------------

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
])


class RegistryDown(RuntimeError):
    """The registry does not answer."""


class Client:
    """The few calls of the registry's HTTP API (v2) the image builder needs, verified with the sandbox's CA."""

    def __init__(self, registry: str, ca_file: Path, timeout: float = 10):
        import requests

        self.base = f"https://{registry}/v2"
        self.registry = registry
        self.session = requests.Session()
        # Given with every request: a session's own `verify` loses to $REQUESTS_CA_BUNDLE in requests.
        self.verify = str(ca_file)
        self.timeout = timeout

    def _request(self, method: str, path: str, **kwargs):
        import requests

        try:
            return self.session.request(method, f"{self.base}{path}", timeout=self.timeout, verify=self.verify,
                                        **kwargs)
        except requests.exceptions.SSLError as error:
            raise RegistryDown(f"the registry at {self.registry} did not present a certificate of the sandbox's "
                               f"CA ({error}); run `container-infra sandbox up` to write its files again") from error
        except requests.RequestException as error:
            raise RegistryDown(f"the sandbox's registry does not answer at https://{self.registry}; start the "
                               "sandbox with `container-infra sandbox up`") from error

    def check(self) -> None:
        response = self._request("GET", "/")
        if response.status_code != 200:
            raise RegistryDown(f"the registry at {self.registry} answered {response.status_code} to /v2/; see "
                               "`container-infra sandbox logs registry`")

    def catalog(self) -> list[str]:
        """The repositories the registry holds."""
        response = self._request("GET", "/_catalog")
        response.raise_for_status()
        return response.json().get("repositories") or []

    def tags(self, repository: str) -> list[str]:
        response = self._request("GET", f"/{repository}/tags/list")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return response.json().get("tags") or []

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        response = self._request("HEAD", f"/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.headers.get("Docker-Content-Digest")

    def copy_tag(self, repository: str, source: str, target: str) -> None:
        """Point ``target`` at ``source``'s manifest (what ``docker tag`` and a push do, without the blobs)."""
        response = self._request("GET", f"/{repository}/manifests/{source}", headers={"Accept": MANIFEST_TYPES})
        response.raise_for_status()
        put = self._request("PUT", f"/{repository}/manifests/{target}", data=response.content,
                            headers={"Content-Type": response.headers["Content-Type"]})
        put.raise_for_status()
