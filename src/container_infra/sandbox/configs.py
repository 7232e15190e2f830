"""The sandbox services' configuration files, as data.

Each service gets an ini file rendered from a dict of sections. Every service talks to the others
on the ``internal`` interface (straight to the service), so that faults injected at the public
endpoints (the fault proxy) reach the toolkit's clients only, as a flaky cloud would.
"""

from __future__ import annotations

import configparser
import json
import shutil
from collections.abc import Mapping
from io import StringIO
from pathlib import Path

from container_infra.sandbox import ceph, registry
from container_infra.sandbox.layout import (
    APIS,
    APIS_BY_NAME,
    FAULT_ADMIN_PORT,
    HOST,
    MARIADB_PORT,
    RABBIT_PORT,
    REGION,
    Layout,
)

Sections = dict[str, dict[str, str]]

# One database per service (nova has three); one database user for all of them.
DATABASES = (
    "keystone",
    "glance",
    "placement",
    "nova_api",
    "nova",
    "nova_cell0",
    "neutron",
    "heat",
    "magnum",
    "manila",
)
DB_USER = "openstack"
RABBIT_USER = "openstack"

# Service users in the "service" project, each with the admin and service roles (Nova rejects
# Neutron's notifications without the service role).
SERVICE_USERS = ("glance", "placement", "nova", "neutron", "heat", "magnum", "manila")

# The provider networks' physical networks and their largest MTU.
PHYSNET_MTUS = {"public": 1500, "hte": 9000, "lln": 65520, "storage": 9000}


def db_url(secrets: Mapping[str, str], database: str) -> str:
    return f"mysql+pymysql://{DB_USER}:{secrets['database']}@{HOST}:{MARIADB_PORT}/{database}?charset=utf8"


def transport_url(secrets: Mapping[str, str]) -> str:
    return f"rabbit://{RABBIT_USER}:{secrets['rabbit']}@{HOST}:{RABBIT_PORT}/"


def _keystone_auth(secrets: Mapping[str, str], user: str) -> dict[str, str]:
    """Options of a keystoneauth password plugin section for a service user."""
    return {
        "auth_type": "password",
        "auth_url": APIS_BY_NAME["keystone"].url("internal"),
        "username": user,
        "password": secrets[f"service_{user}"],
        "project_name": "service",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "region_name": REGION,
        "valid_interfaces": "internal",
    }


def _authtoken(secrets: Mapping[str, str], user: str) -> dict[str, str]:
    section = _keystone_auth(secrets, user)
    section.pop("valid_interfaces")
    section.update(
        {
            "www_authenticate_uri": APIS_BY_NAME["keystone"].url("public"),
            "interface": "internal",
            "service_token_roles_required": "true",
        }
    )
    return section


def _common(layout: Layout, secrets: Mapping[str, str], service: str) -> Sections:
    return {
        "DEFAULT": {
            "debug": "false",
            "transport_url": transport_url(secrets),
            "state_path": str(layout.data / service),
            # Twenty services share two cores here: under a test run's load an RPC answer can take
            # longer than oslo.messaging's 60 s default, which real clouds never see.
            "rpc_response_timeout": "180",
        },
        "oslo_concurrency": {"lock_path": str(layout.run / "lock" / service)},
        "oslo_messaging_rabbit": {"heartbeat_timeout_threshold": "0"},
    }


