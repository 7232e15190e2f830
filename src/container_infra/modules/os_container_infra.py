"""os_container_infra: a Magnum cluster, its size, template and nodegroups
(:mod:`container_infra.magnum_cluster` checks, plans and carries it out)."""

from __future__ import annotations

from typing import Any

from container_infra import magnum as mg
from container_infra.cloud.module import ModuleFailure
from container_infra.magnum_cluster import (
    Runner,
    check_references,
    failure_sentence,
    nodegroup_details,
    plan_cluster,
    refusal_message,
    result_cluster,
    template_for,
    validate,
)

NODEGROUP_SPEC = {
    "name": {"type": "str", "required": True},
    "role": {"type": "str", "default": "worker"},
    "flavor": {"type": "str"},
    "image": {"type": "str"},
    "node_count": {"type": "int", "default": 1},
    "min_node_count": {"type": "int"},
    "max_node_count": {"type": "int"},
    "docker_volume_size": {"type": "int"},
    "labels": {"type": "dict"},
    "merge_labels": {"type": "bool", "default": False},
    "node_labels": {"type": "dict"},
    "node_taints": {"type": "list", "elements": "dict"},
}

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent", "query"]},
    "cluster_template": {"type": "str", "aliases": ["cluster_template_id"]},
    "keypair": {"type": "str"},
    "master_count": {"type": "int"},
    "node_count": {"type": "int"},
    "nodes_to_remove": {"type": "list", "elements": "str", "default": []},
    "flavor": {"type": "str", "aliases": ["flavor_id"]},
    "master_flavor": {"type": "str", "aliases": ["master_flavor_id"]},
    "labels": {"type": "dict"},
    "merge_labels": {"type": "bool", "default": False},
    "fixed_network": {"type": "str"},
    "fixed_subnet": {"type": "str"},
    "floating_ip_enabled": {"type": "bool"},
    "master_lb_enabled": {"type": "bool"},
    "docker_volume_size": {"type": "int"},
    "create_timeout": {"type": "int", "default": 60},
    "nodegroups": {"type": "list", "elements": "dict", "options": NODEGROUP_SPEC},
    "upgrade_max_batch_size": {"type": "int", "default": 1},
    "recreate_failed": {"type": "bool", "default": True},
}


def run(module, cloud) -> dict[str, Any]:
    params = module.params
    validate(params)
    magnum = cloud.magnum()
    name = params["name"]
    state = params["state"]

    brief = mg.find_cluster(magnum, name)
    current = mg.get_cluster(magnum, brief["uuid"], missing_ok=True) if brief else None

    runner = Runner(module, cloud, params)
    # A cluster still busy with an earlier operation: wait for it first (a real run only).
    if current is not None and current["status"].endswith("_IN_PROGRESS") and not module.check_mode \
            and params.get("wait", True):
        if current["status"] == "DELETE_IN_PROGRESS":
            runner.wait_cluster_gone(current["uuid"], "earlier deletion")
            current = None
        else:
            current = runner.wait_cluster(current["uuid"], "earlier operation", expect_change=False) \
                if state != "absent" else current

    if state == "query":
        return {"changed": False, "found": current is not None, "cluster": result_cluster(magnum, current),
                "driver_kind": (current or {}).get("driver_kind"), "magnum_microversion": cloud.magnum_version}

    template = nodegroups = None
    details: dict[str, dict[str, Any]] = {}
    resolver = mg.Resolver(cloud.sdk)
    if state == "present":
        template = template_for(params, magnum, current)
        needs_new = current is None or (current["status"] == "CREATE_FAILED" and params["recreate_failed"])
        if needs_new and template is None:
            raise ModuleFailure(f"cluster {name} does not exist; give cluster_template to create it")
        check_references(params, resolver, template, None if needs_new else current)
        if current is not None and not needs_new and (
                params.get("nodegroups") is not None or params.get("node_count") is not None):
            nodegroups = mg.list_nodegroups(magnum, current["uuid"])
            details = nodegroup_details(magnum, current["uuid"], params, nodegroups)
        wants_1_14 = any(ng.get("node_labels") or ng.get("node_taints") for ng in params.get("nodegroups") or [])
        if wants_1_14 and not cloud.magnum_at_least("1.14"):
            raise ModuleFailure(
                f"nodegroups node_labels and node_taints need Magnum API 1.14; this cloud offers "
                f"{cloud.magnum_version}; leave them out on this cloud")

    plan = plan_cluster(params, current, nodegroups, template=template, same=resolver.same,
                        nodegroup_details=details)
    if plan.refusals:
        raise ModuleFailure(refusal_message(name, plan.refusals), cluster=result_cluster(magnum, current),
                            differences=plan.refusals)

    result: dict[str, Any] = {
        "changed": plan.changed,
        "actions": plan.describe(),
        "diff": {"before": plan.before, "after": plan.after},
        "magnum_microversion": cloud.magnum_version,
    }
    if module.check_mode or not plan.changed:
        if state == "present" and current is not None and current["status"].endswith("_FAILED") and not plan.changed:
            raise ModuleFailure(
                failure_sentence(current) + "; fix the cause, then resize or delete the cluster and run again",
                cluster=result_cluster(magnum, current))
        result["cluster"] = result_cluster(magnum, current) if state == "present" else {}
        result["driver_kind"] = (current or {}).get("driver_kind") if state == "present" else None
        return result

    cluster = runner.execute(plan, current)
    result["events"] = runner.events
    result["cluster"] = result_cluster(magnum, cluster) if state == "present" else {}
    result["driver_kind"] = (cluster or {}).get("driver_kind") if state == "present" else None
    return result

