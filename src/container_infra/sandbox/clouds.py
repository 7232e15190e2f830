"""The sandbox's entries in clouds.yaml.

They go into the user's own ``~/.config/openstack/clouds.yaml`` (or ``$OS_CLIENT_CONFIG_FILE``),
which the openstack CLI, openstacksdk and Ansible's OpenStack modules all read, so that
``--os-cloud sandbox`` / ``cloud: sandbox`` works everywhere with no extra setting. Other clouds
in the file are kept; the file is 0600 because it holds the sandbox's passwords.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from container_infra.sandbox.layout import APIS_BY_NAME, REGION

CLOUD_NAMES = ("sandbox", "sandbox-admin")


def clouds_file() -> Path:
    configured = os.environ.get("OS_CLIENT_CONFIG_FILE")
    if configured:
        return Path(configured).expanduser()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return config_home / "openstack" / "clouds.yaml"


def sandbox_clouds(passwords: Mapping[str, str]) -> dict[str, dict]:
    def entry(user: str, project: str) -> dict:
        return {
            "auth": {
                "auth_url": APIS_BY_NAME["keystone"].url("public"),
                "username": user,
                "password": passwords[user],
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": REGION,
            "interface": "public",
            "identity_api_version": 3,
        }

    return {"sandbox": entry("demo", "demo"), "sandbox-admin": entry("admin", "admin")}


def write_clouds(passwords: Mapping[str, str], path: Path | None = None) -> Path:
    path = path or clouds_file()
    document: dict = {}
    if path.exists():
        document = yaml.safe_load(path.read_text()) or {}
    clouds = document.setdefault("clouds", {})
    wanted = sandbox_clouds(passwords)
    if all(clouds.get(name) == value for name, value in wanted.items()):
        return path
    clouds.update(wanted)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def remove_clouds(path: Path | None = None) -> None:
    path = path or clouds_file()
    if not path.exists():
        return
    document = yaml.safe_load(path.read_text()) or {}
    clouds = document.get("clouds", {})
    if not any(name in clouds for name in CLOUD_NAMES):
        return
    for name in CLOUD_NAMES:
        clouds.pop(name, None)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
