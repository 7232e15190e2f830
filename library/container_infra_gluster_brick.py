#!/usr/bin/python
# Copyright: container-infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module container_infra_gluster_brick: a node's Gluster bricks, on a directory or on block devices.

Runs ON THE NODE with the node's own python3 and the standard library only (blkid, mdadm, mkfs.xfs, mount).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_infra_gluster_brick
short_description: Prepare a node's Gluster bricks (a directory, or XFS on one device or on a RAID0 of several)
description:
  - For each entry of O(bricks), make C(<root>/brick), the directory Gluster serves.
  - With O(bricks[].devices), the root is an XFS file system (inode size 512, as Gluster advises) on the device, or
    on a RAID0 array (mdadm, metadata 1.2, recorded in mdadm.conf so it assembles at boot) over several devices,
    mounted on the root now and at boot (an fstab line with C(nofail)).
  - A device, or an array, that already holds a file system or data is never formatted unless
    O(bricks[].force) is set; a device already in this brick's array, or an array or device already holding the
    brick's XFS, is taken as it is (a second run changes nothing).
  - Supports check mode.
version_added: "0.1.0"
author: container-infra
options:
  bricks:
    description: The bricks of the node.
    type: list
    elements: dict
    required: true
    suboptions:
      volume: {description: The volume (for messages)., type: str, required: true}
      root: {description: The brick's root (the XFS mount point with devices)., type: str, required: true}
      devices: {description: Block devices for the brick (RAID0 when several)., type: list, elements: str, default: []}
      force: {description: Format devices that hold a file system or data (it is lost)., type: bool, default: false}
      raid_name: {description: The array's name (C(/dev/md/<raid_name>))., type: str}
  fstab:
    description: The fstab file.
    type: path
    default: /etc/fstab
  mdadm_conf:
    description: mdadm's configuration file (Debian's; C(/etc/mdadm.conf) on the RedHat family).
    type: path
    default: /etc/mdadm/mdadm.conf
"""

EXAMPLES = r"""
- name: A brick on two NVMe devices (RAID0, XFS)
  container_infra_gluster_brick:
    bricks:
      - volume: gv0
        root: /var/lib/container-infra/gluster/gv0
        devices: [/dev/nvme1n1, /dev/nvme2n1]
        raid_name: container-infra-gv0
  become: true
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), as commands.
  type: list
  elements: str
  returned: always
"""

import os  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


class BrickError(Exception):
    """A refusal: the message is the module's one sentence."""


