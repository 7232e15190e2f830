"""os_container_infra_template: a Magnum cluster template (:mod:`container_infra.magnum_template` plans it)."""

from __future__ import annotations

from typing import Any

from container_infra import magnum as mg
from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.module import ModuleFailure
from container_infra.magnum_template import FIELDS, UPDATABLE_IN_USE, in_use, plan_template, validate

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "coe": {"type": "str", "choices": ["kubernetes", "swarm", "swarm-mode", "mesos", "dcos"]},
    "image": {"type": "str", "aliases": ["image_id"]},
    "keypair": {"type": "str", "aliases": ["keypair_id"]},
    "flavor": {"type": "str", "aliases": ["flavor_id"]},
    "master_flavor": {"type": "str", "aliases": ["master_flavor_id"]},
    "external_network": {"type": "str", "aliases": ["external_network_id"]},
    "fixed_network": {"type": "str"},
    "fixed_subnet": {"type": "str"},
    "network_driver": {"type": "str"},
    "volume_driver": {"type": "str"},
    "docker_storage_driver": {"type": "str"},
    "docker_volume_size": {"type": "int"},
    "server_type": {"type": "str", "choices": ["vm", "bm"]},
    "labels": {"type": "dict"},
    "floating_ip_enabled": {"type": "bool"},
    "master_lb_enabled": {"type": "bool"},
    "tls_disabled": {"type": "bool"},
    "registry_enabled": {"type": "bool"},
    "insecure_registry": {"type": "str"},
    "public": {"type": "bool"},
    "hidden": {"type": "bool"},
    "dns_nameserver": {"type": "str"},
    "http_proxy": {"type": "str"},
    "https_proxy": {"type": "str"},
    "no_proxy": {"type": "str"},
    "driver": {"type": "str"},
    "when_in_use": {"type": "str", "default": "fail", "choices": ["fail", "keep"]},
}


def run(module, cloud) -> dict[str, Any]:
    params = module.params
    validate(params)
    magnum = cloud.magnum()
    name = params["name"]
    current = mg.find_template(magnum, name, parameter="name")
    resolver = mg.Resolver(cloud.sdk)
    if params["state"] == "present":
        for param, kind in (("image", "image"), ("keypair", "keypair"), ("flavor", "flavor"),
                            ("master_flavor", "flavor"), ("external_network", "network"),
                            ("fixed_network", "network"), ("fixed_subnet", "subnet")):
            value = params.get(param)
            key = FIELDS[param][0]
            if value is not None and (current is None or current.get(key) != value):
                resolver.require(kind, value, param)
    plan = plan_template(params, current, same=resolver.same)
    result: dict[str, Any] = {"changed": plan.changed, "diff": {"before": plan.before, "after": plan.after},
                              "magnum_microversion": cloud.magnum_version}
    users: list[str] = []
    if plan.action in ("update", "delete") and current is not None:
        users = in_use(magnum, current["uuid"])
    if plan.action == "update" and users:
        blocked = [p for p in plan.patch if p["path"].strip("/") not in UPDATABLE_IN_USE]
        if blocked:
            fields = ", ".join(p["path"].strip("/") for p in blocked)
            if params["when_in_use"] == "keep":
                result.update(changed=False, template=current, in_use_by=users,
                              skipped=f"template {name} is in use by {', '.join(users)}; left unchanged ({fields})")
                result["diff"] = {"before": {}, "after": {}}
                return result
            raise ModuleFailure(
                f"cluster template {name} is in use by {', '.join(users)} and Magnum cannot change {fields} "
                "of a template in use; create a new template with a new name and upgrade the clusters to it "
                "(os_container_infra cluster_template), or set when_in_use: keep to leave it",
                in_use_by=users)
    if plan.action == "delete" and users:
        raise ModuleFailure(
            f"cluster template {name} is in use by {', '.join(users)}; delete or upgrade those clusters first")
    result["in_use_by"] = users
    if module.check_mode or not plan.changed:
        result["template"] = current or {}
        return result
    try:
        if plan.action == "create":
            created = magnum.cluster_templates.create(**plan.body)
            result["template"] = mg.info(created)
        elif plan.action == "update":
            updated = magnum.cluster_templates.update(current["uuid"], plan.patch)
            result["template"] = mg.info(updated)
        else:
            magnum.cluster_templates.delete(current["uuid"])
            result["template"] = {}
    except CloudError:
        raise
    except Exception as exc:
        verb = {"create": "creating", "update": "updating", "delete": "deleting"}[plan.action]
        raise explain(exc, verb, f"cluster template {name}") from exc
    if result.get("template"):
        result["template"] = {k: v for k, v in result["template"].items() if k != "links"}
    return result

