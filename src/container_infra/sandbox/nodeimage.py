"""The sandbox's node image: a Debian root file system made with debootstrap, imported into Docker.

The sandbox's servers are Docker containers (see ``container_infra_sandbox.nova_docker``); this is
the machine they boot. It holds openssh-server, python3, sudo, iproute2, iputils-ping and a Docker
engine (docker.io) of its own, the FUSE clients of the shared file systems (ceph-fuse,
glusterfs-client, fuse3; the compute driver gives nodes ``/dev/fuse``), and the login users of the
sandbox's Glance images (``core`` for the Fedora CoreOS-like image, ``ubuntu`` for the Ubuntu-like
one), each with passwordless sudo.

The Debian mirror and suite come from this machine's own apt configuration
(``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d/``), so no host name is written here. The
image's tag carries a digest of the recipe below (suite, packages, users, set-up script, init
script): a second ``container-infra sandbox image build`` finds the tag and does nothing, and any
change to the recipe builds a new image.

The node's init (``/usr/local/sbin/sandbox-node-init``) stands in for systemd: it makes the SSH host
key (Ed25519) on first boot, runs ``/etc/sandbox/node.sh`` where the compute driver put one (the keypair
of the login user, as a config drive carries it), starts dockerd when the container's environment
says ``SANDBOX_DOCKERD=1`` (with the vfs storage driver, which is what works for Docker-in-Docker
here) and then runs sshd in the foreground as the container's main process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

IMAGE_REPOSITORY = "container-infra/sandbox-node"
LABEL_DIGEST = "org.container-infra.sandbox.recipe"

PACKAGES = (
    "openssh-server",
    "python3",
    "sudo",
    "iproute2",
    "iputils-ping",
    "docker.io",
    "ca-certificates",
    "procps",
    "less",
    # FUSE mounts of the shared file systems (the kernel has no ceph module here). ceph-fuse brings
    # librados, not Ceph's daemons; glusterfs-client brings glusterfs-common, whose attr and xfsprogs a
    # Gluster server run in the node (the registry's glusterfs image) uses for its bricks too.
    "ceph-fuse",
    "glusterfs-client",
    "fuse3",
)
USERS = ("core", "ubuntu")

INIT_SCRIPT = """#!/bin/sh
# The sandbox node's init: what systemd would start on a real node, without systemd.
set -e
# One Ed25519 host key, made on first boot: an RSA key costs seconds of CPU on a busy machine.
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd
# The compute driver's "config drive": the login user's key, written before the first start.
[ -f /etc/sandbox/node.sh ] && . /etc/sandbox/node.sh
if [ "${SANDBOX_DOCKERD:-0}" = 1 ]; then
    # Docker mounts a node's own cgroups read-only; the node's dockerd makes its containers' cgroups below
    # them (as a real node's systemd lets it), so they are made writable again, here only.
    awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | while read -r mount; do
        mount -o remount,bind,rw "$mount"
    done
    mkdir -p /var/log
    nohup dockerd --storage-driver vfs >/var/log/dockerd.log 2>&1 &
fi
exec /usr/sbin/sshd -D -e
"""

SETUP_SCRIPT = """set -e
for user in {users}; do
    id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo,docker "$user"
    passwd -d "$user" >/dev/null
    echo "$user ALL=(ALL) NOPASSWD:ALL" > "/etc/sudoers.d/90-$user"
    chmod 0440 "/etc/sudoers.d/90-$user"
    install -d -m 0700 -o "$user" -g "$user" "/home/$user/.ssh"
done
rm -f /etc/ssh/ssh_host_*
cat > /etc/ssh/sshd_config.d/sandbox.conf <<'END'
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PermitRootLogin prohibit-password
END
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
"""

Report = Callable[[str], None]


@dataclass(frozen=True)
class Mirror:
    uri: str
    suite: str


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas, current = [], {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
            continue
        if line[0].isspace() and current:
            continue  # continuation lines (Signed-By keys): not needed here
        key, _, value = line.partition(":")
        current[key.strip().lower()] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def mirrors_from_apt(apt_dir: Path = Path("/etc/apt")) -> list[Mirror]:
    """The Debian archives this machine's apt uses, in the order apt reads them (security ones last)."""
    found: list[Mirror] = []
    sources = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in _deb822_stanzas(text):
                if "deb" not in stanza.get("types", "").split() or stanza.get("enabled", "yes") == "no":
                    continue
                for uri in stanza.get("uris", "").split():
                    for suite in stanza.get("suites", "").split():
                        found.append(Mirror(uri.rstrip("/"), suite))
        elif path.suffix == ".list" or path.name == "sources.list":
            for line in text.splitlines():
                line = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(line) >= 3 and line[0] == "deb":
                    found.append(Mirror(line[1].rstrip("/"), line[2]))
    return found