class Node:
    """The node's commands and files (a seam for the unit tests)."""

    def __init__(self, check_mode: bool = False):
        self.check_mode = check_mode
        self.actions: list[str] = []

    def run(self, argv: list[str]) -> tuple[int, str]:
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
        return done.returncode, (done.stdout or "") + (done.stderr or "")

    def change(self, argv: list[str]) -> None:
        self.actions.append(" ".join(argv))
        if self.check_mode:
            return
        rc, out = self.run(argv)
        if rc != 0:
            raise BrickError(f"{' '.join(argv)} failed: {' '.join(out.split())[:400]}")

    def is_block_device(self, path: str) -> bool:
        try:
            return stat.S_ISBLK(os.stat(path).st_mode)
        except OSError:
            return False

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def read(self, path: str) -> str:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError:
            return ""

    def write(self, path: str, text: str) -> None:
        self.actions.append(f"write {path}")
        if self.check_mode:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(path + ".tmp", path)

    def makedirs(self, path: str) -> None:
        if os.path.isdir(path):
            return
        self.actions.append(f"mkdir -p {path}")
        if not self.check_mode:
            os.makedirs(path, mode=0o755, exist_ok=True)

    def probe(self, device: str) -> dict[str, str]:
        """blkid's low-level probe of a device: TYPE, UUID... (empty when it holds nothing blkid knows)."""
        rc, out = self.run(["blkid", "-p", "-o", "export", device])
        if rc not in (0, 2):  # 2: nothing found
            raise BrickError(f"blkid -p {device} failed: {' '.join(out.split())[:300]}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def mounted_on(self, path: str) -> str | None:
        """The device mounted on ``path`` (None when nothing is)."""
        for line in self.read("/proc/self/mounts").splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[1] == path:
                return fields[0]
        return None


def array_members(node: Node, array: str) -> set[str]:
    rc, out = node.run(["mdadm", "--detail", "--export", array])
    if rc != 0:
        return set()
    return {line.split("=", 1)[1] for line in out.splitlines() if line.startswith("MD_DEVICE_") and "_DEV=" in line}


def prepare(node: Node, brick: dict, fstab: str, mdadm_conf: str) -> None:
    root, devices, volume = brick["root"], list(brick.get("devices") or []), brick["volume"]
    if devices:
        for device in devices:
            if not node.is_block_device(device):
                raise BrickError(f"volume {volume}: {device} is not a block device on this node; list the node's "
                                 "empty devices in gluster.hyperconverged.devices (lsblk shows them).")
        target = devices[0]
        if len(devices) > 1:
            target = f"/dev/md/{brick.get('raid_name') or 'container-infra-' + volume}"
            if not node.exists(target):
                held = [d for d in devices if node.probe(d).get("TYPE")]
                if held and not brick.get("force"):
                    kinds = ", ".join(f"{d} ({node.probe(d)['TYPE']})" for d in held)
                    raise BrickError(f"volume {volume}: {kinds} already hold data, and a RAID0 over them would "
                                     "destroy it; give empty devices, or set gluster.hyperconverged.force_devices "
                                     "to format them.")
                node.change(["mdadm", "--create", target, "--run", "--level=0", "--metadata=1.2",
                             f"--raid-devices={len(devices)}", *(["--force"] if brick.get("force") else []),
                             *devices])
                scan = f"ARRAY {target} metadata=1.2" if node.check_mode else node.run(
                    ["mdadm", "--detail", "--brief", target])[1]
                conf = node.read(mdadm_conf)
                if target not in conf:
                    node.write(mdadm_conf, conf + ("" if not conf or conf.endswith("\n") else "\n") + scan.strip()
                               + "\n")
            elif not node.check_mode:
                members = array_members(node, target)
                if members and not {os.path.realpath(d) for d in devices} <= {os.path.realpath(m) for m in members}:
                    raise BrickError(f"volume {volume}: the array {target} is made of {', '.join(sorted(members))}, "
                                     f"not of {', '.join(devices)}; stop it (mdadm --stop) or list its devices.")
        found = {} if node.check_mode and not node.exists(target) else node.probe(target)
        if found.get("TYPE") not in (None, "xfs") and not brick.get("force"):
            raise BrickError(f"volume {volume}: {target} holds a {found['TYPE']} file system; give an empty device, "
                             "or set gluster.hyperconverged.force_devices to format it (its data is lost).")
        if found.get("TYPE") != "xfs":
            node.change(["mkfs.xfs", *(["-f"] if brick.get("force") else []), "-i", "size=512", target])
        node.makedirs(root)
        line = f"{target} {root} xfs defaults,noatime,inode64,nofail 0 0"
        table = node.read(fstab)
        lines = [entry for entry in table.splitlines() if entry.split()[1:2] != [root]]
        if line not in table.splitlines():
            node.write(fstab, "\n".join([*lines, line]) + "\n")
        if node.mounted_on(root) is None:
            node.change(["mount", root])
    node.makedirs(os.path.join(root, "brick"))


def main():
    module = AnsibleModule(
        argument_spec={
            "bricks": {"type": "list", "elements": "dict", "required": True},
            "fstab": {"type": "path", "default": "/etc/fstab"},
            "mdadm_conf": {"type": "path", "default": "/etc/mdadm/mdadm.conf"},
        },
        supports_check_mode=True,
    )
    node = Node(module.check_mode)
    try:
        for brick in module.params["bricks"]:
            prepare(node, brick, module.params["fstab"], module.params["mdadm_conf"])
    except BrickError as exc:
        module.fail_json(msg=str(exc), actions=node.actions)
    module.exit_json(changed=bool(node.actions), actions=node.actions)


if __name__ == "__main__":
    main()
