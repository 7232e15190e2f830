#!/usr/bin/python
# Copyright: container-infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module container_infra_docker_daemon: keys of a node's daemon.json, merged, the engine restarted.

Runs ON THE NODE with the node's own python3 and the standard library only (no Docker SDK on the nodes).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_infra_docker_daemon
short_description: Merge keys into a node's Docker daemon.json and restart the engine when it changed
description:
  - Sets the keys of O(settings) in the Docker engine's C(daemon.json), key by key; every other key of the file
    is kept as it is (the file is never replaced by O(settings) alone). A missing file is made.
  - Keys named in O(merge_keys) hold objects merged one level down (C(runtimes) - another role's runtime stays).
  - Refuses, before writing, a key that the running engine also has as a command-line flag (dockerd does not
    start when an option is set both ways).
  - Restarts the engine only when the file changed - with systemd where systemd runs, else by stopping the
    running dockerd and starting it again with its own command line (nodes without an init system).
  - Returns the engine socket's group id (for containers that read the socket).
  - Supports check mode and diff.
version_added: "0.1.0"
author: container-infra
options:
  settings:
    description: The keys to set (a value null removes the key).
    type: dict
    required: true
  path:
    description: The engine's daemon.json.
    type: path
    default: /etc/docker/daemon.json
  restart:
    description: Restart the engine when the file changed.
    type: bool
    default: true
  force_restart:
    description: Restart the engine even when the file is unchanged (it reads its TLS files only when it starts,
      so a renewed certificate needs one).
    type: bool
    default: false
  merge_keys:
    description: Keys whose object values are merged key by key with the file's (a null member removes it).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds the engine may take to answer again after a restart (and, for a Swarm node, to be back
      in its Swarm - a manager until the Swarm's managers answer again, so that restarts one at a time keep
      the quorum).
    type: int
    default: 90
"""

EXAMPLES = r"""
- name: The engine's metrics endpoint
  container_infra_docker_daemon:
    settings:
      metrics-addr: "0.0.0.0:9323"
  become: true
"""

RETURN = r"""
settings:
  description: The file's keys after the run.
  type: dict
  returned: always
restarted:
  description: Whether the engine was restarted.
  type: bool
  returned: always
socket_gid:
  description: The group id of /var/run/docker.sock (null when it does not exist).
  type: int
  returned: always
"""

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

SOCKET = "/var/run/docker.sock"


def merge(current: dict, settings: dict, merge_keys: tuple = ()) -> dict:
    """``current`` with the keys of ``settings`` set (None removes a key); the other keys untouched.

    A key of ``merge_keys`` whose values are objects is merged one level down the same way."""
    out = dict(current)
    for key, value in settings.items():
        if value is None:
            out.pop(key, None)
        elif key in merge_keys and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# daemon.json keys whose command-line flag is not --<key>.
FLAGS = {"runtimes": ("--add-runtime",), "node-generic-resources": ("--node-generic-resource",),
         "hosts": ("-H", "--host"), "labels": ("--label",), "insecure-registries": ("--insecure-registry",),
         "registry-mirrors": ("--registry-mirror",), "storage-driver": ("-s", "--storage-driver"),
         "log-opts": ("--log-opt",), "storage-opts": ("--storage-opt",), "default-ulimits": ("--default-ulimit",),
         "exec-opts": ("--exec-opt",), "debug": ("-D", "--debug"), "group": ("-G", "--group")}


def flag_conflicts(argv: list, keys) -> list:
    """The keys of ``keys`` that the engine's command line ``argv`` also sets."""
    given = {arg.split("=", 1)[0] for arg in argv[1:] if arg.startswith("-")}
    return sorted(key for key in keys if given & set(FLAGS.get(key, (f"--{key}",))))


