"""Shared file systems of a cluster's nodes: the spec's checks, what to ask Manila, each node's mounts.

The storage role (roles/container_infra_storage) is thin over this: a cluster spec's ``storage`` list is
checked and placed on each node (``node_plan``), the CephFS shares are asked of Manila once per cluster
and share (``manila_requests``; what Manila answered is judged by ``share_errors`` before anything
changes), and each node's mounts (files, fstab line, mount point) are built by ``node_mounts`` for the
node module ``container_infra_mount``. Every refusal is one sentence naming the file system, what is
wrong and what to do.
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re
from typing import Any

from container_infra import gluster as hyperconverged_gluster
from container_infra import storage_kubernetes

KINDS = ("cephfs", "gluster", "beegfs")
ROLES = ("master", "worker")
CEPH_CLIENTS = ("fuse", "kernel")
BEEGFS_VERSIONS = ("7.4", "8")
CEPH_DIR = "/etc/ceph"
# A cephx user name: what Manila's CephFS driver and Ceph accept in a client name.
CEPHX_USER = re.compile(r"^[A-Za-z0-9_.-]+$")
GLUSTER_VOLUME = re.compile(r"^[A-Za-z0-9_-]+$")


class StorageError(ValueError):
    """A spec the storage role cannot carry out; the message is one sentence per problem."""


def _where(entry: dict, index: int) -> str:
    return f"storage[{entry.get('name') or index}]"


def check_spec(entries: list[dict] | None, cluster: str = "") -> list[str]:
    """Every problem of a cluster's ``storage`` list, one sentence each (empty when it is good)."""
    errors: list[str] = []
    paths: dict[str, str] = {}
    names: set[str] = set()
    for index, entry in enumerate(entries or []):
        where = _where(entry, index)
        name = entry.get("name")
        if not name:
            errors.append(f"storage[{index}] has no name; give every file system of the spec a name.")
        elif name in names:
            errors.append(f"{where}: the name {name} is used twice; give each file system its own name.")
        names.add(name)
        kind = entry.get("kind")
        if kind not in KINDS:
            errors.append(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}; set kind to one of them.")
        path = entry.get("path") or ""
        if not path.startswith("/") or posixpath.normpath(path) != path.rstrip("/") or path == "/":
            errors.append(f"{where}: path {path!r} is not an absolute, normalised mount point other than /; "
                          "give one such as /mnt/scratch.")
        elif (entry.get("state") or "present") == "present":
            if path in paths:
                errors.append(f"{where}: path {path} is also the mount point of storage[{paths[path]}]; "
                              "give each file system its own path.")
            paths[path] = name or str(index)
        for role in entry.get("roles") or []:
            if role not in ROLES:
                errors.append(f"{where}: role {role!r} is not master or worker; list only those in roles.")
        if kind == "cephfs":
            errors += _check_cephfs(entry, where)
        elif kind == "beegfs":
            errors += _check_beegfs(entry, where)
        elif kind == "gluster":
            errors += _check_gluster(entry, where)
    return errors + hyperconverged_gluster.check_cluster(entries or [])


def _check_cephfs(entry: dict, where: str) -> list[str]:
    errors = []
    ceph = entry.get("cephfs") or {}
    if not ceph.get("share"):
        errors.append(f"{where}: cephfs.share is missing; name the Manila share (its name or ID).")
    if ceph.get("create") and not ceph.get("size"):
        errors.append(f"{where}: cephfs.create needs cephfs.size (GiB); give the size of the share to make.")
    if (ceph.get("client") or "fuse") not in CEPH_CLIENTS:
        errors.append(f"{where}: cephfs.client {ceph.get('client')!r} is not fuse or kernel; choose one.")
    if ceph.get("user") and not CEPHX_USER.match(ceph["user"]):
        errors.append(f"{where}: cephfs.user {ceph['user']!r} is not a cephx user name; use letters, digits, "
                      "'.', '_' and '-' only.")
    return errors + storage_kubernetes.check(entry, where)


def _check_beegfs(entry: dict, where: str) -> list[str]:
    beegfs = entry.get("beegfs") or {}
    version = str(beegfs.get("version") or "")
    errors = []
    if version not in BEEGFS_VERSIONS:
        errors.append(f"{where}: BeeGFS version {version!r} is not one this role knows ({', '.join(BEEGFS_VERSIONS)}); "
                      "set beegfs.version to 7.4 or 8.")
    if not beegfs.get("mgmtd_host"):
        errors.append(f"{where}: beegfs.mgmtd_host is missing; name the BeeGFS management host.")
    if beegfs.get("auth", True) and not beegfs.get("auth_file"):
        errors.append(f"{where}: beegfs.auth_file is missing; name the file on the control host that holds the "
                      "shared secret (connAuthFile), or set beegfs.auth to false where the file system has none.")
    if beegfs.get("rdma_interfaces") and not beegfs.get("rdma"):
        errors.append(f"{where}: beegfs.rdma_interfaces is given but beegfs.rdma is off; set beegfs.rdma to true "
                      "or drop the RDMA interfaces.")
    return errors


