"""os_container_infra_template: a Magnum cluster template, as find -> diff -> plan.

Magnum refuses to change a template that clusters use; then the module fails saying that a new
template (a new name) is the way, unless ``when_in_use: keep`` tells it to leave the template as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from container_infra import magnum as mg
from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.module import ModuleFailure

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

# parameter -> (template field, kind of reference for name/id matching)
FIELDS: dict[str, tuple[str, str | None]] = {
    "coe": ("coe", None),
    "image": ("image_id", "image"),
    "keypair": ("keypair_id", "keypair"),
    "flavor": ("flavor_id", "flavor"),
    "master_flavor": ("master_flavor_id", "flavor"),
    "external_network": ("external_network_id", "network"),
    "fixed_network": ("fixed_network", "network"),
    "fixed_subnet": ("fixed_subnet", "subnet"),
    "network_driver": ("network_driver", None),
    "volume_driver": ("volume_driver", None),
    "docker_storage_driver": ("docker_storage_driver", None),
    "docker_volume_size": ("docker_volume_size", None),
    "server_type": ("server_type", None),
    "labels": ("labels", None),
    "floating_ip_enabled": ("floating_ip_enabled", None),
    "master_lb_enabled": ("master_lb_enabled", None),
    "tls_disabled": ("tls_disabled", None),
    "registry_enabled": ("registry_enabled", None),
    "insecure_registry": ("insecure_registry", None),
    "public": ("public", None),
    "hidden": ("hidden", None),
    "dns_nameserver": ("dns_nameserver", None),
    "http_proxy": ("http_proxy", None),
    "https_proxy": ("https_proxy", None),
    "no_proxy": ("no_proxy", None),
    "driver": ("driver", None),
}
# Fields Magnum lets change on a template that clusters use.
UPDATABLE_IN_USE = {"public", "hidden", "name"}


@dataclass
class Plan:
    action: str | None = None  # create | update | delete
    body: dict[str, Any] = field(default_factory=dict)
    patch: list[dict[str, Any]] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.action is not None


def validate(params: dict[str, Any]) -> None:
    if not mg.NAME.match(params["name"]) and not mg.UUID.match(params["name"]):
        raise ModuleFailure(f"name {params['name']!r} is not a valid template name: start with a letter, then "
                            "letters, digits, '_', '.' or '-'")
    if params.get("docker_volume_size") is not None and params["docker_volume_size"] < 1:
        raise ModuleFailure(f"docker_volume_size must be 1 or more, not {params['docker_volume_size']}")
    mg.clean_labels("labels", params.get("labels"))


def wanted_fields(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for param, (key, _kind) in FIELDS.items():
        value = params.get(param)
        if value is None:
            continue
        out[key] = mg.clean_labels("labels", value) if param == "labels" else value
    return out


def _exact(kind, stored, wanted):
    return stored == wanted


def plan_template(params: dict[str, Any], current: dict[str, Any] | None, same=_exact) -> Plan:
    plan = Plan()
    if params["state"] == "absent":
        if current is not None:
            plan.action = "delete"
            plan.before = {"name": current.get("name"), "uuid": current.get("uuid")}
        return plan
    wanted = wanted_fields(params)
    if current is None:
        for required in ("coe", "image", "external_network"):
            if params.get(required) is None:
                raise ModuleFailure(f"{required} is required to create cluster template {params['name']}")
        plan.action = "create"
        plan.body = {"name": params["name"], **wanted}
        plan.after = dict(plan.body)
        return plan
    for param, (key, kind) in FIELDS.items():
        if key not in wanted:
            continue
        stored = current.get(key)
        value = wanted[key]
        if param == "labels":
            equal = dict(stored or {}) == value
        elif kind:
            equal = same(kind, stored, value)
        else:
            equal = stored == value
        if not equal:
            # Magnum's JSON patch takes labels as the string form of a dict (as python-magnumclient sends it).
            patch_value = str(value) if param == "labels" else value
            plan.patch.append({"op": "replace", "path": f"/{key}", "value": patch_value})
            plan.before[key], plan.after[key] = stored, value
    if plan.patch:
        plan.action = "update"
    return plan


def in_use(magnum, template_uuid: str) -> list[str]:
    try:
        clusters = [mg.info(c) for c in mg.read(magnum.clusters.list)]
    except Exception as exc:
        raise explain(exc, "listing", "clusters") from exc
    return sorted(c.get("name") or c["uuid"] for c in clusters if c.get("cluster_template_id") == template_uuid)


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
