"""Installing what the sandbox runs: Debian packages and the services' virtual environment.

Both steps are skipped when already done: the venv records a digest of what it was built from
(the constraints file and the plugin distribution's metadata) and is rebuilt only when that changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from container_infra.sandbox import ceph
from container_infra.sandbox.layout import Layout

DEBIAN_PACKAGES = {
    # binary that proves the package is installed -> package
    "/usr/sbin/mariadbd": "mariadb-server",
    "/usr/lib/rabbitmq/bin/rabbitmq-server": "rabbitmq-server",
    # The Docker-backed nodes: the engine, and debootstrap for the node image.
    "/usr/sbin/dockerd": "docker.io",
    "/usr/sbin/debootstrap": "debootstrap",
    # The image registry the nodes pull from (registry.py).
    "/usr/bin/docker-registry": "docker-registry",
    # The package repository of the emulated NVIDIA driver and toolkit (packages.py): built and signed.
    "/usr/bin/dpkg-deb": "dpkg",
    "/usr/bin/gpg": "gpg",
    "/usr/bin/gpgconf": "gpgconf",
    # The storage services (ceph.py): Ceph's daemons, its CLI, and Manila's rados binding.
    **ceph.DEBIAN_PACKAGES,
}

# The services and what runs them; versions come from sandbox/constraints.txt.
SERVICE_PACKAGES = (
    "keystone",
    "openstack-heat",
    "glance",
    "magnum",
    "manila",
    "nova",
    "openstack-placement",
    "neutron",
    "gunicorn",
    "PyMySQL",
    "supervisor",
)

Report = Callable[[str], None]


def missing_debian_packages() -> list[str]:
    return sorted({pkg for binary, pkg in DEBIAN_PACKAGES.items() if not Path(binary).exists()})


def install_debian_packages(report: Report) -> None:
    missing = missing_debian_packages()
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            f"the sandbox needs the Debian packages {', '.join(missing)}; install them with your "
            "package manager (this system has no apt-get)"
        )
    report(f"installing Debian packages: {', '.join(missing)}")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    # policy-rc.d keeps Debian from starting its own mariadb and rabbitmq: the sandbox runs them
    # itself, on loopback, with its own data directories.
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    # Debian's docker-registry service would listen on every address (:5000): the sandbox runs its own.
    for service in ("mariadb", "rabbitmq-server", "docker-registry"):
        subprocess.run(["service", service, "stop"], check=False, capture_output=True)
    if "rabbitmq-server" in missing:
        # Its install scripts leave an epmd of their own on every address (:4369), which this install
        # started: the sandbox's RabbitMQ runs its own epmd on loopback.
        subprocess.run(["epmd", "-kill"], check=False, capture_output=True)


def venv_digest(layout: Layout) -> str:
    digest = hashlib.sha256()
    for path in (layout.source / "constraints.txt", layout.source / "setup.cfg"):
        digest.update(path.read_bytes())
    digest.update(" ".join(SERVICE_PACKAGES).encode())
    # The plugin distribution is installed editable: another checkout (a CI clone) must re-point it.
    digest.update(str(layout.source.resolve()).encode())
    return digest.hexdigest()


def ensure_venv(layout: Layout, report: Report) -> bool:
    """Create or update the services' venv; returns whether anything was installed."""
    stamp = layout.venv / ".container-infra-digest"
    wanted = venv_digest(layout)
    if stamp.exists() and stamp.read_text() == wanted:
        return False
    report("installing the OpenStack services into the sandbox's virtual environment (once, about 2 minutes)")
    if not layout.bin("python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(layout.venv)], check=True)
    pip = [str(layout.bin("python")), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip", "setuptools", "wheel"], check=True)
    constraints = str(layout.source / "constraints.txt")
    subprocess.run([*pip, "-c", constraints, *SERVICE_PACKAGES], check=True)
    subprocess.run([*pip, "-c", constraints, "--editable", str(layout.source)], check=True)
    stamp.write_text(wanted)
    return True


# Nova loads compute drivers from its own package only ("nova.virt.<compute_driver>"), so
# out-of-tree drivers ship a module inside nova/virt; this one re-exports the sandbox's drivers.
NOVA_DRIVER_SHIM = (
    '"""Installed by container-infra: the sandbox\'s compute drivers, where Nova looks for drivers."""\n'
    "from container_infra_sandbox.nova_fake import *  # noqa: F403\n"
    "from container_infra_sandbox.nova_docker import *  # noqa: F403\n"
)


def ensure_nova_driver_shim(layout: Layout) -> None:
    result = subprocess.run(
        [str(layout.bin("python")), "-c", "import nova.virt, os; print(os.path.dirname(nova.virt.__file__))"],
        capture_output=True, text=True, check=True,
    )
    shim = Path(result.stdout.strip()) / "container_infra_sandbox.py"
    if not shim.exists() or shim.read_text() != NOVA_DRIVER_SHIM:
        shim.write_text(NOVA_DRIVER_SHIM)
