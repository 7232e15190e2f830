#!/usr/bin/python
# Copyright: container-infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module container_infra_mount: a node's shared file systems, mounted now and at boot.

Like container_infra_nic this one runs ON THE NODE with the node's own python3 and the standard library
only. One call does a node's every mount (files, client, fstab, mount), so a run with nothing to do
costs one round trip per node.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_infra_mount
short_description: Mount a node's shared file systems (CephFS, GlusterFS, BeeGFS) now and at boot
description:
  - For each entry of O(mounts) with state present, write its files (a ceph.conf, a key file 0600 ...)
    where their content differs, install its client package where the client is missing, write its
    C(/etc/fstab) line (which systemd also reads, through its fstab generator, where systemd runs) and
    mount it. A mounted file system whose fstab line or files changed (a rotated key, a moved export) is
    unmounted and mounted again; one that was not mounted although nothing changed (a restarted node
    without a boot-time mount) is mounted again, and the module warns so.
  - With state absent, unmount, remove the fstab line and the entry's files.
  - The mount point's owner, group and mode are set on the mounted file system's root.
  - Supports check mode.
version_added: "0.1.0"
author: container-infra
options:
  mounts:
    description: The node's file systems.
    type: list
    elements: dict
    required: true
    suboptions:
      name: {description: The file system's name in the spec (for the report)., type: str, required: true}
      kind: {description: cephfs, gluster or beegfs (for the report)., type: str}
      state: {description: present or absent., type: str, default: present, choices: [present, absent]}
      path: {description: The mount point (absolute)., type: str, required: true}
      src: {description: The fstab device field., type: str}
      fstype: {description: The fstab type field (C(fuse.ceph), C(ceph), C(glusterfs), C(beegfs))., type: str}
      options: {description: The fstab options field., type: str, default: defaults}
      owner: {description: Owner of the mounted root., type: str}
      group: {description: Group of the mounted root., type: str}
      mode: {description: Mode of the mounted root (octal string)., type: str}
      binary: {description: The client program; its package is installed when it is missing., type: str}
      package: {description: The package that brings O(mounts[].binary)., type: str}
      files:
        description: Files the mount reads; with state absent, the files to remove (C(path) or C(glob)).
        type: list
        elements: dict
        default: []
        suboptions:
          path: {description: Where., type: str}
          glob: {description: A pattern of files to remove (state absent)., type: str}
          content: {description: The content (secrets are not shown)., type: str, no_log: true}
          mode: {description: Its mode., type: str, default: "0644"}
          secret: {description: Whether it holds a secret (for the report)., type: bool, default: false}
      stale:
        description:
          - Patterns of files an earlier configuration of this mount wrote (its key under another Ceph cluster's
            name after the export moved), removed once it is mounted, except the files of O(mounts[].files).
        type: list
        elements: str
        default: []
  fstab:
    description: The fstab file.
    type: path
    default: /etc/fstab
  timeout:
    description: Seconds a mount may take before it is given up.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Mount a CephFS share with ceph-fuse
  container_infra_mount:
    mounts:
      - name: scratch
        kind: cephfs
        path: /mnt/scratch
        src: none
        fstype: fuse.ceph
        options: ceph.id=scratch,ceph.conf=/etc/ceph/ceph-1.conf,ceph.client_mountpoint=/volumes/x,_netdev
        binary: ceph-fuse
        package: ceph-fuse
        files:
          - {path: /etc/ceph/ceph-1.conf, content: "[global]\n\tmon_host = 10.80.0.2:6789\n"}
  become: true
"""

RETURN = r"""
mounts:
  description: What was done per file system.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: The file system., type: str}
    path: {description: The mount point., type: str}
    action:
      description: none, mounted, remounted, restored (was not mounted, nothing changed), unmounted, removed.
      type: str
    changed: {description: Whether anything changed for it., type: bool}
    removed: {description: The stale files removed (O(mounts[].stale))., type: list, elements: str, returned: when any}
"""

import contextlib  # noqa: E402
import glob  # noqa: E402
import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# Client packages named after Debian's; the RedHat and SUSE families call some otherwise.
PACKAGE_NAMES = {"glusterfs-client": {"dnf": "glusterfs-fuse", "yum": "glusterfs-fuse", "zypper": "glusterfs-fuse"}}


def unescape(field: str) -> str:
    """Mount points in /proc are octal-escaped (space, tab, newline, backslash)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field) - i >= 4 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def escape(field: str) -> str:
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in field)


def mounted_paths(mountinfo: str) -> set[str]:
    return {unescape(line.split()[4]) for line in mountinfo.splitlines() if len(line.split()) > 4}


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def fstab_line(mount: dict) -> str:
    fields = [escape(mount["src"] or "none"), escape(mount["path"]), mount["fstype"], mount["options"] or "defaults"]
    return " ".join(fields) + " 0 0"


