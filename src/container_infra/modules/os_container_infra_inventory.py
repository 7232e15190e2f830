"""os_container_infra_inventory: a Magnum cluster's (or the toolkit's Swarm stack's) static Ansible
inventory file. :func:`container_infra.discovery.collect` reads the cloud in bulk and
:mod:`container_infra.inventory` builds the inventory; this module writes it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from typing import Any

from container_infra.cloud.module import ModuleFailure
from container_infra.discovery import collect
from container_infra.inventory import groups_of, hosts_summary, inventory_of, network_warning, render

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "cluster": {"type": "str", "aliases": ["name"]},
    "stack": {"type": "str"},
    "path": {"type": "path"},
    "network": {"type": "str"},
    "ansible_user": {"type": "str"},
    "extra_host_vars": {"type": "dict", "default": {}},
    "jump_via_master": {"type": "bool", "default": True},
}

FILE_MODE = 0o644


# ---------------------------------------------------------------------------- the file
def read_existing(path: str) -> tuple[str | None, int | None]:
    """The file's text and mode, (None, None) when there is none."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        return text, stat.S_IMODE(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None, None  # writing says what is wrong with the path
    except IsADirectoryError:
        raise ModuleFailure(f"path {path} is a directory; set path to a file name, such as "
                            f"{os.path.join(path, 'hosts.yml')}") from None
    except (OSError, UnicodeDecodeError) as exc:
        said = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ModuleFailure(f"reading the inventory file {path} failed: {said}; fix its permissions or "
                            "choose another path") from None


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (parents made, mode 0644) through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    ancestor = directory
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ModuleFailure(f"writing the inventory file {path} failed: {ancestor} is a file, not a directory; "
                            "choose a path you can write (option path)")
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".inventory-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temporary, FILE_MODE)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise ModuleFailure(f"writing the inventory file {path} failed: {exc.strerror or exc}; choose a path "
                            "you can write (option path) or fix the permissions of its directory") from None


# ---------------------------------------------------------------------------- the module
def cloud_label(params: dict[str, Any]) -> str | None:
    cloud = params.get("cloud")
    return cloud if isinstance(cloud, str) and cloud else None


def run(module, cloud) -> dict[str, Any]:
    params = module.params
    path = params.get("path")
    if path is not None and not path.strip():
        raise ModuleFailure("path is empty; give the inventory file to write, or leave path out")
    if params.get("stack"):
        collected = collect(cloud, None, stacks=[params["stack"]], clusters=False)
    else:
        collected = collect(cloud, [params["cluster"]])
    inventory = inventory_of(collected, network=params.get("network"), ansible_user=params.get("ansible_user"),
                             extra_host_vars=params.get("extra_host_vars"),
                             jump_via_master=params["jump_via_master"])
    for warning in collected["warnings"] + [network_warning(inventory, params.get("network"))]:
        if warning:
            module.warn(warning)
    cluster = collected["clusters"][0]
    text = render(inventory, [cluster["name"]], cloud_label(params))
    result: dict[str, Any] = {
        "changed": False,
        "inventory": inventory,
        "hosts": hosts_summary(inventory),
        "groups": groups_of(inventory),
        "path": path,
        "cluster": {k: cluster[k] for k in ("name", "uuid", "era", "stack_id", "status")},
    }
    if path:
        before, mode = read_existing(path)
        result["changed"] = before != text or mode != FILE_MODE
        result["diff"] = {"before": before or "", "after": text, "before_header": path, "after_header": path}
        if result["changed"] and not module.check_mode:
            write_atomically(path, text)
    return result
