"""A Magnum cluster template, as find -> diff -> plan (module os_container_infra_template).

Magnum refuses to change a template that clusters use; then the module fails saying that a new
template (a new name) is the way, unless ``when_in_use: keep`` tells it to leave the template as is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from container_infra import magnum as mg
from container_infra.cloud.errors import explain
from container_infra.cloud.module import ModuleFailure

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


