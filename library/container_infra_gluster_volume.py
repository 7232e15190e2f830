#!/usr/bin/python
# Copyright: container-infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module container_infra_gluster_volume: a hyperconverged Gluster volume, converged from its first server.

Runs ON THE NODE (the volume's first server) with the node's own python3 and the standard library only: it
drives the gluster CLI inside the node's glusterd container (``docker exec``), reading its XML output.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_infra_gluster_volume
short_description: Converge a Gluster volume served by glusterd containers (peers, bricks, options, quota)
description:
  - Run on the volume's first server. Probes the other servers as peers (by their address on the volume's network)
    and waits until each is in the pool and connected.
  - Creates the volume with the bricks in the given order (replica sets in that order) and starts it; sets the
    options that differ.
  - Bricks the volume lacks are added (a multiple of the replica count) and a rebalance is started.
  - Bricks the volume has and the list does not are removed only after their data moved to the others (Gluster's
    C(remove-brick start), waited for, then C(commit)), then the volume is rebalanced (waited for); a shrink that
    would lose data is refused in one sentence (a leaving brick offline, leaving bricks that break a replica set,
    or more data than the others have room for). A shrink interrupted while the data moved is picked up where it
    was; one interrupted after its commit gets its rebalance and peer detach on the next run.
  - O(step=quota) sets the directory quotas (after the volume is mounted, since the directories must exist).
  - With state absent, the volume is stopped and deleted (the bricks' files stay on the nodes).
  - Supports check mode.
version_added: "0.1.0"
author: container-infra
options:
  container:
    description: The glusterd container on this node.
    type: str
    default: container-infra-glusterd
  volume:
    description: The volume.
    type: dict
    required: true
    suboptions:
      name: {description: The volume's name., type: str, required: true}
      state: {description: present or absent., type: str, default: present, choices: [present, absent]}
      bricks: {description: "The bricks (C(address:/path)) in replica-set order.", type: list, elements: str}
      peers: {description: The servers' addresses (this node's included)., type: list, elements: str, default: []}
      self: {description: This node's address among O(volume.peers)., type: str}
      replica: {description: Copies of each file., type: int, default: 1}
      arbiter: {description: 1 for replica 3 with an arbiter brick., type: int, default: 0}
      options: {description: Volume options to set., type: dict, default: {}}
      quota: {description: "Directory (in the volume) to hard limit (C(10GB)).", type: dict, default: {}}
      path: {description: Where the volume is mounted on this node (step quota makes the directories there)., type: str}
      outside:
        description: Addresses of the cluster's nodes the play left out (C(--limit)); their bricks are kept as they are.
        type: list
        elements: str
  shrink:
    description:
      - Take the leaving bricks off (their data moved first, the volume rebalanced after the commit, so that every
        file sits where the new layout hashes it). Off - the volume keeps every brick and a run whose nodes leave it
        is refused in one sentence.
    type: bool
    default: true
  step:
    description: C(volume) (peers, bricks, options) or C(quota).
    type: str
    default: volume
    choices: [volume, quota]
  timeout:
    description: Seconds to wait for glusterd, the peers, and the data of leaving bricks to move.
    type: int
    default: 600
"""

EXAMPLES = r"""
- name: A replica 3 volume over the low-latency network
  container_infra_gluster_volume:
    volume:
      name: gv0
      bricks:
        - 10.10.0.11:/var/lib/container-infra/gluster/gv0/brick
        - 10.10.0.12:/var/lib/container-infra/gluster/gv0/brick
        - 10.10.0.13:/var/lib/container-infra/gluster/gv0/brick
      peers: [10.10.0.11, 10.10.0.12, 10.10.0.13]
      self: 10.10.0.11
      replica: 3
  become: true
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), in order, as Gluster commands without the CLI's name.
  type: list
  elements: str
  returned: always
"""

import math  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

UNITS = {"": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4, "PB": 1024**5}


class GlusterError(Exception):
    """A refusal or a failed command: the message is the module's one sentence."""


class Gluster:
    """The gluster CLI in the node's glusterd container."""

    def __init__(self, container: str, check_mode: bool = False, runner=None):
        self.container, self.check_mode = container, check_mode
        self.runner = runner or self._run
        self.actions: list[str] = []

    @staticmethod
    def _run(argv: list[str]) -> tuple[int, str]:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return 124, "no answer within 300 s"
        return done.returncode, (done.stdout or "") + (done.stderr or "")

    def running(self) -> bool:
        rc, out = self.runner(["docker", "inspect", "--format", "{{.State.Running}}", self.container])
        return rc == 0 and out.strip() == "true"

    def xml(self, *args: str) -> tuple[bool, ET.Element | None, str]:
        """A read: (ok, the XML answer, the error text)."""
        rc, out = self.runner(["docker", "exec", self.container, "gluster", "--mode=script", "--xml", *args])
        start = out.find("<cliOutput")
        if start < 0:
            return False, None, out.strip() or f"rc {rc}"
        try:
            # The node's own gluster CLI wrote it (no entity declarations): the standard library's parser is
            # safe for it, and the node has nothing else.
            root = ET.fromstring(out[start:out.rindex("</cliOutput>") + len("</cliOutput>")])  # noqa: S314
        except (ET.ParseError, ValueError):
            return False, None, out.strip()
        ok = (root.findtext("opRet") or "-1").strip() == "0"
        return ok, root, (root.findtext("opErrstr") or "").strip()

    def change(self, *args: str) -> str:
        """A change: recorded, and run unless in check mode; GlusterError with Gluster's words when refused."""
        self.actions.append(" ".join(args))
        if self.check_mode:
            return ""
        rc, out = self.runner(["docker", "exec", self.container, "gluster", "--mode=script", *args])
        if rc != 0:
            raise GlusterError(f"gluster {' '.join(args)} failed: {' '.join(out.split())[:500]}")
        return out


def wait_for(what: str, probe, timeout: float, interval: float = 1.0, sleep=time.sleep, clock=time.monotonic):
    """probe() until it returns a true value, with a growing interval; GlusterError naming ``what`` at the end."""
    deadline = clock() + timeout
    while True:
        value = probe()
        if value:
            return value
        if clock() >= deadline:
            raise GlusterError(f"{what} within {int(timeout)} s.")
        sleep(interval)
        interval = min(interval * 1.5, 10.0)


def peers(gluster: Gluster) -> dict[str, dict]:
    """The pool as this node sees it: {address: {connected, state}} ("localhost" is this node)."""
    ok, root, _ = gluster.xml("pool", "list")
    if not ok:
        return {}
    out = {}
    for peer in root.iter("peer"):
        names = {peer.findtext("hostname") or ""} | {h.text or "" for h in peer.iter("hostname")}
        for name in names - {""}:
            out[name] = {"connected": (peer.findtext("connected") or "0") == "1",
                         "state": peer.findtext("stateStr") or ""}
    return out


def volume_info(gluster: Gluster, name: str) -> dict | None:
    ok, root, error = gluster.xml("volume", "info", name)
    if not ok:
        if "does not exist" in error:
            return None
        raise GlusterError(f"gluster volume info {name} failed: {error}")
    volume = root.find(".//volume")
    return {"status": volume.findtext("statusStr") or "",
            "replica": int(volume.findtext("replicaCount") or 1),
            "bricks": [b.findtext("name") for b in volume.iter("brick")],
            "options": {o.findtext("name"): o.findtext("value") for o in volume.iter("option")}}


def brick_usage(gluster: Gluster, name: str) -> dict[str, dict]:
    """{brick: {online, total, free}} from ``volume status <name> detail``."""
    ok, root, error = gluster.xml("volume", "status", name, "detail")
    if not ok:
        raise GlusterError(f"gluster volume status {name} detail failed: {error}")
    out = {}
    for node in root.iter("node"):
        host, path = node.findtext("hostname"), node.findtext("path")
        if not host or not path or not path.startswith("/"):
            continue
        out[f"{host}:{path}"] = {"online": (node.findtext("status") or "0") == "1",
                                 "total": int(node.findtext("sizeTotal") or 0),
                                 "free": int(node.findtext("sizeFree") or 0)}
    return out


def shrink_errors(name: str, current: list[str], leaving: list[str], replica: int,
                  usage: dict[str, dict]) -> list[str]:
    """Why taking ``leaving`` off volume ``name`` would lose data (empty when its data can move)."""
    sets = [current[i:i + replica] for i in range(0, len(current), replica)]
    broken = [s for s in sets if 0 < len(set(s) & set(leaving)) < len(s)]
    if broken:
        return [f"volume {name}: taking {', '.join(b for s in broken for b in s if b in leaving)} off would break "
                f"the replica set {', '.join(broken[0])}; remove whole sets of {replica} nodes at once, or keep "
                "the node in the cluster's spec."]
    offline = [b for b in leaving if not (usage.get(b) or {}).get("online")]
    if offline:
        return [f"volume {name}: the leaving brick {', '.join(offline)} is offline, so its data cannot be moved to "
                "the other bricks; bring its node and glusterd back and run again, or move the data off by hand "
                "(gluster volume remove-brick ... force loses it)."]
    used = sum(usage[b]["total"] - usage[b]["free"] for b in leaving) / replica
    room = sum(usage[b]["free"] for b in current if b not in leaving and b in usage) / replica
    if used > room:
        return [f"volume {name}: the leaving bricks hold {used / 1024**3:.1f} GiB but the others have room for "
                f"{room / 1024**3:.1f} GiB; grow the other bricks or free space before shrinking."]
    return []


def remove_bricks(gluster: Gluster, name: str, leaving: list[str], timeout: float, sleep=time.sleep) -> None:
    """Move the leaving bricks' data off (start, or pick up a started move), wait, then commit."""
    ok, _, _ = gluster.xml("volume", "remove-brick", name, *leaving, "status")
    if not ok:
        gluster.change("volume", "remove-brick", name, *leaving, "start")
    if gluster.check_mode:
        gluster.actions.append(" ".join(["volume", "remove-brick", name, *leaving, "commit"]))
        return

    wait_for(f"volume {name}: the data of {', '.join(leaving)} did not move to the other bricks",
             lambda: completed(gluster, ("volume", "remove-brick", name, *leaving, "status"),
                               f"volume {name}: moving the data off {', '.join(leaving)} failed; see gluster volume "
                               "remove-brick ... status on the first server, then run again."),
             timeout, sleep=sleep)
    gluster.change("volume", "remove-brick", name, *leaving, "commit")
    rebalance_and_wait(gluster, name, timeout, sleep=sleep)


def rebalance_and_wait(gluster: Gluster, name: str, timeout: float, sleep=time.sleep) -> None:
    """After a shrink's commit: the move re-lays the directories over the bricks that stay without moving their
    files to where the new layout hashes them, so clients that trust the layout (lookup-optimize, Gluster's
    default) miss files. A rebalance, waited for, puts every file where its hash says."""
    gluster.change("volume", "rebalance", name, "start")
    if gluster.check_mode:
        return

    wait_for(f"volume {name}: the rebalance after the shrink did not finish",
             lambda: completed(gluster, ("volume", "rebalance", name, "status"),
                               f"volume {name}: the rebalance after the shrink failed; see gluster volume rebalance "
                               f"{name} status on the first server, then run again."),
             timeout, sleep=sleep)


def completed(gluster: Gluster, status: tuple[str, ...], failed: str) -> bool:
    """Whether a remove-brick or rebalance task is completed on every node (its ``status`` XML); ``failed`` is the
    sentence when a node says it failed."""
    ok, root, error = gluster.xml(*status)
    if not ok:
        raise GlusterError(f"gluster {' '.join(status)} failed: {error}")
    states = {(node.findtext("statusStr") or "").lower() for node in root.iter("node")}
    if "failed" in states:
        raise GlusterError(failed)
    return bool(states) and states <= {"completed"}


def unfinished_shrink(gluster: Gluster, volume: dict) -> list[str]:
    """Peers a shrink cut off after its commit left behind: in the pool, serving no brick of any volume, and
    neither a server of this volume nor a node the run left out. Their volume still needs its rebalance."""
    ok, root, _ = gluster.xml("pool", "list")
    if not ok:
        return []
    kept = set(volume["peers"]) | set(volume.get("outside") or []) | {"localhost", volume.get("self")}
    ok, info, error = gluster.xml("volume", "info", "all")
    if not ok:
        raise GlusterError(f"gluster volume info all failed: {error}")
    serving = {(b.findtext("name") or "").rsplit(":", 1)[0] for b in info.iter("brick")}
    stale = []
    for peer in root.iter("peer"):
        names = {h.text or "" for h in peer.iter("hostname")} - {""}
        if names and not names & (kept | serving):
            stale.append(sorted(names)[0])
    return sorted(stale)


def probe(gluster: Gluster, address: str, timeout: float, sleep=time.sleep) -> None:
    """Probe a peer, again while its glusterd is still starting (a container made a moment ago)."""
    def answered():
        try:
            gluster.change("peer", "probe", address)
        except GlusterError as exc:
            gluster.actions.pop()
            if not any(words in str(exc) for words in ("not connected", "Transport endpoint", "Connection refused",
                                                        "timed out", "Probe returned with")):
                raise
            return False
        return True

    wait_for(f"the peer {address} did not answer a probe (is its glusterd running, and {address} reachable?)",
             answered, timeout, sleep=sleep)


def converge(gluster: Gluster, volume: dict, timeout: float, sleep=time.sleep, shrink: bool = True) -> None:
    name = volume["name"]
    if volume.get("state") == "absent" and not gluster.running():
        return  # no glusterd on the first server any more: the volume went with it (a second absent run)
    wait_for("glusterd in the container did not answer", lambda: gluster.xml("pool", "list")[0], timeout, sleep=sleep)
    info = volume_info(gluster, name)
    if volume.get("state") == "absent":
        if info is not None:
            if info["status"] == "Started":
                gluster.change("volume", "stop", name)
            gluster.change("volume", "delete", name)
        return
    pool = peers(gluster)
    for address in volume["peers"]:
        if address != volume.get("self") and address not in pool:
            probe(gluster, address, timeout, sleep)
    if not gluster.check_mode:
        others = [a for a in volume["peers"] if a != volume.get("self")]

        def joined():
            pool = peers(gluster)
            return all(pool.get(a, {}).get("connected") and pool[a]["state"] == "Peer in Cluster" for a in others)

        wait_for(f"volume {name}: the peers {', '.join(others)} did not all join glusterd's pool", joined,
                 timeout, sleep=sleep)
    replica, bricks = int(volume.get("replica") or 1), list(volume["bricks"])
    if info is None:
        layout = ["replica", str(replica)] if replica > 1 else []
        if replica > 1 and int(volume.get("arbiter") or 0):
            layout += ["arbiter", "1"]
        gluster.change("volume", "create", name, *layout, "transport", "tcp", *bricks, "force")
        info = {"status": "Created", "replica": replica, "bricks": bricks, "options": {}}
    else:
        adding = [b for b in bricks if b not in info["bricks"]]
        # A brick of a node the run left out (--limit) is not leaving: only a node gone from the cluster's spec is.
        outside = set(volume.get("outside") or [])
        leaving = [b for b in info["bricks"] if b not in bricks and b.rsplit(":", 1)[0] not in outside]
        if leaving and not shrink:
            raise GlusterError(f"volume {name}: the bricks {', '.join(leaving)} would leave it, and shrinking a "
                               "hyperconverged volume is off (container_infra_storage_gluster_shrink); keep their "
                               "nodes in the play, or move the data off by hand (gluster volume remove-brick).")
        if leaving:
            errors = shrink_errors(name, info["bricks"], leaving, info["replica"], brick_usage(gluster, name))
            if errors:
                raise GlusterError(" ".join(errors))
        if adding:
            if len(adding) % info["replica"]:
                raise GlusterError(f"volume {name}: {len(adding)} new bricks are not a multiple of its replica "
                                   f"{info['replica']}; add serving nodes in sets of {info['replica']}.")
            gluster.change("volume", "add-brick", name, *adding, "force")
        if leaving:
            remove_bricks(gluster, name, leaving, timeout, sleep=sleep)
        if adding:
            gluster.change("volume", "rebalance", name, "start")
        unfinished = [] if leaving or adding else unfinished_shrink(gluster, volume)
        if unfinished:
            rebalance_and_wait(gluster, name, timeout, sleep=sleep)
        if (leaving or unfinished) and not gluster.check_mode:
            pool, kept = peers(gluster), set(volume["peers"])
            for address in sorted(({b.rsplit(":", 1)[0] for b in leaving} | set(unfinished)) - kept):
                if address in pool:
                    try:
                        gluster.change("peer", "detach", address)
                    except GlusterError as exc:
                        # Still serving another volume's brick: it stays in the pool.
                        if "brick" not in str(exc).lower():
                            raise
                        gluster.actions.pop()
    for key, value in sorted((volume.get("options") or {}).items()):
        if info["options"].get(key) != str(value):
            gluster.change("volume", "set", name, key, str(value))
    if info["status"] != "Started":
        gluster.change("volume", "start", name)


def size_bytes(size: str) -> int:
    number = size.rstrip("KMGTPB")
    return math.floor(float(number) * UNITS[size[len(number):]])


def quota(gluster: Gluster, volume: dict) -> None:
    """The directories' hard limits (made in the mounted volume first: Gluster limits existing directories)."""
    limits = volume.get("quota") or {}
    if not limits:
        return
    name = volume["name"]
    info = volume_info(gluster, name) or {"options": {}}
    if info["options"].get("features.quota") != "on":
        gluster.change("volume", "quota", name, "enable")
    ok, root, _ = gluster.xml("volume", "quota", name, "list")
    current = {}
    if ok:
        for limit in root.iter("limit"):
            current[limit.findtext("path")] = int(limit.findtext("hard_limit") or 0)
    for directory, size in sorted(limits.items()):
        if current.get(directory) == size_bytes(size):
            continue
        inside = os.path.join(volume["path"], directory.lstrip("/"))
        if not os.path.isdir(inside):
            gluster.actions.append(f"mkdir {inside}")
            if not gluster.check_mode:
                os.makedirs(inside, exist_ok=True)
        gluster.change("volume", "quota", name, "limit-usage", directory, size)


def main():
    module = AnsibleModule(
        argument_spec={
            "container": {"type": "str", "default": "container-infra-glusterd"},
            "volume": {"type": "dict", "required": True},
            "step": {"type": "str", "default": "volume", "choices": ["volume", "quota"]},
            "shrink": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 600},
        },
        supports_check_mode=True,
    )
    gluster = Gluster(module.params["container"], module.check_mode)
    volume = module.params["volume"]
    try:
        if module.params["step"] == "quota":
            quota(gluster, volume)
        else:
            converge(gluster, volume, module.params["timeout"], shrink=module.params["shrink"])
    except GlusterError as exc:
        module.fail_json(msg=str(exc), actions=gluster.actions)
    module.exit_json(changed=bool(gluster.actions), actions=gluster.actions)


if __name__ == "__main__":
    main()
