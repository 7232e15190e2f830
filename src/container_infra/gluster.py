"""The hyperconverged Gluster volume: served by glusterd containers on the cluster's own nodes.

A ``kind: gluster`` entry of a cluster's storage spec either names an existing volume (``gluster.servers``,
a client mount only, in ``storage.gluster_mount``) or asks for one on the cluster (``gluster.hyperconverged``).
For the latter this module checks the spec (``check``), finds the serving nodes and their addresses on the
volume's network across the play (``layout``: one brick per serving node, in the nodes' name order, which is
the order of the replica sets), and gives each node what it runs: the glusterd container's command line
(``glusterd_workload``), its brick (``node_bricks``) and, for the volume's first server, the volume as
``container_infra_gluster_volume`` converges it (create, grow with a rebalance, shrink by migrating the
leaving bricks' data first, options, quota).

Choices, named here and in the role's README:
- One glusterd per node (``container-infra-glusterd``, host network, its state in
  ``/var/lib/container-infra/glusterd`` on the node, so a new container finds its peers and volumes).
- Transport tcp over the named network's addresses (Gluster removed RDMA: tcp over IPoIB or RoCE).
- Bricks are ``<brick_root>/brick`` (a directory under the root, never the root itself, so an unmounted device
  leaves Gluster a missing brick instead of filling the node's root file system). Bricks on the node's own file
  system are created with Gluster's ``force`` (it refuses bricks on the root partition without it).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

# One digest rule for every workload of the toolkit (container_infra_docker_workload compares its label).
from container_infra.monitoring import labelled

GLUSTERD = "container-infra-glusterd"
GLUSTERD_STATE = "/var/lib/container-infra/glusterd"
GLUSTERD_LOGS = "/var/log/container-infra/glusterfs"
BRICK_ROOT = "/var/lib/container-infra/gluster"
QUOTA_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?(KB|MB|GB|TB|PB)?$")
OPTION = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)+$")
DEVICE = re.compile(r"^/dev/[A-Za-z0-9_./-]+$")


def hyperconverged(entry: dict) -> dict | None:
    gluster = entry.get("gluster") or {}
    return gluster.get("hyperconverged")


def brick_root(entry: dict) -> str:
    hc = hyperconverged(entry) or {}
    return hc.get("brick_root") or f"{BRICK_ROOT}/{entry['gluster']['volume']}"


def check(entry: dict, where: str) -> list[str]:
    """The hyperconverged part of one gluster entry, one sentence per problem."""
    gluster = entry.get("gluster") or {}
    hc = gluster.get("hyperconverged")
    if hc is None:
        return []
    errors = []
    if gluster.get("servers"):
        errors.append(f"{where}: gluster.servers and gluster.hyperconverged are both given; name an existing "
                      "volume's servers or have the cluster serve it, not both.")
    if not isinstance(hc, dict):
        return [*errors, f"{where}: gluster.hyperconverged is not a mapping; give its keys (image, replica, ...)."]
    if not gluster.get("network"):
        errors.append(f"{where}: gluster.network is missing; name the cluster network whose addresses carry the "
                      "volume's traffic (lln for the low-latency network).")
    if not hc.get("image"):
        errors.append(f"{where}: gluster.hyperconverged.image is missing; name a glusterd image in the site's "
                      "registry (for example registry:5000/gluster/glusterd:11).")
    replica, arbiter = hc.get("replica", 1), hc.get("arbiter", 0)
    if not isinstance(replica, int) or isinstance(replica, bool) or replica < 1:
        errors.append(f"{where}: gluster.hyperconverged.replica {replica!r} is not a whole number of at least 1; "
                      "give the copies each file has (1 for a distributed volume).")
    if arbiter not in (0, 1) or (arbiter == 1 and replica != 3):
        errors.append(f"{where}: gluster.hyperconverged.arbiter {arbiter!r} is not possible with replica "
                      f"{replica!r}; Gluster takes arbiter 1 with replica 3 only, so set both or leave arbiter out.")
    root = hc.get("brick_root")
    if root is not None and (not str(root).startswith("/") or posixpath.normpath(str(root)) != str(root)
                             or root == "/"):
        errors.append(f"{where}: gluster.hyperconverged.brick_root {root!r} is not an absolute, normalised "
                      f"directory other than /; give one such as {BRICK_ROOT}/<volume>.")
    devices = hc.get("devices") or []
    for device in devices:
        if not isinstance(device, str) or not DEVICE.match(device):
            errors.append(f"{where}: gluster.hyperconverged.devices lists {device!r}, which is no block device "
                          "path; list devices such as /dev/nvme1n1.")
    if len(set(map(str, devices))) != len(devices):
        errors.append(f"{where}: gluster.hyperconverged.devices lists a device twice; list each once.")
    for name, value in (hc.get("options") or {}).items():
        if not OPTION.match(str(name)) or isinstance(value, (dict, list)):
            errors.append(f"{where}: gluster.hyperconverged.options {name!r} is not a Gluster volume option with "
                          "one value; give options such as cluster.nufa: 'on'.")
    for directory, size in (hc.get("quota") or {}).items():
        if not str(directory).startswith("/") or posixpath.normpath(str(directory)) != str(directory):
            errors.append(f"{where}: gluster.hyperconverged.quota directory {directory!r} is not absolute in the "
                          "volume; give one such as /projects.")
        if not QUOTA_SIZE.match(str(size)):
            errors.append(f"{where}: gluster.hyperconverged.quota size {size!r} of {directory} is not a size "
                          "Gluster reads; give one such as 10GB.")
    return errors


def check_cluster(entries: list[dict]) -> list[str]:
    """What no single entry shows: one glusterd per node (one image) and each volume name once."""
    errors = []
    served = [entry for entry in entries or [] if entry.get("kind") == "gluster" and hyperconverged(entry)
              and (entry.get("state") or "present") == "present" and isinstance(hyperconverged(entry), dict)]
    images = sorted({hyperconverged(entry).get("image") for entry in served if hyperconverged(entry).get("image")})
    if len(images) > 1:
        errors.append(f"storage: the hyperconverged Gluster volumes name different images ({', '.join(images)}); "
                      "a node runs one glusterd, so give them all the same image.")
    volumes: dict[str, str] = {}
    for entry in served:
        volume = (entry.get("gluster") or {}).get("volume")
        if volume in volumes:
            errors.append(f"storage[{entry.get('name')}]: Gluster volume {volume} is also "
                          f"storage[{volumes[volume]}]'s; give each hyperconverged volume its own name.")
        volumes[volume] = entry.get("name")
    return errors


def serves(entry: dict, role: str, nodegroup: str) -> bool:
    """Whether a node of this role and nodegroup serves the entry's volume (default: every node it goes on)."""
    hc = hyperconverged(entry) or {}
    roles = hc.get("roles") or ["master", "worker"]
    nodegroups = hc.get("nodegroups")
    return role in roles and (not nodegroups or nodegroup in nodegroups)