def _check_gluster(entry: dict, where: str) -> list[str]:
    gluster = entry.get("gluster") or {}
    errors = []
    if not gluster.get("volume"):
        errors.append(f"{where}: gluster.volume is missing; name the Gluster volume.")
    elif not GLUSTER_VOLUME.match(gluster["volume"]):
        errors.append(f"{where}: gluster.volume {gluster['volume']!r} is not a Gluster volume name; use letters, "
                      "digits, '_' and '-' only.")
    if gluster.get("hyperconverged") is not None:
        errors += hyperconverged_gluster.check(entry, where)
    elif not gluster.get("servers"):
        errors.append(f"{where}: gluster.servers is missing; list the volume's servers (the first serves the "
                      "volume file, the others are its backups), or give gluster.hyperconverged to have the "
                      "cluster's nodes serve it.")
    elif len(set(gluster["servers"])) != len(gluster["servers"]):
        errors.append(f"{where}: gluster.servers lists a server twice; list each once.")
    if (gluster.get("transport") or "tcp") != "tcp":
        errors.append(f"{where}: gluster.transport {gluster['transport']!r} is not available; Gluster removed its "
                      "RDMA transport, so use tcp over the IPoIB or RoCE addresses (the servers' LLN addresses).")
    return errors


def applies(entry: dict, role: str, nodegroup: str) -> bool:
    """Whether a file system goes on a node of this role and nodegroup (default: every node)."""
    roles = entry.get("roles") or list(ROLES)
    nodegroups = entry.get("nodegroups")
    return role in roles and (not nodegroups or nodegroup in nodegroups)


def cephx_user(entry: dict, cluster: str) -> str:
    """The cephx user of a CephFS entry: the spec's, else one per cluster and file system."""
    return (entry.get("cephfs") or {}).get("user") or re.sub(r"[^A-Za-z0-9_.-]", "-",
                                                             f"container-infra-{cluster}-{entry['name']}")


def node_plan(entries: list[dict] | None, cluster: str, role: str, nodegroup: str) -> list[dict]:
    """The file systems of one node, checked first: StorageError with every problem, one sentence each."""
    errors = check_spec(entries, cluster)
    if errors:
        raise StorageError(f"cluster {cluster or '(unnamed)'}: " + " ".join(errors))
    out = []
    for entry in entries or []:
        if not applies(entry, role or "worker", nodegroup or ""):
            continue
        item = dict(entry, cluster=cluster, state=entry.get("state") or "present")
        if entry["kind"] == "cephfs":
            item["cephfs"] = dict(entry.get("cephfs") or {}, user=cephx_user(entry, cluster),
                                  client=(entry.get("cephfs") or {}).get("client") or "fuse")
        elif hyperconverged_gluster.hyperconverged(entry):
            item["serves"] = hyperconverged_gluster.serves(entry, role or "worker", nodegroup or "")
        out.append(item)
    return out


# ------------------------------------------------------------------------------------------------ Manila
def manila_requests(plans: list[list[dict]]) -> list[dict]:
    """One request per cluster and CephFS share, whatever the number of nodes that mount it."""
    seen: dict[tuple[str, str], dict] = {}
    for plan in plans:
        for entry in plan or []:
            if entry.get("kind") != "cephfs":
                continue
            key = (entry["cluster"], entry["name"])
            if key in seen:
                continue
            ceph = entry["cephfs"]
            seen[key] = {"key": f"{entry['cluster']}/{entry['name']}", "cluster": entry["cluster"],
                         "name": entry["name"], "state": entry["state"], "share": ceph["share"],
                         "user": ceph["user"], "access_level": ceph.get("access_level") or "rw",
                         "create": bool(ceph.get("create")), "size": ceph.get("size"),
                         "share_type": ceph.get("share_type"), "metadata": ceph.get("metadata"),
                         "availability_zone": ceph.get("availability_zone"),
                         "client": ceph.get("client") or "fuse", "kubernetes": ceph.get("kubernetes") or {}}
    return list(seen.values())