def read(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("its top level is not an object")
    return value


def write(path: str, value: dict) -> None:
    """Atomically, keeping the file's mode (0644 for a new one)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".daemon.json.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(temp, mode)
    os.replace(temp, path)


def dockerd_pid() -> int | None:
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/comm", encoding="utf-8") as handle:
                if handle.read().strip() == "dockerd":
                    return int(name)
        except OSError:
            continue
    return None


def engine_answers() -> bool:
    return subprocess.run(["docker", "info", "--format", "{{.ID}}"], capture_output=True).returncode == 0


def swarm_state() -> dict:
    """The engine's Swarm state: LocalNodeState and ControlAvailable (a manager), {} when it does not answer."""
    done = subprocess.run(["docker", "info", "--format", "{{json .Swarm}}"], capture_output=True, text=True)
    try:
        return json.loads(done.stdout) if done.returncode == 0 else {}
    except ValueError:
        return {}


def swarm_back(before: dict) -> bool:
    """Whether the node is back in the Swarm it was in: a manager once the managers answer (a quorum)."""
    if before.get("LocalNodeState") != "active":
        return True
    now = swarm_state()
    if now.get("LocalNodeState") != "active":
        return False
    if before.get("ControlAvailable"):
        return subprocess.run(["docker", "node", "ls", "-q"], capture_output=True).returncode == 0
    return True


def engine_argv() -> list:
    pid = dockerd_pid()
    if pid is None:
        return []
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return [part.decode() for part in handle.read().split(b"\0") if part]


def restart(timeout: int) -> None:
    swarm = swarm_state()
    if os.path.isdir("/run/systemd/system"):
        subprocess.run(["systemctl", "restart", "docker"], check=True, capture_output=True)
    else:
        # No init system (a container node): the same command line again, so its flags are kept.
        pid = dockerd_pid()
        if pid is None:
            raise RuntimeError("no dockerd runs and there is no systemd to start one")
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [part.decode() for part in handle.read().split(b"\0") if part]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while os.path.exists(f"/proc/{pid}"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd (pid {pid}) did not stop within {timeout} s")
            time.sleep(0.5)
        with open("/var/log/dockerd.log", "ab") as log:
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not engine_answers():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Docker engine did not answer within {timeout} s of its restart")
        time.sleep(1)
    while not swarm_back(swarm):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the node was not back in its Swarm within {timeout} s of the engine's restart")
        time.sleep(1)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "settings": {"type": "dict", "required": True},
            "path": {"type": "path", "default": "/etc/docker/daemon.json"},
            "restart": {"type": "bool", "default": True},
            "force_restart": {"type": "bool", "default": False},
            "merge_keys": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 90},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        current = read(path)
    except ValueError as exc:
        module.fail_json(msg=f"{path} is not a JSON object ({exc}); fix the file by hand, then run again")
    settings = module.params["settings"]
    wanted = merge(current, settings, tuple(module.params["merge_keys"]))
    changed = wanted != current
    both = flag_conflicts(engine_argv(), [key for key, value in settings.items() if value is not None])
    if changed and both:
        module.fail_json(msg=f"the Docker engine on this node sets {', '.join(both)} on its command line; dockerd "
                             f"refuses an option set both there and in {path}: remove the flag, then run again")
    restarted = False
    forced = module.params["force_restart"] and module.params["restart"]
    if (changed or forced) and not module.check_mode:
        if changed:
            write(path, wanted)
        if module.params["restart"]:
            try:
                restart(module.params["timeout"])
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                # The engine refused the new file: the old one back, so the node keeps its engine.
                write(path, current)
                try:
                    restart(module.params["timeout"])
                    state = "the previous file was put back and the engine runs with it"
                except (RuntimeError, subprocess.CalledProcessError) as again:
                    state = f"with the previous file put back it did not start either ({again})"
                module.fail_json(msg=f"the Docker engine did not restart with the new {path} ({exc}); {state}; "
                                     "look at its log on the node")
            restarted = True
    gid = os.stat(SOCKET).st_gid if os.path.exists(SOCKET) else None
    module.exit_json(changed=changed or forced, settings=wanted, restarted=restarted, socket_gid=gid,
                     diff={"before": json.dumps(current, indent=2, sort_keys=True) + "\n",
                           "after": json.dumps(wanted, indent=2, sort_keys=True) + "\n"})


if __name__ == "__main__":
    main()