def node_serving(plan: list[dict], networks: dict[str, dict], host: str) -> list[dict]:
    """What this node offers to the volumes it serves: its address on each volume's network (None where it has
    no port there)."""
    out = []
    for entry in plan or []:
        if entry.get("kind") != "gluster" or not hyperconverged(entry) or not entry.get("serves"):
            continue
        network = entry["gluster"]["network"]
        port = (networks or {}).get(network) or {}
        out.append({"key": f"{entry['cluster']}/{entry['name']}", "host": host, "address": port.get("ip"),
                    "network": network, "networks": sorted(networks or {})})
    return out


def outside_hosts(hostvars: Any, all_hosts: list[str], play_hosts: list[str]) -> list[dict]:
    """The inventory's cluster nodes this play leaves out (``--limit``): their bricks are not leaving bricks."""
    out = []
    for host in all_hosts or []:
        if host in (play_hosts or []):
            continue
        host_vars = hostvars[host]
        cluster = host_vars.get("container_infra_cluster")
        if cluster:
            networks = host_vars.get("container_infra_networks") or {}
            out.append({"host": host, "cluster": cluster,
                        "addresses": {name: (port or {}).get("ip") for name, port in networks.items()}})
    return out


def layout(plans: list[list[dict]], serving: list[list[dict]], outside: list[dict] | None = None) -> dict[str, Any]:
    """Every hyperconverged volume of the play: {"volumes": {key: volume}, "errors": [...]}, from each host's plan
    and what each serving host offers. A volume: its name, state, servers (host, address, brick) in name order,
    the first server (where the volume commands run), replica, arbiter, options, quota, and the addresses of its
    cluster's nodes the play leaves out (``outside``: their bricks stay as they are)."""
    entries: dict[str, dict] = {}
    for plan in plans:
        for entry in plan or []:
            if entry.get("kind") == "gluster" and hyperconverged(entry):
                entries.setdefault(f"{entry['cluster']}/{entry['name']}", entry)
    offers: dict[str, list[dict]] = {}
    for items in serving:
        for item in items or []:
            offers.setdefault(item["key"], []).append(item)
    volumes, errors = {}, []
    for key, entry in sorted(entries.items()):
        hc = hyperconverged(entry)
        where = f"storage[{entry['name']}] of cluster {entry['cluster']}"
        servers = sorted(offers.get(key, []), key=lambda item: item["host"])
        replica, arbiter = hc.get("replica", 1), hc.get("arbiter", 0)
        volume = {"key": key, "name": entry["name"], "volume": entry["gluster"]["volume"], "state": entry["state"],
                  "replica": replica, "arbiter": arbiter, "options": {str(k): str(v) for k, v in
                                                                        (hc.get("options") or {}).items()},
                  "quota": {str(k): str(v) for k, v in (hc.get("quota") or {}).items()},
                  "servers": [], "first": None, "image": hc.get("image"), "path": entry["path"],
                  "outside": sorted(item["addresses"].get(entry["gluster"]["network"]) for item in outside or []
                                    if item["cluster"] == entry["cluster"]
                                    and item["addresses"].get(entry["gluster"]["network"]))}
        if entry["state"] == "absent":
            volume["servers"] = [{"host": s["host"], "address": s["address"], "brick": None} for s in servers]
            volume["first"] = servers[0]["host"] if servers else None
            volumes[key] = volume
            continue
        missing = [s for s in servers if not s["address"]]
        for item in missing:
            errors.append(f"{where}: host {item['host']} serves the volume over network {item['network']} but has "
                          f"no port on it (it has {', '.join(item['networks']) or 'none'}); add that network to "
                          "the cluster's networks (for example {network: lln}) and run cluster_create.yml.")
        if missing:
            continue
        if not servers:
            errors.append(f"{where}: no node of the play serves the volume; set gluster.hyperconverged.roles or "
                          "nodegroups to nodes the cluster has.")
            continue
        if replica > len(servers):
            errors.append(f"{where}: replica {replica} needs at least {replica} serving nodes but "
                          f"{len(servers)} serve the volume ({', '.join(s['host'] for s in servers)}); lower "
                          "gluster.hyperconverged.replica or serve the volume on more nodes.")
            continue
        if len(servers) % replica:
            errors.append(f"{where}: {len(servers)} serving nodes are not a multiple of replica {replica}, and "
                          "every replica set needs a brick on each of its nodes; serve the volume on a multiple "
                          f"of {replica} nodes.")
            continue
        root = brick_root(entry)
        volume["servers"] = [{"host": s["host"], "address": s["address"], "brick": f"{s['address']}:{root}/brick"}
                             for s in servers]
        volume["first"] = servers[0]["host"]
        volumes[key] = volume
    return {"volumes": volumes, "errors": errors}