def share_errors(requests: list[dict], found: list[dict]) -> list[str]:
    """What Manila said of each share (``os_manila_share`` state query, one result per request), judged
    before anything changes: one sentence per share that cannot be mounted."""
    errors = []
    for request, result in zip(requests, found, strict=False):
        what = f"storage[{request['name']}] of cluster {request['cluster']}"
        if result.get("failed"):
            errors.append(f"{what}: Manila could not be asked about share {request['share']}: "
                          f"{str(result.get('msg', '')).rstrip('.')}.")
            continue
        share = result.get("share") or {}
        if request["state"] == "absent":
            continue
        if not share:
            if not request["create"]:
                errors.append(f"{what}: share {request['share']} does not exist in Manila; create it (openstack "
                              "share create CEPHFS ...) and name it by its ID or name, or set cephfs.create with "
                              "cephfs.size to have the toolkit make it.")
            continue
        proto = (share.get("share_proto") or "").upper()
        if proto != "CEPHFS":
            errors.append(f"{what}: share {request['share']} is a {proto} share; the cephfs kind mounts CEPHFS "
                          "shares only, so name a CephFS share (or use the kind that serves that protocol).")
        elif share.get("status") != "available":
            errors.append(f"{what}: share {request['share']} is in status {share.get('status')}, not available; "
                          "fix or replace it in Manila (openstack share show) and run again.")
    return errors


def needs_ensure(requests: list[dict], found: list[dict]) -> list[dict]:
    """The present requests whose share or access rule Manila does not hold as asked (the others need no call:
    their query, with keys, already says all the nodes need)."""
    out = []
    for request, result in zip(requests, found, strict=False):
        if request["state"] != "present":
            continue
        share = result.get("share") or {}
        rule = next((r for r in share.get("access_rules") or []
                     if r.get("access_type") == "cephx" and r.get("access_to") == request["user"]), None)
        if (not share or (request["create"] and request.get("size") and share.get("size") != request["size"])
                or rule is None or rule.get("state") != "active" or not rule.get("access_key")
                or rule.get("access_level") != request["access_level"]):
            out.append(request)
    return out


def manila_errors(requests: list[dict], results: list[dict]) -> list[str]:
    """The refusals of the ensuring calls (their messages carry no key)."""
    return [f"storage[{request['name']}] of cluster {request['cluster']}: "
            f"{str(result.get('msg') or 'Manila refused the share or its access rule').rstrip('.')}."
            for request, result in zip(requests, results, strict=False) if result.get("failed")]


def share_view(request: dict, share: dict) -> dict:
    """What a node needs of a share: export (monitors, path, file system name), the rule and its key."""
    rule = next((r for r in share.get("access_rules") or []
                 if r.get("access_type") == "cephx" and r.get("access_to") == request["user"]), {})
    locations = [loc for loc in share.get("export_locations") or [] if not loc.get("is_admin_only")]
    location = next((loc for loc in locations if loc.get("preferred")), locations[0] if locations else {})
    return {"id": share.get("id"), "monitors": location.get("monitors") or share.get("monitors") or [],
            "path": location.get("path") or share.get("path"),
            "fs_name": location.get("fs_name") or share.get("fs_name"),
            "access_rule_id": rule.get("id"), "access_key": rule.get("access_key"), "user": request["user"],
            "size": share.get("size"), "share_type": share.get("share_type")}


def manila_facts(requests: list[dict], found: list[dict], ensured: list[dict] | None = None) -> dict[str, dict]:
    """{"<cluster>/<name>": share view}: from the ensuring calls (present entries, with their keys), else from
    the queries (absent entries: where the share is, no key)."""
    by_key = {result.get("item", {}).get("key"): result for result in ensured or []
              if not result.get("skipped")}
    out = {}
    for request, result in zip(requests, found, strict=False):
        result = by_key.get(request["key"], result)
        if result.get("failed") or result.get("skipped") or not result.get("share"):
            continue
        out[request["key"]] = share_view(request, result["share"])
    return out


# ------------------------------------------------------------------------------------------------ nodes
def ceph_cluster_id(monitors: list[str]) -> str:
    """A Ceph cluster's name on the node, from its monitors (one ceph.conf per Ceph cluster)."""
    return "ceph-" + hashlib.sha256(",".join(sorted(monitors)).encode()).hexdigest()[:10]


def _host_of(monitor: str) -> str:
    monitor = monitor.strip()
    if monitor.startswith("["):
        return monitor[1:monitor.index("]")]
    return monitor.rsplit(":", 1)[0] if monitor.count(":") == 1 else monitor


