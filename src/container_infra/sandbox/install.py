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

from container_infra.sandbox.layout import Layout

DEBIAN_PACKAGES = {
    # binary that proves the package is installed -> package
    "/usr/sbin/mariadbd": "mariadb-server",
    "/usr/lib/rabbitmq/bin/rabbitmq-server": "rabbitmq-server",
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
    from pathlib import Path

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
    for service in ("mariadb", "rabbitmq-server"):
        subprocess.run(["service", service, "stop"], check=False, capture_output=True)


def venv_digest(layout: Layout) -> str:
    digest = hashlib.sha256()
    for path in (layout.source / "constraints.txt", layout.source / "setup.cfg"):
        digest.update(path.read_bytes())
    digest.update(" ".join(SERVICE_PACKAGES).encode())
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