def keystone(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    etc = layout.etc / "keystone"
    return {
        "DEFAULT": {"debug": "false"},
        "database": {"connection": db_url(secrets, "keystone")},
        "token": {"provider": "fernet"},
        "fernet_tokens": {"key_repository": str(etc / "fernet-keys")},
        "fernet_receipts": {"key_repository": str(etc / "fernet-keys")},
        "credential": {"key_repository": str(etc / "credential-keys")},
        # One keystone worker holds the cache, so invalidations (role changes, revocations) are
        # seen at once; without a cache every token validation costs several queries.
        "cache": {"enabled": "true", "backend": "dogpile.cache.memory"},
        # bcrypt's minimum cost: a test cloud's passwords guard nothing, and every login and
        # every service's token check pays the hash.
        "identity": {"password_hash_rounds": "4"},
    }


def glance(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    sections = _common(layout, secrets, "glance")
    sections["DEFAULT"].update({"enabled_backends": "file:file"})
    sections.update(
        {
            "database": {"connection": db_url(secrets, "glance")},
            "keystone_authtoken": _authtoken(secrets, "glance"),
            "paste_deploy": {"flavor": "keystone"},
            "glance_store": {"default_backend": "file"},
            "file": {"filesystem_store_datadir": str(layout.data / "glance" / "images")},
            "os_glance_staging_store": {"filesystem_store_datadir": str(layout.data / "glance" / "staging")},
            "os_glance_tasks_store": {"filesystem_store_datadir": str(layout.data / "glance" / "tasks")},
            # Glance's format inspector rejects the sandbox's tiny image payloads as qcow2; the
            # seed uploads them as raw, which needs no inspection either.
            "image_format": {"disk_formats": "raw,qcow2"},
        }
    )
    return sections


def placement(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    return {
        "DEFAULT": {"debug": "false"},
        "placement_database": {"connection": db_url(secrets, "placement")},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": _authtoken(secrets, "placement"),
    }


def nova(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    sections = _common(layout, secrets, "nova")
    sections["DEFAULT"].update(
        {
            "compute_driver": "container_infra_sandbox.SandboxFakeDriver",
            "host": "sandbox-compute-1",
            "my_ip": HOST,
            "instances_path": str(layout.data / "nova" / "instances"),
            # Bare metal is never overcommitted; the fake inventory is large anyway.
            "allow_resize_to_same_host": "true",
        }
    )
    from container_infra.sandbox import nodes

    # Servers that name no zone are given this one, and so land on its host only.
    sections["DEFAULT"]["default_schedule_zone"] = nodes.DEFAULT_ZONE
    sections.update(
        {
            "api_database": {"connection": db_url(secrets, "nova_api")},
            "database": {"connection": db_url(secrets, "nova")},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": _authtoken(secrets, "nova"),
            "placement": _keystone_auth(secrets, "nova"),
            "neutron": _keystone_auth(secrets, "nova") | {"service_metadata_proxy": "false"},
            "glance": {"valid_interfaces": "internal", "region_name": REGION},
            "service_user": _keystone_auth(secrets, "nova") | {"send_service_user_token": "true"},
            "wsgi": {"api_paste_config": str(layout.etc / "nova" / "api-paste.ini")},
            # A new compute host is mapped into the cell within seconds, no manual discover_hosts.
            "scheduler": {"discover_hosts_in_cells_interval": "5", "workers": "1"},
            "conductor": {"workers": "1"},
            "vnc": {"enabled": "false"},
            # Bare-metal flavors are big: a default quota (20 cores) would not hold one node.
            "quota": {"instances": "1000", "cores": "-1", "ram": "-1", "key_pairs": "1000"},
        }
    )
    return sections


def nova_compute(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    """nova-compute has no database access: give it nova.conf without the database sections."""
    sections = nova(layout, secrets)
    del sections["api_database"], sections["database"]
    return sections


# The Docker-backed compute host (sandbox/container_infra_sandbox/nova_docker.py) and its zone.
DOCKER_COMPUTE_HOST = "sandbox-docker-1"
FAKE_COMPUTE_HOST = "sandbox-compute-1"


def nova_compute_docker(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    """The second nova-compute: servers are Docker containers of the node image."""
    from container_infra.sandbox.nodeimage import IMAGE_REPOSITORY

    sections = nova_compute(layout, secrets)
    sections["DEFAULT"].update(
        {
            "compute_driver": "container_infra_sandbox.SandboxDockerDriver",
            "host": DOCKER_COMPUTE_HOST,
            # Its own node identity (compute_id) and instance directory.
            "state_path": str(layout.data / "nova-docker"),
            "instances_path": str(layout.data / "nova-docker" / "instances"),
            # Containers of servers Nova deleted while this service was down are removed.
            "running_deleted_instance_action": "reap",
            "running_deleted_instance_poll_interval": "60",
            "sync_power_state_interval": "30",
        }
    )
    sections["oslo_concurrency"] = {"lock_path": str(layout.run / "lock" / "nova-docker")}
    sections["sandbox_docker"] = {
        "image": f"{IMAGE_REPOSITORY}:latest",
        # Every node's Docker engine trusts the sandbox's registry: the driver writes this CA into the
        # node's /etc/docker/certs.d/<registry>/ca.crt before its first start.
        "registry": registry.REGISTRY,
        "registry_ca_file": str(registry.ca_path(layout)),
        # Nodes of GPU flavors (extra spec gpu:count) get emulated GPUs (sandbox/CONTRACT.md, "Emulated GPUs").
        "emulate_gpus": "true",
    }
    return sections


def fip_forwarder_config(secrets: Mapping[str, str]) -> dict:
    return {
        "database": {"host": HOST, "port": MARIADB_PORT, "user": DB_USER, "password": secrets["database"],
                     "name": "neutron"},
        "ports": [22, 2376],
        "poll_interval": 1.0,
    }


def neutron(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    sections = _common(layout, secrets, "neutron")
    sections["DEFAULT"].update(
        {
            "core_plugin": "ml2",
            "service_plugins": "router",
            "auth_strategy": "keystone",
            "allow_overlapping_ips": "true",
            "notify_nova_on_port_status_changes": "true",
            "notify_nova_on_port_data_changes": "true",
            "api_paste_config": str(layout.etc / "neutron" / "api-paste.ini"),
            "global_physnet_mtu": str(max(PHYSNET_MTUS.values())),
            # No DHCP agent runs: nothing to notify.
            "dhcp_agent_notification": "false",
        }
    )
    sections.update(
        {
            "database": {"connection": db_url(secrets, "neutron")},
            "keystone_authtoken": _authtoken(secrets, "neutron"),
            "nova": _keystone_auth(secrets, "neutron"),
            "ml2": {
                "type_drivers": "flat,vlan,vxlan",
                "tenant_network_types": "vxlan",
                "mechanism_drivers": "sandbox_bindall",
                "extension_drivers": "port_security",
                "physical_network_mtus": ",".join(f"{name}:{mtu}" for name, mtu in PHYSNET_MTUS.items()),
                # Tenant (vxlan) networks keep the usual 1450 bytes under a 1500-byte underlay.
                "path_mtu": "1500",
            },
            "ml2_type_flat": {"flat_networks": "*"},
            "ml2_type_vlan": {"network_vlan_ranges": "hte:100:199,lln:200:299"},
            "ml2_type_vxlan": {"vni_ranges": "1:10000"},
            "securitygroup": {"firewall_driver": "noop", "enable_security_group": "true"},
            "agent": {"report_interval": "0"},
            "quotas": {"quota_network": "-1", "quota_subnet": "-1", "quota_port": "-1", "quota_router": "-1",
                       "quota_floatingip": "-1", "quota_security_group": "-1", "quota_security_group_rule": "-1"},
        }
    )
    return sections


def heat(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    sections = _common(layout, secrets, "heat")
    sections["DEFAULT"].update(
        {
            "num_engine_workers": "1",
            "region_name_for_services": REGION,
            "stack_user_domain_name": "heat",
            "stack_domain_admin": "heat_domain_admin",
            "stack_domain_admin_password": secrets["heat_domain_admin"],
            "heat_metadata_server_url": f"http://{HOST}:8000",
            "heat_waitcondition_server_url": f"http://{HOST}:8000/v1/waitcondition",
            # A cluster's nested stacks are small; keep the engine's polling brisk.
            "periodic_interval": "5",
            "max_stacks_per_tenant": "1000",
        }
    )
    sections.update(
        {
            "database": {"connection": db_url(secrets, "heat")},
            "keystone_authtoken": _authtoken(secrets, "heat"),
            "trustee": {
                "auth_type": "password",
                "auth_url": APIS_BY_NAME["keystone"].url("internal"),
                "username": "heat",
                "password": secrets["service_heat"],
                "user_domain_name": "Default",
            },
            "clients": {"endpoint_type": "internalURL"},
            "clients_keystone": {"auth_uri": f"http://{HOST}:{APIS_BY_NAME['keystone'].internal_port}"},
            "paste_deploy": {"api_paste_config": str(layout.etc / "heat" / "api-paste.ini")},
            "oslo_policy": {"enforce_scope": "false", "enforce_new_defaults": "false"},
        }
    )
    return sections


def magnum(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    sections = _common(layout, secrets, "magnum")
    # Magnum syncs cluster status every 10 s at best (hard-coded); let its periodic loop wake often.
    sections["DEFAULT"].update({"host": "sandbox-magnum", "periodic_interval_max": "5"})
    client_sections = {
        f"{client}_client": {"endpoint_type": "internalURL", "region_name": REGION}
        for client in ("heat", "nova", "neutron", "glance", "cinder", "octavia", "magnum", "barbican")
    }
    sections.update(client_sections)
    sections.update(
        {
            "database": {"connection": db_url(secrets, "magnum")},
            "keystone_authtoken": _authtoken(secrets, "magnum"),
            "keystone_auth": _keystone_auth(secrets, "magnum"),
            "certificates": {"cert_manager_type": "x509keypair"},
            "quotas": {"max_clusters_per_project": "1000"},
            # A fedora-coreos template without --driver gets the Heat-era Kubernetes driver; the
            # ubuntu image selects the Cluster-API-era one through its magnum_driver property.
            "drivers": {"default_driver": "sandbox_k8s_heat"},
            # The sandbox runs no Kubernetes control plane, so there is no health to poll.
            "kubernetes": {"health_polling_interval": "-1"},
            "api": {"api_paste_config": str(layout.etc / "magnum" / "api-paste.ini")},
            "cluster": {"temp_cache_dir": str(layout.data / "magnum" / "certs")},
            "oslo_policy": {"enforce_scope": "false", "enforce_new_defaults": "false"},
        }
    )
    return sections


def manila(layout: Layout, secrets: Mapping[str, str]) -> Sections:
    sections = _common(layout, secrets, "manila")
    sections["DEFAULT"].update(
        {
            "auth_strategy": "keystone",
            "api_paste_config": str(layout.etc / "manila" / "api-paste.ini"),
            "enabled_share_backends": "cephfsnative",
            "enabled_share_protocols": "CEPHFS",
            "default_share_type": "cephfs",
            "host": "sandbox-manila",
            "rootwrap_config": str(layout.venv / "etc" / "manila" / "rootwrap.conf"),
        }
    )
    sections.update(
        {
            "database": {"connection": db_url(secrets, "manila")},
            "keystone_authtoken": _authtoken(secrets, "manila"),
            # Manila's own CephFS native driver against the sandbox's real Ceph (ceph.py).
            "cephfsnative": {
                "share_driver": "manila.share.drivers.cephfs.driver.CephFSDriver",
                "share_backend_name": "CEPHFS",
                "driver_handles_share_servers": "false",
                "cephfs_protocol_helper_type": "CEPHFS",
                "cephfs_conf_path": str(ceph.conf_path(layout)),
                "cephfs_cluster_name": "ceph",
                "cephfs_auth_id": ceph.MANILA_AUTH_ID,
                "cephfs_filesystem_name": ceph.FS_NAME,
            },
            "oslo_policy": {"enforce_scope": "false", "enforce_new_defaults": "false"},
            "quota": {"shares": "-1", "gigabytes": "-1", "snapshots": "-1", "share_networks": "-1"},
        }
    )
    return sections


# file name -> renderer, per service directory under etc/
CONFIG_FILES = {
    "keystone": {"keystone.conf": keystone},
    "glance": {"glance-api.conf": glance},
    "placement": {"placement.conf": placement},
    "nova": {"nova.conf": nova, "nova-compute.conf": nova_compute,
             "nova-compute-docker.conf": nova_compute_docker},
    "neutron": {"neutron.conf": neutron},
    "heat": {"heat.conf": heat},
    "magnum": {"magnum.conf": magnum},
    "manila": {"manila.conf": manila},
}

# Paste files the services ship in the venv's etc/ and expect next to their config.
PASTE_FILES = {
    "glance": ["glance-api-paste.ini"],
    "nova": ["api-paste.ini"],
    "neutron": ["api-paste.ini"],
    "heat": ["api-paste.ini"],
    "magnum": ["api-paste.ini"],
    "manila": ["api-paste.ini"],
}


def render_ini(sections: Sections) -> str:
    parser = configparser.RawConfigParser(interpolation=None)
    parser.optionxform = str  # keep option case (oslo.config is case-sensitive)
    for name, options in sections.items():
        if name != "DEFAULT":
            parser.add_section(name)
        for key, value in options.items():
            parser.set(name, key, value)
    buffer = StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def _write_private(path: Path, text: str) -> bool:
    """Write a file readable by its owner only (configs hold passwords); report whether it changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)
    return True


def fault_proxy_config(layout: Layout) -> dict:
    return {
        "admin": f"{HOST}:{FAULT_ADMIN_PORT}",
        "routes": [
            {
                "service": api.service_type,
                "listen": f"{HOST}:{api.public_port}",
                "upstream": f"http://{HOST}:{api.internal_port}",
            }
            for api in APIS
        ],
    }


def write_all(layout: Layout, secrets: Mapping[str, str]) -> list[Path]:
    """Render every configuration file; returns the files whose content changed."""
    changed = []
    for service, files in CONFIG_FILES.items():
        for filename, renderer in files.items():
            path = layout.etc / service / filename
            if _write_private(path, render_ini(renderer(layout, secrets))):
                changed.append(path)
    for service, names in PASTE_FILES.items():
        for name in names:
            source = layout.venv / "etc" / service / name
            target = layout.etc / service / name
            if not target.exists() or target.read_bytes() != source.read_bytes():
                shutil.copyfile(source, target)
                changed.append(target)
    forwarder = layout.etc / "fipforward.json"
    if _write_private(forwarder, json.dumps(fip_forwarder_config(secrets), indent=2)):
        changed.append(forwarder)
    proxy = layout.etc / "faultproxy.json"
    if _write_private(proxy, json.dumps(fault_proxy_config(layout), indent=2)):
        changed.append(proxy)
    changed += ceph.write_conf(layout)
    changed += registry.write_files(layout)
    return changed
