"""First-start work of the sandbox: secrets, databases, schema migrations, Keystone's catalog.

Every step is idempotent and cheap to repeat: a warm ``up`` runs them all and finds nothing to do.
Schema migrations are recorded per service with the package version they ran for, so they run on
a new sandbox or after an upgrade of the constraints, not on every start.
"""

from __future__ import annotations

import hashlib
import os
import secrets as pysecrets
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from container_infra.sandbox import configs
from container_infra.sandbox.layout import APIS, APIS_BY_NAME, REGION, Layout
from container_infra.sandbox.supervisor import mariadb_conf

Report = Callable[[str], None]


def load_or_create_secrets(layout: Layout) -> dict[str, str]:
    """Passwords of this sandbox, generated once and kept 0600 beside its state."""
    wanted = ["database", "rabbit", "admin", "demo", "heat_domain_admin"] + [
        f"service_{user}" for user in configs.SERVICE_USERS
    ]
    current: dict[str, str] = {}
    if layout.secrets_file.exists():
        current = yaml.safe_load(layout.secrets_file.read_text()) or {}
    missing = [name for name in wanted if name not in current]
    if missing:
        for name in missing:
            current[name] = pysecrets.token_urlsafe(18)
        layout.root.mkdir(parents=True, exist_ok=True)
        layout.secrets_file.touch(mode=0o600, exist_ok=True)
        layout.secrets_file.chmod(0o600)
        layout.secrets_file.write_text(yaml.safe_dump(current, sort_keys=True))
    return current


def prepare_dirs(layout: Layout) -> None:
    for path in (layout.etc, layout.log, layout.run / "lock", layout.data, layout.log / "rabbitmq"):
        path.mkdir(parents=True, exist_ok=True)
    for service in (*configs.CONFIG_FILES, "nova-docker"):
        (layout.data / service).mkdir(parents=True, exist_ok=True)
        (layout.run / "lock" / service).mkdir(parents=True, exist_ok=True)


def prepare_mariadb(layout: Layout) -> None:
    conf = layout.etc / "mysql" / "my.cnf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(mariadb_conf(layout))
    if (layout.mysql / "mysql").is_dir():
        return
    layout.mysql.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mariadb-install-db",
            f"--defaults-file={conf}",
            "--user=root",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )


def prepare_rabbitmq(layout: Layout, secrets: dict[str, str]) -> None:
    base = layout.rabbitmq
    base.mkdir(parents=True, exist_ok=True)
    # The plugin list must end with a dot, or rabbit refuses to start.
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(
        "\n".join(
            [
                "loopback_users = none",
                f"default_user = {configs.RABBIT_USER}",
                f"default_pass = {secrets['rabbit']}",
                "log.console = true",
                "log.file = false",
                "",
            ]
        )
    )
    (base / "rabbitmq.conf").chmod(0o600)
    cookie = base / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(pysecrets.token_hex(16))
        cookie.chmod(0o400)