def storage_network(monitors: list[str], networks: dict[str, dict], wanted: str | None = None) -> str | None:
    """The node's network through which the monitors are reached: the named one, else the one whose
    CIDR holds a monitor's address."""
    if wanted:
        return wanted if wanted in networks else None
    for monitor in monitors:
        try:
            address = ipaddress.ip_address(_host_of(monitor))
        except ValueError:
            continue
        for name, net in sorted(networks.items()):
            cidr = (net or {}).get("cidr")
            if cidr and address in ipaddress.ip_network(cidr, strict=False):
                return name
    return None


def mount_options(options: list[str] | str | None) -> list[str]:
    if isinstance(options, str):
        options = options.split(",")
    return [o.strip() for o in options or [] if o and o.strip()]


def cephfs_mount(entry: dict, share: dict, with_secret: bool = False) -> dict:
    """One CephFS mount: its ceph.conf (per Ceph cluster), key file (0600) and fstab line."""
    ceph = entry["cephfs"]
    monitors = share["monitors"]
    cid = ceph.get("ceph_cluster") or ceph_cluster_id(monitors)
    user = share["user"]
    conf = f"{CEPH_DIR}/{cid}.conf"
    extra = mount_options(entry.get("options"))
    if ceph["client"] == "fuse":
        keyring = f"{CEPH_DIR}/{cid}.client.{user}.keyring"
        options = [f"ceph.id={user}", f"ceph.conf={conf}", f"ceph.keyring={keyring}",
                   f"ceph.client_mountpoint={share['path']}"]
        if share.get("fs_name"):
            options.append(f"ceph.client_fs={share['fs_name']}")
        options += [*extra, "_netdev"]
        files = [{"path": conf, "mode": "0644", "content": ceph_conf(monitors)},
                 {"path": keyring, "mode": "0600", "secret": True,
                  "content": f"[client.{user}]\n\tkey = {share['access_key'] if with_secret else '<secret>'}\n"}]
        src, fstype, binary, package = "none", "fuse.ceph", "ceph-fuse", "ceph-fuse"
    else:
        secret = f"{CEPH_DIR}/{cid}.client.{user}.secret"
        options = [f"name={user}", f"secretfile={secret}"]
        if share.get("fs_name"):
            options.append(f"fs={share['fs_name']}")
        options += [*extra, "_netdev"]
        files = [{"path": conf, "mode": "0644", "content": ceph_conf(monitors)},
                 {"path": secret, "mode": "0600", "secret": True,
                  "content": (share["access_key"] if with_secret else "<secret>") + "\n"}]
        src = ",".join(monitors) + ":" + share["path"]
        fstype, binary, package = "ceph", "mount.ceph", "ceph-common"
    return {"name": entry["name"], "kind": "cephfs", "state": "present", "path": entry["path"], "src": src,
            "fstype": fstype, "options": ",".join(options), "files": files, "binary": binary,
            "package": package, "owner": entry.get("owner"), "group": entry.get("group"),
            "mode": entry.get("mode"),
            # The user's keys under another Ceph cluster's name (an export that moved, a client switched):
            # removed once this mount is up.
            "stale": [f"{CEPH_DIR}/*.client.{user}.keyring", f"{CEPH_DIR}/*.client.{user}.secret"]}


def gluster_mount(entry: dict, networks: dict[str, dict], host: str,
                  gluster_layout: dict | None = None) -> tuple[dict, str | None, str | None]:
    """A client mount of a Gluster volume: the first server gives the volume file, the others are its backups
    (``backup-volfile-servers``); the node must reach them through one of its networks. A hyperconverged
    volume's servers are its serving nodes' addresses (``gluster_layout``, from container_infra.gluster.layout)."""
    gluster = entry["gluster"]
    where = f"storage[{entry['name']}] of cluster {entry['cluster']}"
    if gluster.get("hyperconverged"):
        servers = hyperconverged_gluster.mount_servers(gluster_layout or {}, entry)
        if not servers:
            return {}, None, (f"{where}: no serving node of the volume is known to this play; run the play on the "
                              "cluster's serving nodes too (without --limit leaving them out).")
    else:
        servers = gluster["servers"]
    network = storage_network(servers, networks, gluster.get("network"))
    literal = any(_is_address(server) for server in servers)
    if network is None and (gluster.get("network") or literal):
        named = gluster.get("network")
        target = f"network {named}" if named else f"a network that reaches the servers {', '.join(servers)}"
        return {}, None, (f"{where}: host {host} has no port on {target}"
                          + f" (it has {', '.join(sorted(networks)) or 'none'}); add that network to the cluster's "
                          "networks (for example {network: lln}) and run cluster_create.yml.")
    volume = gluster["volume"] + (("/" + gluster["subdir"].strip("/")) if gluster.get("subdir") else "")
    options = []
    if len(servers) > 1:
        options.append("backup-volfile-servers=" + ":".join(servers[1:]))
    if gluster.get("transport"):
        options.append(f"transport={gluster['transport']}")
    options += [*mount_options(entry.get("options")), "_netdev"]
    return ({"name": entry["name"], "kind": "gluster", "state": "present", "path": entry["path"],
             "src": f"{servers[0]}:/{volume}", "fstype": "glusterfs", "options": ",".join(options), "files": [],
             "binary": "mount.glusterfs", "package": "glusterfs-client", "owner": entry.get("owner"),
             "group": entry.get("group"), "mode": entry.get("mode")}, network, None)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(_host_of(text))
    except ValueError:
        return False
    return True


