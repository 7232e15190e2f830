"""Make the sandbox cloud hold what sandbox/seed.yaml describes.

Ensure-only: what is missing is created, what exists is left as it is (an operator's hand edits
survive), nothing is deleted. One listing per resource kind, not one lookup per item.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

IPOIB_MTU = {"datagram": 2044, "connected": 65520}

Report = Callable[[str], None]


class SeedError(ValueError):
    """The seed file says something the sandbox cannot make."""


def load_seed(path: Path) -> dict[str, Any]:
    try:
        seed = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SeedError(f"{path} is not valid YAML ({error}); fix the file or restore it from git") from error
    if not isinstance(seed, dict):
        raise SeedError(f"{path} must hold a mapping with projects, users, flavors, images, networks")
    for network in seed.get("networks", []):
        mode = network.get("ipoib_mode")
        if mode is not None and mode not in IPOIB_MTU:
            raise SeedError(
                f"network {network.get('name')!r} in {path} has ipoib_mode {mode!r}; use datagram or connected"
            )
    return seed


def network_mtu(network: Mapping[str, Any]) -> int | None:
    if "ipoib_mode" in network:
        return IPOIB_MTU[network["ipoib_mode"]]
    return network.get("mtu")


def apply_seed(conn, seed: Mapping[str, Any], passwords: Mapping[str, str], report: Report) -> None:
    projects = _ensure_identity(conn, seed, passwords)
    _ensure_flavors(conn, seed.get("flavors", []))
    _ensure_images(conn, seed.get("images", []))
    _ensure_networks(conn, seed.get("networks", []), projects)
    _ensure_share_types(conn, seed.get("share_types", []))
    report("seeded projects, users, flavors, images, networks and share types")


def _ensure_identity(conn, seed, passwords) -> dict[str, str]:
    identity = conn.identity
    domain = identity.find_domain("default")
    projects = {project.name: project for project in identity.projects(domain_id=domain.id)}
    for spec in seed.get("projects", []):
        if spec["name"] not in projects:
            projects[spec["name"]] = identity.create_project(
                name=spec["name"], domain_id=domain.id, description=spec.get("description", "")
            )
    roles = {role.name: role for role in identity.roles()}
    users = {user.name: user for user in identity.users(domain_id=domain.id)}
    for spec in seed.get("users", []):
        name = spec["name"]
        if name not in passwords:
            raise SeedError(f"user {name!r} in the seed has no password in secrets.yaml; add it or remove the user")
        project = projects[spec["project"]]
        user = users.get(name)
        if user is None:
            user = identity.create_user(
                name=name, password=passwords[name], domain_id=domain.id, default_project_id=project.id
            )
        elif name != "admin" and not _password_works(conn, user.id, passwords[name]):
            # Only when it changed: Keystone revokes every token of a user whose password is set, and
            # the sandbox is shared, so a no-op reset would fail other clients' operations in flight.
            identity.update_user(user, password=passwords[name])
        if spec["role"] not in roles:
            raise SeedError(f"role {spec['role']!r} of user {name!r} does not exist in Keystone")
        identity.assign_project_role_to_user(project, user, roles[spec["role"]])
    return {name: project.id for name, project in projects.items()}


def _password_works(conn, user_id: str, password: str) -> bool:
    """Whether Keystone issues the user an (unscoped) token with this password."""
    from keystoneauth1 import exceptions, session
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url=conn.session.auth.auth_url, user_id=user_id, password=password)
    try:
        session.Session(auth=auth).get_token()
    except exceptions.Unauthorized:
        return False
    return True


def _ensure_flavors(conn, flavors) -> None:
    existing = {flavor.name: flavor for flavor in conn.compute.flavors(is_public=None)}
    for spec in flavors:
        flavor = existing.get(spec["name"])
        if flavor is None:
            flavor = conn.compute.create_flavor(
                name=spec["name"], vcpus=spec["vcpus"], ram=spec["ram"], disk=spec["disk"], is_public=True
            )
        wanted = {key: str(value) for key, value in spec.get("extra_specs", {}).items()}
        current = conn.compute.fetch_flavor_extra_specs(flavor).extra_specs or {}
        if any(current.get(key) != value for key, value in wanted.items()):
            conn.compute.create_flavor_extra_specs(flavor, wanted)


def _ensure_images(conn, images) -> None:
    existing = {image.name for image in conn.image.images()}
    for spec in images:
        if spec["name"] in existing:
            continue
        # Nodes never boot from this payload: a few bytes keep Glance's format checks happy.
        conn.image.create_image(
            name=spec["name"],
            disk_format="raw",
            container_format="bare",
            visibility="public",
            data=io.BytesIO(b"container-infra sandbox image\n"),
            allow_duplicates=False,
            **{key: str(value) for key, value in spec.get("properties", {}).items()},
        )


def _ensure_networks(conn, networks, projects) -> None:
    network_api = conn.network
    existing = {net.name: net for net in network_api.networks()}
    subnets = {subnet.name: subnet for subnet in network_api.subnets()}
    routers = {router.name: router for router in network_api.routers()}
    for spec in networks:
        project_id = projects[spec.get("project", "admin")]
        net = existing.get(spec["name"])
        if net is None:
            attrs: dict[str, Any] = {
                "name": spec["name"],
                "project_id": project_id,
                "is_router_external": spec.get("external", False),
                "is_shared": spec.get("shared", False),
            }
            provider = spec.get("provider", {})
            for key in ("network_type", "physical_network", "segmentation_id"):
                if key in provider:
                    attrs[f"provider_{key}"] = provider[key]
            mtu = network_mtu(spec)
            if mtu:
                attrs["mtu"] = mtu
            net = network_api.create_network(**attrs)
            if "ipoib_mode" in spec:
                network_api.set_tags(net, [f"ipoib_mode={spec['ipoib_mode']}"])
            existing[net.name] = net
        for subnet_spec in spec.get("subnets", []):
            if subnet_spec["name"] in subnets:
                continue
            subnets[subnet_spec["name"]] = network_api.create_subnet(
                network_id=net.id, project_id=project_id, ip_version=4, **subnet_spec
            )
        router_spec = spec.get("router")
        if router_spec and router_spec["name"] not in routers:
            external = existing[router_spec["external_network"]]
            router = network_api.create_router(
                name=router_spec["name"],
                project_id=project_id,
                external_gateway_info={"network_id": external.id},
            )
            for subnet_spec in spec.get("subnets", []):
                network_api.add_interface_to_router(router, subnet_id=subnets[subnet_spec["name"]].id)
            routers[router.name] = router


def _ensure_share_types(conn, share_types) -> None:
    from manilaclient import client as manila_client

    manila = manila_client.Client("2.65", session=conn.session, service_type="sharev2",
                                  endpoint_type="internalURL", region_name=conn.config.region_name)
    existing = {share_type.name: share_type for share_type in manila.share_types.list()}
    for spec in share_types:
        wanted = {key: str(value) for key, value in spec.get("extra_specs", {}).items()}
        share_type = existing.get(spec["name"])
        if share_type is not None:
            current = share_type.get_keys()
            if any(str(current.get(key)).lower() != value.lower() for key, value in wanted.items()):
                share_type.set_keys(wanted)
            continue
        manila.share_types.create(
            name=spec["name"],
            spec_driver_handles_share_servers=spec.get("driver_handles_share_servers", False),
            extra_specs=spec.get("extra_specs", {}),
            is_public=True,
        )
