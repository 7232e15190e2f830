"""os_container_infra_inventory: a Magnum cluster's (or the toolkit's Swarm stack's) static Ansible
inventory file. :func:`container_infra.discovery.collect` reads the cloud in bulk and
:mod:`container_infra.inventory` builds the inventory; this module writes it.
"""

from __future__ import annotations

from typing import Any

from container_infra.cloud.module import ModuleFailure
from container_infra.discovery import collect
from container_infra.inventory import (
    FILE_MODE,
    groups_of,
    host_groups,
    hosts_summary,
    hostvars_of,
    inventory_of,
    network_warning,
    read_existing,
    render,
    write_atomically,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "cluster": {"type": "str", "aliases": ["name"]},
    "stack": {"type": "str"},
    "path": {"type": "path"},
    "network": {"type": "str"},
    "ansible_user": {"type": "str"},
    "extra_host_vars": {"type": "dict", "default": {}},
    "jump_via_master": {"type": "bool", "default": True},
}


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
    # The header names the cloud when it is a clouds.yaml entry (not an inline definition).
    cloud_name = params.get("cloud") if isinstance(params.get("cloud"), str) else None
    text = render(inventory, [cluster["name"]], cloud_name or None)
    result: dict[str, Any] = {
        "changed": False,
        "inventory": inventory,
        "hosts": hosts_summary(inventory),
        "groups": groups_of(inventory),
        # What the cluster role adds to the running play, so that it need not take the inventory apart.
        "hostvars": hostvars_of(inventory),
        "host_groups": host_groups(inventory),
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