def node_bricks(plan: list[dict]) -> list[dict]:
    """The bricks this node serves: root, devices (XFS, RAID0 over several), whether a device holding a file
    system may be formatted."""
    out = []
    for entry in plan or []:
        hc = hyperconverged(entry) if entry.get("kind") == "gluster" else None
        if not hc or not entry.get("serves") or entry["state"] != "present":
            continue
        volume = entry["gluster"]["volume"]
        out.append({"volume": volume, "root": brick_root(entry), "devices": list(hc.get("devices") or []),
                    "force": bool(hc.get("force_devices")), "raid_name": f"container-infra-{volume}"})
    return out


def glusterd_workload(plan: list[dict]) -> dict:
    """The glusterd container of a node that serves a present volume ({} where it serves none): host network
    (the peers and clients reach it on the volume network's address), its state and logs on the node, the
    bricks' roots bind-mounted at the same paths, so brick paths mean the same inside and out."""
    served = [entry for entry in plan or [] if entry.get("kind") == "gluster" and hyperconverged(entry)
              and entry.get("serves") and entry["state"] == "present"]
    if not served:
        return {}
    image = hyperconverged(served[0])["image"]
    roots = sorted({brick_root(entry) for entry in served})
    argv = ["docker", "run", "--detach", "--name", GLUSTERD, "--restart", "always", "--network", "host",
            # glusterd sets extended attributes (trusted.*) on bricks and mounts FUSE for quota: it needs the
            # administrator's capabilities; SYS_RESOURCE is dropped (the bricks' setrlimit then stays within
            # the node's limits, which nested nodes require).
            "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--device", "/dev/fuse",
            # Its brick processes use calls Docker's default seccomp and AppArmor profiles refuse.
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--volume", f"{GLUSTERD_STATE}:/var/lib/glusterd", "--volume", f"{GLUSTERD_LOGS}:/var/log/glusterfs"]
    for root in roots:
        argv += ["--volume", f"{root}:{root}"]
    argv.append(image)
    return {"name": GLUSTERD, "kind": "container", **labelled(argv, {"roots": roots})}


def volume_calls(layout_: dict, state: str = "present") -> list[dict]:
    """One ``container_infra_gluster_volume`` call per volume of that state: ``host`` is its first server, where
    the call runs (delegated), the rest is the module's ``volume``."""
    out = []
    for volume in (layout_ or {}).get("volumes", {}).values():
        if volume["state"] != state or not volume["first"]:
            continue
        out.append({"host": volume["first"], "name": volume["volume"], "state": volume["state"],
                    "bricks": [s["brick"] for s in volume["servers"] if s["brick"]],
                    "peers": [s["address"] for s in volume["servers"] if s["address"]],
                    "self": next(s["address"] for s in volume["servers"] if s["host"] == volume["first"]),
                    "replica": volume["replica"], "arbiter": volume["arbiter"], "options": volume["options"],
                    "quota": volume["quota"], "path": volume["path"], "outside": volume["outside"]})
    return out


def mount_servers(layout_: dict, entry: dict) -> list[str]:
    """The addresses a node mounts a hyperconverged volume from (the first gives the volume file)."""
    volume = (layout_ or {}).get("volumes", {}).get(f"{entry['cluster']}/{entry['name']}") or {}
    return [s["address"] for s in volume.get("servers") or [] if s.get("address")]