def fstab_plan(text: str, path: str, line: str | None) -> tuple[str, bool]:
    """The fstab with the line of mount point ``path`` replaced by ``line`` (None removes it)."""
    lines, found, changed = [], False, False
    for current in text.splitlines():
        fields = current.split()
        if fields and not fields[0].startswith("#") and len(fields) > 1 and unescape(fields[1]) == path:
            if line is None or found:
                changed = True
                continue
            found = True
            if current != line:
                changed = True
            lines.append(line)
        else:
            lines.append(current)
    if line is not None and not found:
        lines.append(line)
        changed = True
    return ("\n".join(lines) + "\n") if lines else "", changed


def write_atomic(path: str, content: str, mode: int) -> None:
    directory = os.path.dirname(path) or "/"
    os.makedirs(directory, mode=0o755, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".container-infra.")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def which(binary: str) -> str | None:
    return shutil.which(binary) or shutil.which(binary, path=os.pathsep.join(SBIN))


def install(module: AnsibleModule, package: str) -> None:
    for manager, command in (("apt-get", ["apt-get", "install", "-y", "--no-install-recommends"]),
                             ("dnf", ["dnf", "install", "-y"]),
                             ("yum", ["yum", "install", "-y"]),
                             ("zypper", ["zypper", "--non-interactive", "install"])):
        if which(manager):
            package = PACKAGE_NAMES.get(package, {}).get(manager, package)
            command = [*command, package]
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            if done.returncode != 0:
                module.fail_json(msg=f"installing {package} with {manager} failed "
                                     f"({done.stderr.strip().splitlines()[-1:] or done.returncode}); make the "
                                     "package installable on the node (its repository) and run again")
            return
    module.fail_json(msg=f"{package} is not installed and the node has no package manager this module knows; "
                         "install it in the node's image")


#: The FUSE clients this module mounts with: each names its mount point in its command line.
FUSE_DAEMONS = ("ceph-fuse", "glusterfs")


def run_bounded(command: list, timeout: int) -> tuple[int | None, str]:
    """Run ``command``: its exit code and output, or (None, why) when it did not end within ``timeout`` s.

    A command stuck in the kernel - an unmount waiting on a FUSE client that no longer answers, such as a
    ceph-fuse whose session its MDS evicted - cannot be killed until the kernel lets go: it is signalled and
    left behind, not waited for (``subprocess.run`` would wait for it for good)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               stdin=subprocess.DEVNULL)
    try:
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, output or ""
    except subprocess.TimeoutExpired:
        process.kill()
        return None, f"no answer within {timeout} s"


def in_mount_table(path: str) -> bool:
    return path in mounted_paths(read("/proc/self/mountinfo") or "")


def fuse_daemons(path: str) -> list[int]:
    """The FUSE client processes that serve the mount point ``path``."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv = [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) in FUSE_DAEMONS and path in argv[1:]:
            pids.append(int(name))
    return pids


def unmount(module: AnsibleModule, path: str, timeout: int) -> None:
    hung = False
    for command in (["umount", path], ["fusermount3", "-u", path], ["fusermount", "-u", path]):
        if not which(command[0]):
            continue
        code, _ = run_bounded(command, timeout)
        if code == 0 and not in_mount_table(path):
            return
        if code is None:
            # Hung on a client that does not answer: the next plain unmount would hang as well.
            hung = True
            break
    # Detached at once whatever the client does (a busy mount stays usable to those that hold it). A FUSE client
    # that did not answer the unmount is stopped: that releases the unmount left waiting on it; its unwritten
    # data was lost with its session.
    run_bounded(["umount", "-l", path], timeout)
    if not in_mount_table(path):
        for pid in fuse_daemons(path) if hung else []:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return
    module.fail_json(msg=f"{path} could not be unmounted (busy?); stop what uses it (fuser -m {path}) and run again")


def mount(module: AnsibleModule, item: dict, timeout: int) -> None:
    path = item["path"]
    _, output = run_bounded(["mount", path], timeout)
    output = output.strip()
    deadline = time.monotonic() + 5
    # Some helpers (mount.fuse.ceph) exit 0 whatever the client did: the mount table is the judge.
    while not in_mount_table(path):
        if time.monotonic() > deadline:
            last = output.splitlines()[-1] if output else "no message"
            module.fail_json(msg=f"mounting {item['name']} on {path} failed ({last}); check that the node reaches "
                                 "the servers on the storage network and that its key is valid, then run again")
        time.sleep(0.2)


