"""os_container_infra_config: what `openstack coe cluster config` does, as an idempotent module.

Kubernetes: a kubeconfig (``<dest>/config``) with the cluster's CA, and a client certificate for user
``admin`` (O=system:masters) signed by Magnum's per-cluster CA from a CSR made here; context
``default``.  Swarm: ``ca.pem``, ``cert.pem``, ``key.pem`` and ``env.sh`` (DOCKER_HOST,
DOCKER_CERT_PATH, DOCKER_TLS_VERIFY).  Private keys are written 0600.  A re-run leaves the files
alone while the CA in them is still the cluster's, the server address matches and the client
certificate is valid for another day; otherwise a new key and certificate are made.
"""

from __future__ import annotations

import base64
import datetime
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from container_infra import magnum as mg
from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.module import ModuleFailure

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "cluster": {"type": "str", "required": True, "aliases": ["name"]},
    "dest": {"type": "path", "required": True, "aliases": ["dir"]},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "force": {"type": "bool", "default": False},
    "key_size": {"type": "int", "default": 2048},
    "renew_before_days": {"type": "int", "default": 1},
}

KUBECONFIG = "config"
SWARM_FILES = ("ca.pem", "cert.pem", "key.pem", "env.sh")
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


# ---------------------------------------------------------------------------------------- crypto
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


def write_file(path: Path, content: bytes, mode: int) -> None:
    """Atomically, with the mode set before the content lands."""
    path.parent.mkdir(parents=True, exist_ok=True)
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
    return "".join(f"export {k}={v}\n" for k, v in env.items()).encode()


# ---------------------------------------------------------------------------------------- the module
def current_state(dest: Path, swarm: bool, tls: bool = True) -> dict[str, Any]:
    if swarm:
        ca = (dest / "ca.pem").read_bytes() if (dest / "ca.pem").exists() else None
        cert = (dest / "cert.pem").read_bytes() if (dest / "cert.pem").exists() else None
        env_text = (dest / "env.sh").read_text() if (dest / "env.sh").exists() else ""
        server = None
        for line in env_text.splitlines():
            if line.startswith("export DOCKER_HOST="):
                server = line.split("=", 1)[1].strip()
        complete = all((dest / name).exists() for name in (SWARM_FILES if tls else ("env.sh",)))
        return {"server": server, "ca": ca, "cert": cert, "complete": complete}
    server, ca, cert = read_kubeconfig(dest / KUBECONFIG)
    return {"server": server, "ca": ca, "cert": cert, "complete": (dest / KUBECONFIG).exists()}


def run(module, cloud) -> dict[str, Any]:
    params = module.params
    dest = Path(params["dest"]).expanduser()
    name = params["cluster"]
    if params["key_size"] < 2048:
        raise ModuleFailure(f"key_size must be 2048 or more, not {params['key_size']}")
    magnum = cloud.magnum()

    if params["state"] == "absent":
        present = [p for p in [dest / KUBECONFIG, *(dest / n for n in SWARM_FILES)] if p.exists()]
        if present and not module.check_mode:
            for path in present:
                path.unlink()
        return {"changed": bool(present), "removed": [str(p) for p in present],
                "diff": {"before": {"files": [str(p) for p in present]}, "after": {"files": []}}}

    brief = mg.find_cluster(magnum, name)
    if brief is None:
        raise CloudError(f"writing the credentials of cluster {name} failed: there is no such cluster in this "
                         "project; check the name (os_container_infra state: query lists it)")
    cluster = mg.get_cluster(magnum, brief["uuid"])
    if not cluster.get("api_address"):
        raise CloudError(
            f"writing the credentials of cluster {name} failed: it has no API address yet (status "
            f"{cluster.get('status')}); wait until it is CREATE_COMPLETE (os_container_infra waits), then run again")
    try:
        template = mg.info(magnum.cluster_templates.get(cluster["cluster_template_id"]))
    except Exception as exc:
        raise explain(exc, "reading", f"the template of cluster {name}") from exc
    coe = template.get("coe") or "kubernetes"
    tls = not template.get("tls_disabled")
    api_address = cluster["api_address"]
    # A Docker API (tcp://...:2376) is a Swarm whatever the COE says: Magnum from 2024.1 accepts only
    # "kubernetes" for new templates, so a swarm-mode driver named by the template's `driver` keeps it.
    swarm = coe in ("swarm", "swarm-mode") or str(api_address).startswith("tcp://")

    ca_pem = None
    if tls:
        try:
            ca_pem = mg.info(magnum.certificates.get(cluster["uuid"])).get("pem", "").encode()
        except Exception as exc:
            raise explain(exc, "reading", f"the CA certificate of cluster {name}") from exc

    have = current_state(dest, swarm, tls)
    up_to_date = (
        not params["force"] and have["complete"] and have["server"] == api_address
        and (not tls or (have["ca"] == ca_pem and have["cert"] is not None
                         and cert_still_good(have["cert"], ca_pem, params["renew_before_days"])))
    )
    files = [str(dest / n) for n in ((SWARM_FILES if tls else ("env.sh",)) if swarm else (KUBECONFIG,))]
    env = docker_env(api_address, dest, tls) if swarm else {"KUBECONFIG": str(dest / KUBECONFIG)}
    result: dict[str, Any] = {
        "changed": not up_to_date,
        "coe": coe,
        "dest": str(dest),
        "files": files,
        "env": env,
        "api_address": api_address,
        "ca_fingerprint": fingerprint(ca_pem),
        "diff": {"before": {"server": have["server"], "ca_fingerprint": fingerprint(have["ca"]),
                            "files_present": have["complete"]},
                 "after": {"server": api_address, "ca_fingerprint": fingerprint(ca_pem), "files_present": True}},
    }
    if swarm:
        result["kubeconfig"] = None
    else:
        result["kubeconfig"] = str(dest / KUBECONFIG)
    if up_to_date or module.check_mode:
        return result

    cert_pem = key_pem = None
    if tls:
        key_pem, csr_pem = make_key_and_csr(params["key_size"], "admin", None if swarm else "system:masters")
        try:
            signed = magnum.certificates.create(cluster_uuid=cluster["uuid"], csr=csr_pem.decode())
        except Exception as exc:
            raise explain(exc, "signing", f"a client certificate for cluster {name}") from exc
        cert_pem = mg.info(signed).get("pem", "").encode()
    dest.mkdir(parents=True, exist_ok=True)
    if swarm:
        if tls:
            write_file(dest / "ca.pem", ca_pem, PUBLIC_MODE)
            write_file(dest / "cert.pem", cert_pem, PUBLIC_MODE)
            write_file(dest / "key.pem", key_pem, PRIVATE_MODE)
        write_file(dest / "env.sh", env_script(env), PUBLIC_MODE)
    else:
        config = build_kubeconfig(cluster["name"], api_address, ca_pem, cert_pem, key_pem)
        write_file(dest / KUBECONFIG, yaml.safe_dump(config, default_flow_style=False).encode(), PRIVATE_MODE)
    return result