def wait_for_port(port: int, name: str, timeout: float, failed: Callable[[], str | None],
                  host: str = "127.0.0.1") -> None:
    """Wait until something accepts connections on host:port, with backoff."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            pass
        problem = failed()
        if problem:
            raise RuntimeError(f"{name} did not start: {problem}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer on {host}:{port} within {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def create_databases(layout: Layout, secrets: dict[str, str]) -> None:
    statements = [f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4;" for db in configs.DATABASES]
    password = secrets["database"]
    statements += [
        f"CREATE USER IF NOT EXISTS '{configs.DB_USER}'@'127.0.0.1' IDENTIFIED BY '{password}';",
        f"ALTER USER '{configs.DB_USER}'@'127.0.0.1' IDENTIFIED BY '{password}';",
        f"GRANT ALL PRIVILEGES ON *.* TO '{configs.DB_USER}'@'127.0.0.1';",
        "FLUSH PRIVILEGES;",
    ]
    subprocess.run(
        ["mariadb", f"--socket={layout.mysql_socket}", "-u", "root"],
        input="\n".join(statements),
        text=True,
        check=True,
        capture_output=True,
    )


def _package_version(layout: Layout, package: str) -> str:
    result = subprocess.run(
        [str(layout.bin("python")), "-c", f"import importlib.metadata as m; print(m.version('{package}'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _migrations(layout: Layout) -> dict[str, tuple[str, list[list[str]]]]:
    """service -> (its distribution, the commands that migrate its schema)."""
    etc = layout.etc
    nova_conf = ["--config-file", str(etc / "nova" / "nova.conf")]
    return {
        "keystone": (
            "keystone",
            [[str(layout.bin("keystone-manage")), "--config-file", str(etc / "keystone" / "keystone.conf"), "db_sync"]],
        ),
        "glance": (
            "glance",
            [[str(layout.bin("glance-manage")), "--config-file", str(etc / "glance" / "glance-api.conf"), "db_sync"]],
        ),
        "placement": (
            "openstack-placement",
            [[str(layout.bin("placement-manage")), "--config-file", str(etc / "placement" / "placement.conf"),
              "db", "sync"]],
        ),
        "nova": (
            "nova",
            [
                [str(layout.bin("nova-manage")), *nova_conf, "api_db", "sync"],
                [str(layout.bin("nova-manage")), *nova_conf, "cell_v2", "map_cell0",
                 "--database_connection", _cell0_url(layout)],
                [str(layout.bin("nova-manage")), *nova_conf, "db", "sync"],
                # create_cell exits 2 when the cell exists; treated as done below.
                [str(layout.bin("nova-manage")), *nova_conf, "cell_v2", "create_cell", "--name", "cell1"],
            ],
        ),
        "neutron": (
            "neutron",
            [[str(layout.bin("neutron-db-manage")), "--config-file", str(etc / "neutron" / "neutron.conf"),
              "upgrade", "heads"]],
        ),
        "heat": (
            "openstack-heat",
            [[str(layout.bin("heat-manage")), "--config-file", str(etc / "heat" / "heat.conf"), "db_sync"]],
        ),
        "magnum": (
            "magnum",
            [[str(layout.bin("magnum-db-manage")), "--config-file", str(etc / "magnum" / "magnum.conf"), "upgrade"]],
        ),
        "manila": (
            "manila",
            [[str(layout.bin("manila-manage")), "--config-file", str(etc / "manila" / "manila.conf"), "db", "sync"]],
        ),
    }


def _cell0_url(layout: Layout) -> str:
    secrets = yaml.safe_load(layout.secrets_file.read_text())
    return configs.db_url(secrets, "nova_cell0")


def migrate_databases(layout: Layout, report: Report) -> None:
    """Run the schema migrations that have not run for the installed versions, concurrently."""
    stamps = layout.data / "migrations"
    stamps.mkdir(parents=True, exist_ok=True)
    todo = {}
    for service, (package, commands) in _migrations(layout).items():
        version = _package_version(layout, package)
        stamp = stamps / service
        if stamp.exists() and stamp.read_text() == version:
            continue
        todo[service] = (version, commands)
    if not todo:
        return
    report(f"migrating databases: {', '.join(todo)}")

    def migrate(service: str) -> None:
        version, commands = todo[service]
        log = layout.log / f"migrate-{service}.log"
        with log.open("a") as out:
            for command in commands:
                result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
                already = "create_cell" in command and result.returncode == 2
                if result.returncode != 0 and not already:
                    raise RuntimeError(f"the {service} database migration failed; see {log}")
        (stamps / service).write_text(version)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(migrate, service) for service in todo]:
            future.result()


def _done(layout: Layout, step: str, digest: str) -> bool:
    stamp = layout.data / "steps" / step
    return stamp.exists() and stamp.read_text() == digest


def _mark_done(layout: Layout, step: str, digest: str) -> None:
    stamp = layout.data / "steps" / step
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def keystone_bootstrap(layout: Layout, secrets: dict[str, str]) -> None:
    """keystone-manage bootstrap, once per admin password and catalog layout."""
    digest = _digest(secrets["admin"], [api.url("public") for api in APIS])
    if _done(layout, "keystone-bootstrap", digest):
        return
    _keystone_bootstrap(layout, secrets)
    _mark_done(layout, "keystone-bootstrap", digest)


def _keystone_bootstrap(layout: Layout, secrets: dict[str, str]) -> None:
    conf = str(layout.etc / "keystone" / "keystone.conf")
    manage = str(layout.bin("keystone-manage"))
    for repo, command in (("fernet-keys", "fernet_setup"), ("credential-keys", "credential_setup")):
        if not (layout.etc / "keystone" / repo / "0").exists():
            subprocess.run(
                [manage, "--config-file", conf, command, "--keystone-user", "root", "--keystone-group", "root"],
                check=True,
                capture_output=True,
            )
    keystone = APIS_BY_NAME["keystone"]
    # The password goes in keystone-manage's environment, not its argv: a generated one may begin with "-" (argparse
    # took "-flc..." for an option), and an argv shows in `ps` and in a failure's message.
    subprocess.run(
        [
            manage, "--config-file", conf, "bootstrap",
            "--bootstrap-username", "admin",
            "--bootstrap-project-name", "admin",
            "--bootstrap-role-name", "admin",
            "--bootstrap-service-name", "keystone",
            "--bootstrap-region-id", REGION,
            "--bootstrap-admin-url", keystone.url("internal"),
            "--bootstrap-internal-url", keystone.url("internal"),
            "--bootstrap-public-url", keystone.url("public"),
        ],
        check=True,
        capture_output=True,
        env=dict(os.environ, OS_BOOTSTRAP_PASSWORD=secrets["admin"]),
    )


def admin_connection(secrets: dict[str, str]):
    """An openstacksdk connection as the cloud admin, straight to the services (no fault proxy)."""
    import openstack

    return openstack.connect(
        auth_url=APIS_BY_NAME["keystone"].url("internal"),
        username="admin",
        password=secrets["admin"],
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name=REGION,
        interface="internal",
        identity_api_version="3",
        load_yaml_config=False,
        load_envvars=False,
    )


def ensure_catalog(layout: Layout, conn, secrets: dict[str, str]) -> None:
    """Services, endpoints, the service project and users, and Heat's stack-user domain.

    Done once per catalog layout and set of passwords: a warm ``up`` skips it.
    """
    digest = _digest(sorted(secrets.items()), APIS)
    if _done(layout, "catalog", digest):
        return
    _ensure_catalog(conn, secrets)
    _mark_done(layout, "catalog", digest)


def _ensure_catalog(conn, secrets: dict[str, str]) -> None:
    identity = conn.identity
    services = {service.type: service for service in identity.services()}
    endpoints = {(ep.service_id, ep.interface): ep for ep in identity.endpoints()}
    for api in APIS:
        if api.name == "keystone":
            continue  # made by keystone-manage bootstrap
        service = services.get(api.service_type) or identity.create_service(
            name=api.name, type=api.service_type, enabled=True
        )
        for interface in ("public", "internal", "admin"):
            url = api.url(interface)
            existing = endpoints.get((service.id, interface))
            if existing is None:
                identity.create_endpoint(service_id=service.id, interface=interface, url=url, region_id=REGION)
            elif existing.url != url:
                identity.update_endpoint(existing, url=url)

    roles = {role.name: role for role in identity.roles()}
    for name in ("service", "member", "reader"):
        if name not in roles:
            roles[name] = identity.create_role(name=name)
    default_domain = identity.find_domain("default")
    project = identity.find_project("service", domain_id=default_domain.id) or identity.create_project(
        name="service", domain_id=default_domain.id, description="OpenStack services"
    )
    for user in configs.SERVICE_USERS:
        _ensure_user(identity, user, secrets[f"service_{user}"], default_domain.id, project.id, ("admin", "service"),
                     roles)

    heat_domain = identity.find_domain("heat") or identity.create_domain(
        name="heat", description="Users Heat creates for stacks"
    )
    heat_admin = identity.find_user("heat_domain_admin", domain_id=heat_domain.id)
    if heat_admin is None:
        heat_admin = identity.create_user(
            name="heat_domain_admin", domain_id=heat_domain.id, password=secrets["heat_domain_admin"]
        )
    else:
        identity.update_user(heat_admin, password=secrets["heat_domain_admin"])
    identity.assign_domain_role_to_user(heat_domain, heat_admin, roles["admin"])
    if "heat_stack_user" not in roles:
        identity.create_role(name="heat_stack_user")


def _ensure_user(identity, name, password, domain_id, project_id, role_names, roles) -> None:
    user = identity.find_user(name, domain_id=domain_id)
    if user is None:
        user = identity.create_user(name=name, password=password, domain_id=domain_id, default_project_id=project_id)
    else:
        identity.update_user(user, password=password)
    for role_name in role_names:
        identity.assign_project_role_to_user(project_id, user, roles[role_name])


def read_log_tail(path: Path, lines: int = 5) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
