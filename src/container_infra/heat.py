"""Heat, as the toolkit reads it: a stack's status, outputs, resources (nested) and servers with their roles.

Two requests whatever the depth: the stack (by name or id) and ONE resource listing with
``nested_depth`` (openstacksdk drops that parameter; python-heatclient passes it). Each resource gets
its ``parent`` (the resource, in the enclosing stack, whose nested stack holds it) and its ``path``
from the top stack, which is what tells a server's role: a server under the Magnum resource group
``kube_masters`` is a master, one under ``kube_minions`` a worker (``swarm_primary_master``,
``swarm_secondary_masters``, ``swarm_masters`` and ``swarm_nodes`` likewise), and otherwise the
template's naming (``kube-master``, ``kube-minion``, ``*master*``, ``*node*``) decides.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.ids import UUID_TEXT

#: Magnum's resource groups (Heat-era Kubernetes and Swarm drivers) -> node role.
GROUP_ROLES = {
    "kube_masters": "master",
    "kube_minions": "worker",
    "swarm_primary_master": "master",
    "swarm_secondary_masters": "master",
    "swarm_masters": "master",
    "swarm_nodes": "worker",
}
SERVER_TYPE = "OS::Nova::Server"


def _link(resource: dict, rel: str) -> str | None:
    for link in resource.get("links") or []:
        if link.get("rel") == rel:
            return link.get("href")
    return None


def _stack_id_of(href: str | None) -> str | None:
    """The stack id in a Heat link ``.../stacks/<name>/<id>[/resources/<name>]``."""
    if not href:
        return None
    match = re.search(rf"/stacks/[^/]+/({UUID_TEXT})", href, re.IGNORECASE)
    return match.group(1) if match else None


def annotate(resources: list[dict], top_stack_id: str) -> list[dict]:
    """Add ``stack_id``, ``parent``, ``path`` (list of resource names from the top stack) and
    ``depth`` to each resource, from the links Heat gives (no further request)."""
    by_nested: dict[str, dict] = {}
    for resource in resources:
        resource["stack_id"] = _stack_id_of(_link(resource, "stack"))
        nested = _stack_id_of(_link(resource, "nested"))
        if nested:
            by_nested[nested] = resource
    for resource in resources:
        path: list[str] = []
        node = resource
        seen = set()
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            path.insert(0, node["resource_name"])
            parent_stack = node.get("stack_id")
            node = by_nested.get(parent_stack) if parent_stack and parent_stack != top_stack_id else None
        parent = by_nested.get(resource.get("stack_id") or "")
        resource["parent"] = parent["resource_name"] if parent else resource.get("parent_resource")
        resource["path"] = path
        resource["depth"] = len(path) - 1
    return resources


def role_of(resource: dict) -> str | None:
    """master / worker from the Magnum resource group above the server, else from its naming."""
    for name in reversed(resource.get("path") or [resource["resource_name"]]):
        if name in GROUP_ROLES:
            return GROUP_ROLES[name]
    name = resource["resource_name"].lower()
    if "master" in name or "manager" in name:
        return "master"
    if "minion" in name or "node" in name or "worker" in name:
        return "worker"
    return None


def servers_of(resources: list[dict]) -> list[dict]:
    servers = []
    for resource in resources:
        if resource.get("resource_type") != SERVER_TYPE:
            continue
        servers.append({
            "resource_name": resource["resource_name"],
            "server_id": resource.get("physical_resource_id") or None,
            "role": role_of(resource),
            "group": next((n for n in reversed(resource.get("path", [])) if n in GROUP_ROLES), None),
            "index": _group_index(resource),
            "status": resource.get("resource_status"),
            "parent": resource.get("parent"),
        })
    servers.sort(key=lambda s: (s["role"] or "~", s["group"] or "", s["index"] if s["index"] is not None else -1))
    return servers


def _group_index(resource: dict) -> int | None:
    """The member index inside a ResourceGroup (the path element right under the group)."""
    path = resource.get("path") or []
    for position, name in enumerate(path[:-1]):
        if name in GROUP_ROLES and path[position + 1].isdigit():
            return int(path[position + 1])
    return None


def select(resources: list[dict], types=None, name_pattern=None, statuses=None) -> list[dict]:
    """Filter resources: types (exact or glob), a name pattern (glob, or a regex in /slashes/), statuses."""
    def name_ok(name: str) -> bool:
        if not name_pattern:
            return True
        if len(name_pattern) > 1 and name_pattern.startswith("/") and name_pattern.endswith("/"):
            return re.search(name_pattern[1:-1], name) is not None
        return fnmatch.fnmatchcase(name, name_pattern)

    out = []
    for resource in resources:
        if types and not any(fnmatch.fnmatchcase(resource.get("resource_type", ""), t) for t in types):
            continue
        if statuses and resource.get("resource_status") not in {s.upper() for s in statuses}:
            continue
        if not name_ok(resource["resource_name"]):
            continue
        out.append(resource)
    return out


KEEP = ("resource_name", "logical_resource_id", "physical_resource_id", "resource_type", "resource_status",
        "resource_status_reason", "stack_id", "parent", "path", "depth", "required_by", "updated_time",
        "creation_time")


def _as_dict(item: Any) -> dict:
    if isinstance(item, dict):
        return dict(item)
    if hasattr(item, "to_dict"):
        return item.to_dict()
    return dict(item._info)  # heatclient Resource


def outputs_of(stack: dict) -> dict:
    return {o["output_key"]: o.get("output_value") for o in stack.get("outputs") or []}


def stack_facts(heat, ref: str, nested_depth: int = 5, types=None, name_pattern=None, statuses=None,
                missing_ok: bool = False) -> dict:
    """The stack, its outputs and its resources (annotated, filtered) and servers, in two requests.

    ``missing_ok``: a stack Heat answers it does not have is ``{"found": False}``, told apart by the
    answer's kind (404), never by the words of a message (a cloud name that is not in clouds.yaml also
    "was not found", and that must fail)."""
    if nested_depth < 0:
        raise CloudError(f"nested_depth must be 0 or more, not {nested_depth}")
    try:
        stack = _as_dict(heat.stacks.get(ref))
    except Exception as exc:
        error = explain(exc, "reading", f"Heat stack '{ref}'")
        if error.details.get("kind") == "notfound" and missing_ok:
            return {"found": False, "stack": None, "outputs": {}, "resources": [], "servers": []}
        if error.details.get("kind") == "notfound":
            raise CloudError(f"Heat stack '{ref}' was not found in the project; check the name or id with "
                             "`openstack stack list` (a Cluster API cluster has no stack)",
                             status=404, details=error.details) from exc
        raise error from exc
    ident = f"{stack['stack_name']}/{stack['id']}"
    try:
        raw = heat.resources.list(ident, nested_depth=nested_depth) if nested_depth else heat.resources.list(ident)
    except Exception as exc:
        raise explain(exc, "listing the resources of", f"Heat stack '{stack['stack_name']}'") from exc
    resources = annotate([_as_dict(r) for r in raw], stack["id"])
    selected = select(resources, types, name_pattern, statuses)
    return {
        "found": True,
        "stack": {
            "id": stack["id"],
            "name": stack["stack_name"],
            "status": stack.get("stack_status"),
            "status_reason": stack.get("stack_status_reason"),
            "creation_time": stack.get("creation_time"),
            "updated_time": stack.get("updated_time"),
            "parameters": stack.get("parameters") or {},
            "tags": stack.get("tags"),
        },
        "outputs": outputs_of(stack),
        "resources": [{k: r.get(k) for k in KEEP} for r in selected],
        "servers": servers_of(resources),
    }


def stack_cluster(heat, ref: str) -> dict[str, Any]:
    """A Heat stack not made by Magnum (the toolkit's Swarm without Magnum) in a Magnum cluster's shape."""
    try:
        stack = heat.stacks.get(ref)
    except Exception as exc:
        error = explain(exc, "reading", f"Heat stack '{ref}'")
        if error.details.get("kind") == "notfound":
            raise CloudError(f"Heat stack '{ref}' was not found in the project; check its name with "
                             "`openstack stack list`", status=404, details=error.details) from exc
        raise error from exc
    return {"name": stack.stack_name, "uuid": stack.id, "stack_id": stack.id, "status": stack.stack_status}
