"""The sandbox's package repository: the emulated NVIDIA driver and container toolkit, as .deb packages.

A real GPU node installs NVIDIA's driver from NVIDIA's CUDA repository (or its distribution's) and the container
toolkit from NVIDIA's libnvidia-container repository. The sandbox serves both repositories, shaped as NVIDIA's
are, over HTTP on the storage network (``http://10.80.0.2:8480``, where every node with a storage port reaches it),
so that the GPU role's real install path (the signed repository, the packages, the runtime's configuration) runs
unchanged: the repository's address is the only sandbox-specific value.

* ``/compute/cuda/repos/<distro>/x86_64/`` (as developer.download.nvidia.com): ``nvidia-driver`` (the emulated
  driver: ``/usr/bin/nvidia-smi``, which answers from the node's ``/etc/sandbox/gpus.tsv``, the emulated
  hardware that the compute driver writes) and its meta-package ``cuda-drivers``; key ``3bf863cc.pub``.
* ``/libnvidia-container/stable/deb/amd64/`` (as nvidia.github.io): ``nvidia-container-toolkit``
  (``/usr/bin/nvidia-container-runtime``, an OCI runtime wrapper over runc that grants each container its GPUs;
  ``/usr/bin/nvidia-container-runtime-hook``; ``/etc/nvidia-container-runtime/config.toml``); key ``gpgkey``
  one level up, as NVIDIA publishes it.

Both are flat repositories (``deb [signed-by=KEY] URL /``) with a ``Release`` signed inline (``InRelease``) by the
sandbox's own key (Ed25519, made once in ``<sandbox dir>/etc/packages/gnupg``, 0700). The tree lives in
``<sandbox dir>/data/packages`` and is made again only when the recipe (tools, versions) changes. The program
``packages`` (Python's ``http.server``) serves it on the storage network's service address only.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from container_infra.sandbox.layout import PACKAGES_PORT, STORAGE_SERVICE_ADDRESS, Layout

URL = f"http://{STORAGE_SERVICE_ADDRESS}:{PACKAGES_PORT}"
DRIVER_VERSION = "550.54.15"
TOOLKIT_VERSION = "1.17.3"
# The flat repositories' directories, as NVIDIA's URLs are (the CUDA one per distribution: the same packages).
CUDA_DISTROS = ("debian11", "debian12", "debian13", "ubuntu2004", "ubuntu2204", "ubuntu2404")
CUDA_DIR = "compute/cuda/repos"
CUDA_KEY = "3bf863cc.pub"
TOOLKIT_DIR = "libnvidia-container/stable/deb/amd64"
TOOLKIT_KEY = "libnvidia-container/gpgkey"
KEY_NAME = "container-infra sandbox packages"
MAINTAINER = "container-infra sandbox <sandbox@container-infra.invalid>"

Report = Callable[[str], None]


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    description: str
    # {path in the package: (tool file in gpu_tools/, mode)}
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    depends: str = ""
    conffiles: tuple[str, ...] = ()


PACKAGES = {
    "cuda": (
        Package("nvidia-driver", f"{DRIVER_VERSION}-1", "NVIDIA driver (emulated by the container-infra sandbox)",
                {"/usr/bin/nvidia-smi": ("nvidia-smi", 0o755)}),
        Package("cuda-drivers", f"{DRIVER_VERSION}-1", "NVIDIA driver meta-package (container-infra sandbox)",
                depends=f"nvidia-driver (= {DRIVER_VERSION}-1)"),
    ),
    "toolkit": (
        Package("nvidia-container-toolkit", f"{TOOLKIT_VERSION}-1",
                "NVIDIA container runtime (emulated by the container-infra sandbox)",
                {"/usr/bin/nvidia-container-runtime": ("nvidia_container_runtime.py", 0o755),
                 "/usr/bin/nvidia-container-runtime-hook": ("nvidia-container-runtime-hook", 0o755),
                 "/etc/nvidia-container-runtime/config.toml": ("config.toml", 0o644)},
                depends="python3", conffiles=("/etc/nvidia-container-runtime/config.toml",)),
    ),
}


def tool_text(name: str) -> str:
    return resources.files("container_infra.sandbox").joinpath("gpu_tools", name).read_text()


def recipe_digest() -> str:
    recipe = {kind: [(p.name, p.version, p.description, p.depends, p.conffiles,
                      {path: (tool_text(tool), mode) for path, (tool, mode) in p.files.items()}) for p in packages]
              for kind, packages in PACKAGES.items()}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def root(layout: Layout) -> Path:
    return layout.data / "packages"


def gnupg_home(layout: Layout) -> Path:
    return layout.etc / "packages" / "gnupg"


def command(layout: Layout) -> list[str]:
    """The supervisor program's command line: the tree over HTTP, on the storage network's address only."""
    return [str(layout.bin("python")), "-m", "http.server", str(PACKAGES_PORT), "--bind", STORAGE_SERVICE_ADDRESS,
            "--directory", str(root(layout))]


def control(package: Package, installed_kib: int) -> str:
    lines = [f"Package: {package.name}", f"Version: {package.version}", "Architecture: all",
             f"Maintainer: {MAINTAINER}", f"Installed-Size: {installed_kib}", "Section: non-free/misc",
             "Priority: optional"]
    if package.depends:
        lines.append(f"Depends: {package.depends}")
    lines.append(f"Description: {package.description}")
    return "\n".join(lines) + "\n"


def build_deb(package: Package, out_dir: Path) -> Path:
    """The package as a .deb (dpkg-deb), reproducible: fixed mtimes, root-owned files."""
    with tempfile.TemporaryDirectory(prefix="container-infra-deb-") as work:
        staging = Path(work) / package.name
        (staging / "DEBIAN").mkdir(parents=True)
        size = 0
        for path, (tool, mode) in package.files.items():
            target = staging / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(tool_text(tool))
            target.chmod(mode)
            size += target.stat().st_size
        (staging / "DEBIAN" / "control").write_text(control(package, max(1, size // 1024)))
        if package.conffiles:
            (staging / "DEBIAN" / "conffiles").write_text("".join(f"{path}\n" for path in package.conffiles))
        deb = out_dir / f"{package.name}_{package.version}_all.deb"
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
        result = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(staging), str(deb)],
                                capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"dpkg-deb could not build {package.name}: {result.stderr.strip()}")
    return deb


def packages_index(debs: list[Path]) -> str:
    """A flat repository's ``Packages``: each .deb's control fields, then where it is and its hashes."""
    stanzas = []
    for deb in sorted(debs):
        fields = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True,
                                check=True).stdout.strip()
        data = deb.read_bytes()
        stanzas.append(f"{fields}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\n"  # noqa: S324 (apt's field, not security)
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    return "\n".join(stanzas)


def release(files: dict[str, bytes], label: str) -> str:
    lines = ["Origin: container-infra sandbox", f"Label: {label}", "Architectures: all amd64 arm64",
             "Date: Tue, 14 Nov 2023 22:13:20 UTC", "SHA256:"]
    lines += [f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}" for name, data in sorted(files.items())]
    return "\n".join(lines) + "\n"


def _gpg(home: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
                             "--passphrase", "", *args], capture_output=True, text=True, input=stdin)
    if result.returncode != 0:
        raise RuntimeError(f"gpg {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def ensure_key(home: Path) -> str:
    """The repository's signing key (made once); returns its armored public key."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    if not _gpg(home, "--list-secret-keys", "--with-colons").strip():
        _gpg(home, "--quick-generate-key", KEY_NAME, "ed25519", "sign", "never")
    return _gpg(home, "--armor", "--export", KEY_NAME)