def ceph_conf(monitors: list[str]) -> str:
    return ("# Written by container-infra (the storage role): one file per Ceph cluster.\n"
            f"[global]\n\tmon_host = {','.join(monitors)}\n")


def node_mounts(plan: list[dict], manila: dict[str, dict] | None, networks: dict[str, dict] | None,
                host: str = "", with_secrets: bool = False, gluster_layout: dict | None = None) -> dict[str, Any]:
    """A node's mounts for ``container_infra_mount``, the networks its NICs must carry, and every problem
    (one sentence each). Without ``with_secrets`` keys are placeholders (for showing and checking)."""
    manila = manila or {}
    networks = networks or {}
    mounts, nic_networks, errors = [], [], []
    for entry in plan or []:
        where = f"storage[{entry['name']}] of cluster {entry['cluster']}"
        if entry["state"] == "absent":
            mounts.append({"name": entry["name"], "kind": entry["kind"], "state": "absent", "path": entry["path"],
                           "files": _known_files(entry, manila)})
            continue
        if entry["kind"] == "gluster":
            mount, network, error = gluster_mount(entry, networks, host, gluster_layout)
            if error:
                errors.append(error)
                continue
            if network and network not in nic_networks and (networks.get(network) or {}).get("mac"):
                nic_networks.append(network)
            mounts.append(mount)
            continue
        if entry["kind"] != "cephfs":
            continue
        share = manila.get(f"{entry['cluster']}/{entry['name']}")
        if not share or not share.get("monitors") or not share.get("path"):
            errors.append(f"{where}: Manila gave no export location for share {entry['cephfs']['share']}; check "
                          "`openstack share export location list` and run again.")
            continue
        if with_secrets and not share.get("access_key"):
            errors.append(f"{where}: the access rule of {share['user']} on share {entry['cephfs']['share']} has "
                          "no key yet; run again once Manila made it active.")
            continue
        network = storage_network(share["monitors"], networks, entry["cephfs"].get("network"))
        if network is None:
            named = entry["cephfs"].get("network")
            errors.append(f"{where}: host {host} has no port on "
                          + (f"network {named}" if named else f"a network that reaches the monitors "
                             f"{', '.join(share['monitors'])}")
                          + f" (it has {', '.join(sorted(networks)) or 'none'}); add that network to the "
                          "cluster's networks (for example {network: storage}) and run cluster_create.yml.")
            continue
        if network not in nic_networks and (networks.get(network) or {}).get("mac"):
            nic_networks.append(network)
        mounts.append(cephfs_mount(entry, share, with_secrets))
    return {"mounts": mounts, "nic_networks": nic_networks, "errors": errors}


def _known_files(entry: dict, manila: dict[str, dict]) -> list[dict]:
    """The files a present entry wrote, for an absent one to remove (key files; the per-cluster conf stays
    while other mounts may read it)."""
    if entry["kind"] != "cephfs":
        return []
    share = manila.get(f"{entry['cluster']}/{entry['name']}") or {}
    user = entry["cephfs"]["user"]
    cid = entry["cephfs"].get("ceph_cluster") or (ceph_cluster_id(share["monitors"]) if share.get("monitors")
                                                  else None)
    if cid:
        return [{"path": f"{CEPH_DIR}/{cid}.client.{user}.keyring"}, {"path": f"{CEPH_DIR}/{cid}.client.{user}.secret"}]
    return [{"glob": f"{CEPH_DIR}/*.client.{user}.keyring"}, {"glob": f"{CEPH_DIR}/*.client.{user}.secret"}]


def summary(plan: list[dict]) -> list[str]:
    """One line per file system of a node: kind, name, where."""
    return [f"{entry['kind']} {entry['name']} on {entry['path']} ({entry['state']})" for entry in plan or []]