def set_root(item: dict) -> bool:
    path, changed = item["path"], False
    info = os.stat(path)
    uid = pwd.getpwnam(item["owner"]).pw_uid if item.get("owner") else -1
    gid = grp.getgrnam(item["group"]).gr_gid if item.get("group") else -1
    if (uid != -1 and uid != info.st_uid) or (gid != -1 and gid != info.st_gid):
        os.chown(path, uid, gid)
        changed = True
    if item.get("mode") and int(str(item["mode"]), 8) != (info.st_mode & 0o7777):
        os.chmod(path, int(str(item["mode"]), 8))
        changed = True
    return changed


def ensure(module: AnsibleModule, item: dict, fstab: str, timeout: int) -> dict:
    check = module.check_mode
    path = item["path"]
    report = {"name": item["name"], "path": path, "action": "none", "changed": False}
    is_mounted = in_mount_table(path)
    fstab_text = read(fstab) or ""
    if item["state"] == "absent":
        new_fstab, fstab_changed = fstab_plan(fstab_text, path, None)
        removed = [f for spec in item["files"] for f in ([spec["path"]] if spec.get("path") else
                                                         glob.glob(spec.get("glob") or ""))
                   if os.path.lexists(f)]
        if not check:
            if is_mounted:
                unmount(module, path, timeout)
            if fstab_changed:
                write_atomic(fstab, new_fstab, 0o644)
            for name in removed:
                os.unlink(name)
        report["changed"] = bool(is_mounted or fstab_changed or removed)
        report["action"] = "unmounted" if is_mounted else ("removed" if report["changed"] else "none")
        return report
    if item.get("binary") and not which(item["binary"]):
        if check:
            report.update(changed=True, action="mounted")
            return report
        install(module, item.get("package") or item["binary"])
    files_changed = False
    for spec in item["files"]:
        mode = int(spec.get("mode") or "0644", 8)
        current = read(spec["path"])
        stat = os.stat(spec["path"]) if current is not None else None
        if current != spec.get("content", "") or (stat and stat.st_mode & 0o7777 != mode):
            files_changed = True
            if not check:
                write_atomic(spec["path"], spec.get("content", ""), mode)
    new_fstab, fstab_changed = fstab_plan(fstab_text, path, fstab_line(item))
    if check:
        changed = files_changed or fstab_changed or not is_mounted
        report.update(changed=changed, action=("remounted" if is_mounted else "mounted") if changed else "none")
        return report
    if fstab_changed:
        write_atomic(fstab, new_fstab, 0o644)
    if is_mounted and (files_changed or fstab_changed):
        unmount(module, path, timeout)
        is_mounted, report["action"] = False, "remounted"
    if not is_mounted:
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o755)
        mount(module, item, timeout)
        if report["action"] == "none":
            report["action"] = "mounted" if (files_changed or fstab_changed) else "restored"
    root_changed = set_root(item)
    # A key left under the old Ceph cluster's name when the export moved is a secret nothing reads any more.
    keep = {spec["path"] for spec in item["files"] if spec.get("path")}
    stale = sorted({f for pattern in item.get("stale") or [] for f in glob.glob(pattern)} - keep)
    for name in stale:
        os.unlink(name)
    if stale:
        report["removed"] = stale
    report["changed"] = bool(files_changed or fstab_changed or report["action"] != "none" or root_changed or stale)
    return report


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "mounts": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "kind": {"type": "str"},
                "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
                "path": {"type": "str", "required": True},
                "src": {"type": "str"},
                "fstype": {"type": "str"},
                "options": {"type": "str", "default": "defaults"},
                "owner": {"type": "str"},
                "group": {"type": "str"},
                "mode": {"type": "str"},
                "binary": {"type": "str"},
                "package": {"type": "str"},
                "files": {"type": "list", "elements": "dict", "default": [], "options": {
                    "path": {"type": "str"},
                    "glob": {"type": "str"},
                    "content": {"type": "str", "no_log": True},
                    "mode": {"type": "str", "default": "0644"},
                    "secret": {"type": "bool", "default": False},
                }},
                "stale": {"type": "list", "elements": "str", "default": []},
            }},
            "fstab": {"type": "path", "default": "/etc/fstab"},
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    reports = []
    for item in module.params["mounts"]:
        if not item["path"].startswith("/"):
            module.fail_json(msg=f"mount point {item['path']!r} of {item['name']} is not absolute; give an absolute "
                                 "path")
        reports.append(ensure(module, item, module.params["fstab"], module.params["timeout"]))
        if reports[-1]["action"] == "restored":
            module.warn(f"{item['name']} was not mounted on {item['path']} although its configuration was in place "
                        "(the node restarted without mounting it at boot?); mounted it again")
    module.exit_json(changed=any(r["changed"] for r in reports), mounts=reports)


if __name__ == "__main__":
    main()