def choose_mirror(mirrors: list[Mirror]) -> Mirror:
    """The base archive: a suite without -security/-updates/-backports, from a non-security URI."""
    for mirror in mirrors:
        if "-" not in mirror.suite and "security" not in mirror.uri and "/" not in mirror.suite:
            return mirror
    raise RuntimeError(
        "no Debian archive found in /etc/apt/sources.list(.d); the node image is built with debootstrap "
        "from the archive this machine's apt uses"
    )


def recipe_digest(suite: str) -> str:
    recipe = json.dumps(
        {"suite": suite, "packages": PACKAGES, "users": USERS, "setup": SETUP_SCRIPT, "init": INIT_SCRIPT},
        sort_keys=True,
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def image_tag(suite: str) -> str:
    return f"{IMAGE_REPOSITORY}:{suite}-{recipe_digest(suite)}"


def default_image_tag() -> str:
    return image_tag(choose_mirror(mirrors_from_apt()).suite)


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def build(report: Report, force: bool = False) -> tuple[str, float | None]:
    """Build the node image unless it exists; returns its tag and the seconds the build took (None: reused)."""
    mirror = choose_mirror(mirrors_from_apt())
    tag = image_tag(mirror.suite)
    if not force and image_exists(tag):
        return tag, None
    for tool in ("debootstrap", "docker"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"building the node image needs {tool}; run scripts/host-packages.sh")
    started = time.monotonic()
    report(f"building the node image {tag} from {mirror.uri} {mirror.suite} (debootstrap, once, a few minutes)")
    with tempfile.TemporaryDirectory(prefix="container-infra-node-") as workdir:
        root = Path(workdir) / "root"
        try:
            _debootstrap_and_import(mirror, root, tag)
        finally:
            _unmount_below(root)  # an interrupted debootstrap leaves proc and sys mounted
    subprocess.run(["docker", "tag", tag, f"{IMAGE_REPOSITORY}:latest"], check=True)
    return tag, round(time.monotonic() - started, 1)


def _unmount_below(root: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def _debootstrap_and_import(mirror: Mirror, root: Path, tag: str) -> None:
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", mirror.suite, str(root),
         mirror.uri],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    init = root / "usr/local/sbin/sandbox-node-init"
    init.write_text(INIT_SCRIPT)
    init.chmod(0o755)
    subprocess.run(
        ["chroot", str(root), "/bin/sh", "-c", SETUP_SCRIPT.format(users=" ".join(USERS))],
        check=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"},
    )
    # Lines the container runtime manages itself.
    for name in ("etc/hostname", "etc/resolv.conf"):
        (root / name).unlink(missing_ok=True)
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "--one-file-system", "-c", "."],
                           stdout=subprocess.PIPE)
    subprocess.run(
        ["docker", "import",
         "--change", 'CMD ["/usr/local/sbin/sandbox-node-init"]',
         "--change", f"LABEL {LABEL_DIGEST}={recipe_digest(mirror.suite)}",
         "-", tag],
        stdin=tar.stdout,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tar.stdout.close()
    if tar.wait() != 0:
        raise RuntimeError("packing the node's root file system failed")


def docker_answers() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


def ensure_dockerd(log_dir: Path, report: Report, timeout: float = 60) -> None:
    """Start Debian's dockerd where no Docker engine answers; its log goes to ``log_dir/dockerd.log``.

    The engine is the machine's, not the sandbox's: it keeps running after ``sandbox down`` (which
    removes the sandbox's containers), as a hypervisor outlives the cloud's services.
    """
    if docker_answers():
        return
    if shutil.which("dockerd") is None:
        raise RuntimeError("the sandbox's nodes need a Docker engine; run scripts/host-packages.sh "
                           "(it installs Debian's docker.io)")
    report("starting dockerd (no Docker engine answered)")
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "CONTAINER_INFRA_SANDBOX_DIR"}
    with (log_dir / "dockerd.log").open("ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not docker_answers():
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd did not answer within {timeout:.0f} s; see {log_dir / 'dockerd.log'}")
        time.sleep(0.5)
