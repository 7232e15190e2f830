"""BeeGFS client configuration per major version (7.4 and 8), rendered for the storage role.

What differs between the two, from BeeGFS's own release notes and the client's option parser:

* 7.4: the client logs through, and resolves host names with, the helper daemon ``beegfs-helperd``
  (its own ``beegfs-helperd.conf``, which needs the same ``connAuthFile``; the client's ``logType = helperd``
  and ``connHelperdPortTCP``); the management ports are set per transport (``connMgmtdPortUDP``,
  ``connMgmtdPortTCP``); the authentication file has no default path.
* 8: no helper daemon (the package and its keys are gone: the client logs to the journal, a mount script
  resolves names); one port per component for TCP and UDP (``connMgmtdPort``); the authentication file
  defaults to ``/etc/beegfs/conn.auth``; the management service speaks gRPC/TLS to the ``beegfs`` tool (not
  to the kernel client, so the client needs no certificate).

Both: ``sysMgmtdHost``, ``connClientPortUDP``, ``connAuthFile`` (the shared secret, 0400 root),
``connDisableAuthentication``, ``connInterfacesFile`` (interfaces to use, in order of preference),
``connUseRDMA`` and ``connRDMAInterfacesFile`` (the RDMA-capable interfaces, for multi-rail), and
``beegfs-mounts.conf`` (``<mount point> <client config>`` per line, read by the ``beegfs-client`` service).
The kernel module is built for the running kernel by DKMS (package ``beegfs-client-dkms``).
"""

from __future__ import annotations

from typing import Any

VERSIONS = ("7.4", "8")
CONF_DIR = "/etc/beegfs"
DEFAULT_AUTH_FILE = {"7.4": f"{CONF_DIR}/connauthfile", "8": f"{CONF_DIR}/conn.auth"}
PACKAGES = {"7.4": ["beegfs-client-dkms", "beegfs-helperd", "beegfs-utils"],
            "8": ["beegfs-client-dkms", "beegfs-tools"]}
SERVICES = {"7.4": ["beegfs-helperd", "beegfs-client"], "8": ["beegfs-client"]}


def _lines(pairs: list[tuple[str, Any]]) -> str:
    width = max(len(key) for key, _ in pairs)
    out = ["# Written by container-infra (the storage role); edits are replaced on the next run."]
    for key, value in pairs:
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append(f"{key.ljust(width)} = {'' if value is None else value}")
    return "\n".join(out) + "\n"


def names(entry: dict) -> dict[str, str]:
    """The files of one BeeGFS file system on a node (one client configuration per file system)."""
    stem = f"{CONF_DIR}/beegfs-client-{entry['name']}"
    beegfs = entry.get("beegfs") or {}
    version = str(beegfs.get("version"))
    return {"client": f"{stem}.conf", "interfaces": f"{stem}.interfaces",
            "rdma_interfaces": f"{stem}.rdma-interfaces", "helperd": f"{CONF_DIR}/beegfs-helperd.conf",
            "mounts": f"{CONF_DIR}/beegfs-mounts.conf",
            "auth": beegfs.get("auth_file_path") or DEFAULT_AUTH_FILE.get(version, f"{CONF_DIR}/conn.auth")}


def client_conf(entry: dict) -> str:
    beegfs = entry.get("beegfs") or {}
    version = str(beegfs["version"])
    files = names(entry)
    ports = beegfs.get("ports") or {}
    mgmtd_port = ports.get("mgmtd", 8008)
    pairs: list[tuple[str, Any]] = [("sysMgmtdHost", beegfs["mgmtd_host"])]
    if version == "7.4":
        pairs += [("connMgmtdPortUDP", mgmtd_port), ("connMgmtdPortTCP", mgmtd_port),
                  ("connClientPortUDP", ports.get("client", 8004)),
                  ("connHelperdPortTCP", ports.get("helperd", 8006)), ("logType", "helperd")]
    else:
        pairs += [("connMgmtdPort", mgmtd_port), ("connClientPortUDP", ports.get("client", 8004))]
    authenticated = beegfs.get("auth", True)
    pairs += [("connAuthFile", files["auth"] if authenticated else None),
              ("connDisableAuthentication", not authenticated),
              ("connInterfacesFile", files["interfaces"] if beegfs.get("interfaces") else None),
              ("connUseRDMA", bool(beegfs.get("rdma"))),
              ("connRDMAInterfacesFile", files["rdma_interfaces"] if beegfs.get("rdma_interfaces") else None)]
    for key, value in sorted((beegfs.get("client_options") or {}).items()):
        pairs = [(k, v) for k, v in pairs if k != key] + [(key, value)]
    return _lines(pairs)


def helperd_conf(entry: dict) -> str:
    beegfs = entry.get("beegfs") or {}
    authenticated = beegfs.get("auth", True)
    return _lines([("connHelperdPortTCP", (beegfs.get("ports") or {}).get("helperd", 8006)),
                   ("connAuthFile", names(entry)["auth"] if authenticated else None),
                   ("connDisableAuthentication", not authenticated)])


def mounts_file(entries: list[dict]) -> str:
    """``beegfs-mounts.conf``: every BeeGFS file system of the node, one line each."""
    lines = [f"{entry['path']} {names(entry)['client']}" for entry in entries]
    return "\n".join(["# Written by container-infra (the storage role): <mount point> <client config>", *lines]) + "\n"


def node_files(entries: list[dict]) -> list[dict]:
    """Every file of the node's present BeeGFS file systems but the secret (copied from the operator's file,
    0400): path, mode, content."""
    present = [e for e in entries if e.get("kind") == "beegfs" and (e.get("state") or "present") == "present"]
    out: list[dict] = []
    for entry in present:
        beegfs = entry.get("beegfs") or {}
        files = names(entry)
        out.append({"path": files["client"], "mode": "0644", "content": client_conf(entry)})
        if beegfs.get("interfaces"):
            out.append({"path": files["interfaces"], "mode": "0644",
                        "content": "\n".join(beegfs["interfaces"]) + "\n"})
        if beegfs.get("rdma_interfaces"):
            out.append({"path": files["rdma_interfaces"], "mode": "0644",
                        "content": "\n".join(beegfs["rdma_interfaces"]) + "\n"})
        if str(beegfs.get("version")) == "7.4":
            out.append({"path": files["helperd"], "mode": "0644", "content": helperd_conf(entry)})
    if present:
        out.append({"path": f"{CONF_DIR}/beegfs-mounts.conf", "mode": "0644", "content": mounts_file(present)})
    unique: dict[str, dict] = {}
    for item in out:
        unique[item["path"]] = item
    return list(unique.values())


def packages(entries: list[dict]) -> list[str]:
    versions = {str((e.get("beegfs") or {}).get("version")) for e in entries if e.get("kind") == "beegfs"}
    return sorted({p for v in versions for p in PACKAGES.get(v, [])})


def services(entries: list[dict]) -> list[str]:
    versions = {str((e.get("beegfs") or {}).get("version")) for e in entries if e.get("kind") == "beegfs"}
    return [s for s in ("beegfs-helperd", "beegfs-client") if any(s in SERVICES.get(v, []) for v in versions)]

