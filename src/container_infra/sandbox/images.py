"""Images the toolkit's roles run in the sandbox, built from Debian packages and pushed to its registry.

A real site's clusters pull their images from a site registry; the sandbox's nodes pull from the
sandbox's own (``container_infra.sandbox.registry``, ``10.80.0.2:5000``), and what it serves is built
here the way the node image is (``nodeimage``): no image is pulled from the internet.

* **The root.** ``debootstrap --variant=minbase`` of the suite this machine's apt uses (mirror from its
  apt configuration, as for the node image), once: it is kept as the local image
  ``container-infra/image-root:<suite>-<digest>`` and a later build unpacks it instead of bootstrapping again.
* **Each image** is a copy of that root in which ``apt-get install --no-install-recommends`` puts its
  Debian packages (services are kept from starting by a ``policy-rc.d``), then its set-up script, then
  apt's lists, caches and the documentation are removed; ``docker import`` makes it an image with its
  entrypoint, command and user and a label carrying the recipe's digest, tagged
  ``10.80.0.2:5000/container-infra/<name>:<digest>`` and ``:latest``, and pushed.
* **Nothing twice.** An image whose digest tag the registry already holds is neither built nor pushed
  again (its ``latest`` is pointed at it if it pointed elsewhere); one built here but not pushed is pushed.

The recipes are a dict: later work (storage, monitoring, GPU roles) adds its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from container_infra.sandbox import nodeimage
from container_infra.sandbox import registry as sandbox_registry
from container_infra.sandbox.nodeimage import LABEL_DIGEST, Mirror

Report = Callable[[str], None]

ROOT_REPOSITORY = "container-infra/image-root"
ROOT_VARIANT = "minbase"

# Run in every image's root after its packages and set-up: what an image does not need at run time.
CLEANUP_SCRIPT = """apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/apt/* /var/log/dpkg.log \\
    /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* /usr/sbin/policy-rc.d
"""

# Keeps Debian's maintainer scripts from starting the services they install (there is no init here).
POLICY_RC_D = "#!/bin/sh\nexit 101\n"

CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8",
              "HOME": "/root"}


@dataclass(frozen=True)
class Recipe:
    """One image: Debian packages on the minbase root, a set-up script, and how a container runs it."""

    description: str
    packages: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    workdir: str = ""
    env: dict[str, str] = field(default_factory=dict)
    expose: tuple[str, ...] = ()
    # Shell run in the image's root (as root) after its packages are installed.
    setup: str = ""


RECIPES: dict[str, Recipe] = {
    "base": Recipe(
        "what jobs and tests run: a shell, ps, ip and ping",
        ("ca-certificates", "procps", "iproute2", "iputils-ping"),
        cmd=("/bin/bash",),
    ),
    "glusterfs": Recipe(
        "Gluster's server (glusterd, bricks, the gluster CLI) in the foreground, logging to stderr",
        ("glusterfs-server",),
        entrypoint=("/usr/sbin/glusterd", "--no-daemon", "--log-file=-"),
        cmd=("--log-level=INFO",),
        expose=("24007/tcp",),
        # Gluster insists on these (the package's init script would make them).
        setup="mkdir -p /var/run/gluster /var/log/glusterfs /var/lib/glusterd\n",
    ),
    "prometheus": Recipe(
        "Debian's Prometheus server as user prometheus, data in /var/lib/prometheus/metrics2",
        ("prometheus",),
        entrypoint=("/usr/bin/prometheus",),
        cmd=("--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/var/lib/prometheus/metrics2",
             "--web.listen-address=:9090"),
        user="prometheus",
        workdir="/var/lib/prometheus",
        expose=("9090/tcp",),
        # moment-timezone's source data (210 MB of small files) is not what the web UI loads.
        setup="install -d -o prometheus -g prometheus /var/lib/prometheus/metrics2\n"
              "rm -rf /usr/share/javascript/moment-timezone/data\n",
    ),
    "node-exporter": Recipe(
        "Debian's Prometheus node exporter as user nobody (mount the host's /proc, /sys and / for node metrics)",
        ("prometheus-node-exporter",),
        entrypoint=("/usr/bin/prometheus-node-exporter",),
        cmd=("--web.listen-address=:9100",),
        user="nobody",
        expose=("9100/tcp",),
    ),
}


# --- names and digests ----------------------------------------------------------------------------


def root_digest(suite: str) -> str:
    return _digest({"suite": suite, "variant": ROOT_VARIANT})


def root_tag(suite: str) -> str:
    return f"{ROOT_REPOSITORY}:{suite}-{root_digest(suite)}"


def recipe_digest(name: str, suite: str, recipes: dict[str, Recipe] | None = None) -> str:
    recipe = (recipes or RECIPES)[name]
    return _digest({"name": name, "suite": suite, "root": root_digest(suite), "recipe": asdict(recipe),
                    "policy": POLICY_RC_D, "cleanup": CLEANUP_SCRIPT})


def _digest(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def repository(name: str) -> str:
    """The image's repository inside the registry: ``container-infra/<name>``."""
    return f"{sandbox_registry.NAMESPACE}/{name}"


def image_name(name: str, registry: str = sandbox_registry.REGISTRY) -> str:
    return f"{registry}/{repository(name)}"


def image_tag(name: str, suite: str, registry: str = sandbox_registry.REGISTRY) -> str:
    return f"{image_name(name, registry)}:{recipe_digest(name, suite)}"


def import_changes(name: str, suite: str, recipe: Recipe) -> list[str]:
    """``docker import --change`` instructions: how a container of the image runs, and the recipe's digest."""
    changes = []
    if recipe.entrypoint:
        changes.append(f"ENTRYPOINT {json.dumps(list(recipe.entrypoint))}")
    if recipe.cmd:
        changes.append(f"CMD {json.dumps(list(recipe.cmd))}")
    if recipe.user:
        changes.append(f"USER {recipe.user}")
    if recipe.workdir:
        changes.append(f"WORKDIR {recipe.workdir}")
    changes += [f"ENV {key}={value}" for key, value in sorted(recipe.env.items())]
    changes += [f"EXPOSE {port}" for port in recipe.expose]
    changes.append(f"LABEL {LABEL_DIGEST}={recipe_digest(name, suite)}")
    return changes


def install_script(recipe: Recipe) -> str:
    lines = ["set -e", "apt-get install -y -qq --no-install-recommends " + " ".join(recipe.packages)]
    if recipe.setup:
        lines.append(recipe.setup.rstrip("\n"))
    return "\n".join(lines) + "\n" + CLEANUP_SCRIPT


def select(names: list[str] | tuple[str, ...]) -> list[str]:
    """The recipes to build: all of them when none are named; an unknown name is one clear sentence."""
    if not names:
        return list(RECIPES)
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise RuntimeError(f"no image recipe named {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    return list(dict.fromkeys(names))


# --- building -------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    tag: str
    # "present" (the registry had it), "pushed" (built here before, pushed now) or "built" (built and pushed)
    action: str
    seconds: float = 0.0
    size_mb: float | None = None


def _run(args: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{what} failed: {' / '.join(tail) or f'exit status {result.returncode}'}")
    return result


def _chroot(root: Path, script: str, what: str) -> None:
    _run(["chroot", str(root), "/bin/sh", "-c", script], what, env=CHROOT_ENV)


def _mount_proc(root: Path) -> None:
    (root / "proc").mkdir(exist_ok=True)
    _run(["mount", "-t", "proc", "proc", str(root / "proc")], f"mounting /proc in {root}")


def _pack_and_import(root: Path, tag: str, changes: list[str]) -> None:
    for name in ("etc/hostname", "etc/resolv.conf"):  # the container runtime manages these
        (root / name).unlink(missing_ok=True)
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "--one-file-system", "-c", "."],
                           stdout=subprocess.PIPE)
    args = ["docker", "import"]
    for change in changes:
        args += ["--change", change]
    try:
        result = subprocess.run([*args, "-", tag], stdin=tar.stdout, capture_output=True, text=True)
    finally:
        tar.stdout.close()
    if tar.wait() != 0 or result.returncode != 0:
        raise RuntimeError(f"importing {tag} into Docker failed: {result.stderr.strip()[-300:]}")


def _prepare_root(mirror: Mirror, workdir: Path, report: Report) -> Path:
    """The minbase root, unpacked from its local image or bootstrapped (and kept as that image)."""
    root = workdir / "root"
    tag = root_tag(mirror.suite)
    if nodeimage.image_exists(tag):
        root.mkdir()
        container = _run(["docker", "create", tag, "/bin/true"], f"unpacking {tag}").stdout.strip()
        try:
            export = subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE)
            _run(["tar", "-C", str(root), "--numeric-owner", "-x"], f"unpacking {tag}", stdin=export.stdout)
            export.stdout.close()
            if export.wait() != 0:
                raise RuntimeError(f"unpacking {tag} failed: docker export exited {export.returncode}")
        finally:
            subprocess.run(["docker", "rm", "--force", container], capture_output=True)
    else:
        report(f"bootstrapping the images' Debian root {tag} from {mirror.uri} {mirror.suite} (once, about a minute)")
        _run(["debootstrap", f"--variant={ROOT_VARIANT}", mirror.suite, str(root), mirror.uri],
             f"debootstrap of {mirror.suite} from {mirror.uri}")
        nodeimage._unmount_below(root)
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        _pack_and_import(root, tag, [f"LABEL {LABEL_DIGEST}={root_digest(mirror.suite)}"])
    # Ready to install into: name resolution, no service starts, fresh package lists (shared by every image).
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    _chroot(root, "apt-get update -qq", f"apt-get update in the images' root ({mirror.uri})")
    return root


def _build_one(name: str, recipe: Recipe, suite: str, base: Path, workdir: Path, tag: str) -> None:
    root = workdir / name
    _run(["cp", "-a", "--reflink=auto", str(base), str(root)], f"copying the root for {name}")
    try:
        _mount_proc(root)
        _chroot(root, install_script(recipe), f"installing {', '.join(recipe.packages)} into the {name} image")
    finally:
        nodeimage._unmount_below(root)
    _pack_and_import(root, tag, import_changes(name, suite, recipe))
    shutil.rmtree(root)


def _push(tag: str) -> None:
    result = subprocess.run(["docker", "push", tag], capture_output=True, text=True)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        hint = ""
        if "x509" in message[0] or "certificate" in message[0]:
            hint = f"; Docker does not trust the registry's CA: is it in /etc/docker/certs.d/{tag.split('/')[0]}/?"
        raise RuntimeError(f"pushing {tag} failed: {message[0]}{hint}")


def image_size_mb(tag: str) -> float | None:
    result = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True)
    return round(int(result.stdout.strip()) / 1e6, 1) if result.returncode == 0 else None


def build(names: list[str] | tuple[str, ...], report: Report, ca_file: Path, registry: str = sandbox_registry.REGISTRY,
          force: bool = False, trust_host: bool = True) -> list[Result]:
    """Build and push the named images (all when none) unless the registry has their recipe's digest.

    ``ca_file`` is the registry's CA (``registry.ca_path(layout)``); with ``trust_host`` the host's
    Docker is made to trust it (``/etc/docker/certs.d/<registry>/ca.crt``) before pushing.
    """
    chosen = select(names)
    # One build at a time on this machine (tests in parallel workers, an operator beside them): a second caller
    # waits, then finds the first one's images in the registry instead of building them again.
    with open(Path(ca_file).parent / ".images-build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(chosen, report, ca_file, registry, force, trust_host)


def _build_locked(chosen, report: Report, ca_file: Path, registry: str, force: bool, trust_host: bool) -> list[Result]:
    mirror = nodeimage.choose_mirror(nodeimage.mirrors_from_apt())
    client = sandbox_registry.Client(registry, ca_file)
    client.check()
    results: list[Result] = []
    wanted = []
    for name in chosen:
        tag = image_tag(name, mirror.suite, registry)
        digest = tag.rsplit(":", 1)[1]
        if not force and digest in client.tags(repository(name)):
            if client.manifest_digest(repository(name), "latest") != client.manifest_digest(repository(name), digest):
                client.copy_tag(repository(name), digest, "latest")
            results.append(Result(name, tag, "present"))
        else:
            wanted.append((name, tag))
    if not wanted:
        return results
    for tool in ("docker", "chroot", "debootstrap"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"building the sandbox's images needs {tool}; run scripts/host-packages.sh")
    if trust_host:
        sandbox_registry.trust_on_host(ca_file, registry)
    to_build = [(name, tag) for name, tag in wanted if force or not nodeimage.image_exists(tag)]
    with tempfile.TemporaryDirectory(prefix="container-infra-images-") as workdir:
        base = None
        try:
            for name, tag in wanted:
                started = time.monotonic()
                if (name, tag) in to_build:
                    if base is None:
                        base = _prepare_root(mirror, Path(workdir), report)
                    report(f"building {tag} ({', '.join(RECIPES[name].packages)})")
                    _build_one(name, RECIPES[name], mirror.suite, base, Path(workdir), tag)
                latest = f"{image_name(name, registry)}:latest"
                _run(["docker", "tag", tag, latest], f"tagging {latest}")
                report(f"pushing {tag}")
                _push(tag)
                _push(latest)
                action = "built" if (name, tag) in to_build else "pushed"
                results.append(Result(name, tag, action, round(time.monotonic() - started, 1), image_size_mb(tag)))
        finally:
            if base is not None:
                nodeimage._unmount_below(base)
    return results


def status(ca_file: Path, registry: str = sandbox_registry.REGISTRY) -> list[dict]:
    """Each recipe: its tag for this machine's suite and whether the registry holds it (None: registry down)."""
    suite = nodeimage.choose_mirror(nodeimage.mirrors_from_apt()).suite
    client = sandbox_registry.Client(registry, ca_file, timeout=5)
    try:
        client.check()
    except sandbox_registry.RegistryDown:
        client = None
    rows = []
    for name, recipe in RECIPES.items():
        tag = image_tag(name, suite, registry)
        present = None if client is None else tag.rsplit(":", 1)[1] in client.tags(repository(name))
        rows.append({"name": name, "tag": tag, "in_registry": present, "packages": list(recipe.packages),
                     "description": recipe.description})
    return rows
