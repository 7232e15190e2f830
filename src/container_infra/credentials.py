"""A cluster's credentials, as `openstack coe cluster config` writes them (module
os_container_infra_config, which makes them idempotent).

Kubernetes: a kubeconfig (``<dest>/config``) with the cluster's CA, and a client certificate for user
``admin`` (O=system:masters) signed by Magnum's per-cluster CA from a CSR made here; context
``default``.  Swarm: ``ca.pem``, ``cert.pem``, ``key.pem`` and ``env.sh`` (DOCKER_HOST,
DOCKER_CERT_PATH, DOCKER_TLS_VERIFY).  Private keys are written 0600.  A re-run leaves the files
alone while the CA in them is still the cluster's, the server address matches and the client
certificate is valid for another day; otherwise a new key and certificate are made.  Each file is
written atomically (a temporary file in the same directory, its mode set before the content, then
renamed over), the directory is 0700, and a mode changed since is put back on every run."""

from __future__ import annotations

import base64
import datetime
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import yaml

KUBECONFIG = "config"
SWARM_FILES = ("ca.pem", "cert.pem", "key.pem", "env.sh")
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
#: The credentials directory: only its owner lists or enters it.
DIR_MODE = 0o700


# ---------------------------------------------------------------------------------------- crypto
def ssh_fingerprint(public_key: str | None) -> str:
    """An OpenSSH public key's fingerprint as Nova shows a keypair's (MD5 of the key's blob, colon-hex);
    '' for no key or one that cannot be read."""
    import hashlib

    parts = str(public_key or "").split()
    if len(parts) < 2:
        return ""
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        return ""
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))



def make_key_and_csr(key_size: int = 2048, common_name: str = "admin",
                     organization: str | None = "system:masters") -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes)).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def cert_still_good(cert_pem: bytes, ca_pem: bytes, renew_before_days: int = 1) -> bool:
    """The client certificate is issued by this CA (signature checked) and valid for a while yet."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except Exception:
        return False
    not_after = cert.not_valid_after_utc
    return not_after - datetime.timedelta(days=renew_before_days) > datetime.datetime.now(datetime.timezone.utc)


def fingerprint(pem: bytes | None) -> str | None:
    if not pem:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------- files
def build_kubeconfig(cluster_name: str, server: str, ca_pem: bytes | None, cert_pem: bytes | None,
                     key_pem: bytes | None) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": server}
    user: dict[str, Any] = {}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    if cert_pem and key_pem:
        user = {"client-certificate-data": base64.b64encode(cert_pem).decode(),
                "client-key-data": base64.b64encode(key_pem).decode()}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": "admin", "user": user}],
        "contexts": [{"name": "default", "context": {"cluster": cluster_name, "user": "admin"}}],
        "current-context": "default",
        "preferences": {},
    }


def read_kubeconfig(path: Path) -> tuple[str | None, bytes | None, bytes | None]:
    """(server, CA pem, client cert pem) from an existing kubeconfig, or Nones."""
    try:
        data = yaml.safe_load(path.read_text())
        cluster = data["clusters"][0]["cluster"]
        user = data["users"][0]["user"]
        ca = base64.b64decode(cluster["certificate-authority-data"]) if cluster.get(
            "certificate-authority-data") else None
        cert = base64.b64decode(user["client-certificate-data"]) if user.get("client-certificate-data") else None
        return cluster.get("server"), ca, cert
    except (OSError, ValueError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return None, None, None


def file_modes(dest: Path, swarm: bool, tls: bool = True) -> dict[Path, int]:
    """Each credentials path (the directory first) and the mode it must have."""
    modes = {dest: DIR_MODE}
    if swarm:
        if tls:
            modes.update({dest / "ca.pem": PUBLIC_MODE, dest / "cert.pem": PUBLIC_MODE, dest / "key.pem": PRIVATE_MODE})
        modes[dest / "env.sh"] = PUBLIC_MODE
    else:
        modes[dest / KUBECONFIG] = PRIVATE_MODE
    return modes


def repair_modes(modes: dict[Path, int], apply: bool = True) -> list[str]:
    """Put back each existing path's mode; returns 'path: 0644 -> 0600' for each that was wrong."""
    repaired = []
    for path, mode in modes.items():
        try:
            have = path.lstat().st_mode & 0o7777
        except FileNotFoundError:
            continue
        if have != mode:
            repaired.append(f"{path}: {have:04o} -> {mode:04o}")
            if apply:
                os.chmod(path, mode)
    return repaired


def make_dir(path: Path) -> None:
    """The credentials directory, 0700 whatever the umask (and put back to it when it exists)."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o7777 != DIR_MODE:
        os.chmod(path, DIR_MODE)


def write_file(path: Path, content: bytes, mode: int) -> None:
    """Atomically, with the mode set before the content lands."""
    if not path.parent.is_dir():
        make_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def docker_env(api_address: str, dest: Path, tls: bool) -> dict[str, str]:
    env = {"DOCKER_HOST": api_address}
    if tls:
        env.update(DOCKER_CERT_PATH=str(dest), DOCKER_TLS_VERIFY="1")
    return env


def env_script(env: dict[str, str]) -> bytes:
    """``export NAME=value`` lines, each value quoted for the shell (the address comes from the cloud)."""
    return "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in env.items()).encode()


# ---------------------------------------------------------------------------------------- the module
def current_state(dest: Path, swarm: bool, tls: bool = True) -> dict[str, Any]:
    if swarm:
        ca = (dest / "ca.pem").read_bytes() if (dest / "ca.pem").exists() else None
        cert = (dest / "cert.pem").read_bytes() if (dest / "cert.pem").exists() else None
        env_text = (dest / "env.sh").read_text() if (dest / "env.sh").exists() else ""
        server = None
        for line in env_text.splitlines():
            if line.startswith("export DOCKER_HOST="):
                try:
                    server = " ".join(shlex.split(line.split("=", 1)[1]))
                except ValueError:
                    server = None  # not a line this module wrote: written again
        complete = all((dest / name).exists() for name in (SWARM_FILES if tls else ("env.sh",)))
        return {"server": server, "ca": ca, "cert": cert, "complete": complete}
    server, ca, cert = read_kubeconfig(dest / KUBECONFIG)
    return {"server": server, "ca": ca, "cert": cert, "complete": (dest / KUBECONFIG).exists()}