def _flat_repository(directory: Path, debs: list[Path], home: Path, label: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        shutil.copy2(deb, directory / deb.name)
    index = packages_index([directory / deb.name for deb in debs]).encode()
    files = {"Packages": index, "Packages.gz": gzip.compress(index, mtime=0)}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    text = release(files, label)
    (directory / "Release").write_text(text)
    (directory / "InRelease").write_text(_gpg(home, "--local-user", KEY_NAME, "--clearsign", stdin=text))


def ensure_repository(layout: Layout, report: Report) -> bool:
    """Make the repository tree unless the recipe's is already there; returns whether it was made."""
    top = root(layout)
    stamp = top / ".recipe"
    digest = recipe_digest()
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    for tool in ("dpkg-deb", "gpg"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"the sandbox's package repository needs {tool}; run scripts/host-packages.sh")
    report("building the package repository of the emulated NVIDIA driver and container toolkit")
    home = gnupg_home(layout)
    try:
        key = ensure_key(home)
        with tempfile.TemporaryDirectory(prefix="container-infra-repo-") as work:
            staging = Path(work) / "packages"
            pool = Path(work) / "pool"
            pool.mkdir()
            cuda = [build_deb(package, pool) for package in PACKAGES["cuda"]]
            toolkit = [build_deb(package, pool) for package in PACKAGES["toolkit"]]
            first = staging / CUDA_DIR / CUDA_DISTROS[0] / "x86_64"
            _flat_repository(first, cuda, home, "CUDA (container-infra sandbox)")
            (first / CUDA_KEY).write_text(key)
            for distro in CUDA_DISTROS[1:]:
                (staging / CUDA_DIR / distro).mkdir(parents=True)
                (staging / CUDA_DIR / distro / "x86_64").symlink_to(f"../{CUDA_DISTROS[0]}/x86_64")
            _flat_repository(staging / TOOLKIT_DIR, toolkit, home, "libnvidia-container (container-infra sandbox)")
            (staging / TOOLKIT_KEY).write_text(key)
            (staging / ".recipe").write_text(digest + "\n")
            if top.exists():
                shutil.rmtree(top)
            top.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(staging, top, symlinks=True)
    finally:
        # gpg starts an agent for the secret key: it goes with the build.
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
    return True
