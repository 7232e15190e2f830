"""Where the sandbox lives and which loopback ports its services use.

The sandbox is tied to a checkout of this repository: its plugin distribution, constraints and
seed file live in ``<checkout>/sandbox``. Its state (virtual environment, configuration, databases,
logs) lives in one directory, ``$CONTAINER_INFRA_SANDBOX_DIR`` or
``~/.local/share/container-infra/sandbox``, so that a second ``up`` reuses everything and a
``reset`` has one thing to wipe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REGION = "RegionOne"


@dataclass(frozen=True)
class Api:
    """One OpenStack API: the catalog entry and the two ports it answers on.

    ``public_port`` is the fault proxy's listener (what users' clients reach); ``internal_port`` is
    the service itself (what the other services reach).
    """

    name: str
    service_type: str
    public_port: int
    internal_port: int
    path: str = ""
    # The supervisor program that serves it, for health reporting.
    program: str = ""

    def url(self, interface: str) -> str:
        port = self.public_port if interface == "public" else self.internal_port
        return f"http://{HOST}:{port}{self.path}"


APIS: tuple[Api, ...] = (
    Api("keystone", "identity", 5000, 25000, "/v3", "keystone"),
    Api("glance", "image", 9292, 29292, "", "glance-api"),
    Api("placement", "placement", 8778, 28778, "", "placement-api"),
    Api("nova", "compute", 8774, 28774, "/v2.1", "nova-api"),
    Api("neutron", "network", 9696, 29696, "", "neutron-api"),
    Api("heat", "orchestration", 8004, 28004, "/v1/%(tenant_id)s", "heat-api"),
    Api("magnum", "container-infra", 9511, 29511, "/v1", "magnum-api"),
    Api("manila", "sharev2", 8786, 28786, "/v2", "manila-api"),
)
APIS_BY_NAME = {api.name: api for api in APIS}

FAULT_ADMIN_PORT = 25999
MARIADB_PORT = 23306
RABBIT_PORT = 25671
RABBIT_DIST_PORT = 25681
EPMD_PORT = 24369

# The storage network: a provider network of the seed (sandbox/seed.yaml, `storage`) whose bridge the
# sandbox owns and on which the sandbox's site services listen, as a real site's Ceph monitors and
# image registry sit on a network the nodes are plugged into. The address is outside the subnet's
# allocation pool, so Neutron never hands it to a port; the sandbox puts it on the network's bridge.
STORAGE_NETWORK = "storage"
STORAGE_CIDR = "10.80.0.0/24"
STORAGE_SERVICE_ADDRESS = "10.80.0.2"
CEPH_MON_PORTS = (3300, 6789)
REGISTRY_PORT = 5000
# The package repository of the emulated NVIDIA driver and toolkit (packages.py), HTTP as NVIDIA's mirrors are.
PACKAGES_PORT = 8480


def checkout_root() -> Path:
    """The repository checkout this package runs from (editable install)."""
    override = os.environ.get("CONTAINER_INFRA_SOURCE")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Layout:
    """Paths of one sandbox."""

    root: Path

    @classmethod
    def default(cls) -> Layout:
        configured = os.environ.get("CONTAINER_INFRA_SANDBOX_DIR")
        if configured:
            return cls(Path(configured).expanduser().resolve())
        data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
        return cls(data_home / "container-infra" / "sandbox")

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def mysql(self) -> Path:
        return self.root / "mysql"

    @property
    def rabbitmq(self) -> Path:
        return self.root / "rabbitmq"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.yaml"

    @property
    def supervisor_conf(self) -> Path:
        return self.etc / "supervisord.conf"

    @property
    def supervisor_socket(self) -> Path:
        return self.run / "supervisord.sock"

    @property
    def mysql_socket(self) -> Path:
        return self.run / "mysqld.sock"

    @property
    def state_dirs(self) -> tuple[Path, ...]:
        """Everything ``reset`` wipes; the venv survives so that the next ``up`` is warm."""
        return (self.etc, self.log, self.run, self.data, self.mysql, self.rabbitmq, self.secrets_file)

    @property
    def source(self) -> Path:
        return checkout_root() / "sandbox"
