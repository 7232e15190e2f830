"""The sandbox's Ceph: one mon, one mgr, one OSD (BlueStore on a file), one MDS and a CephFS volume.

Debian's ceph 16.2 packages, daemons in the foreground under the sandbox's supervisord (as systemd and
cephadm run them), every path inside the sandbox directory: the configuration and keyrings in
``etc/ceph/`` (keyrings 0600), the daemons' data in ``data/ceph/``, sockets and pids in ``run/ceph/``,
logs in ``log/``. They listen on the storage network's service address (``STORAGE_SERVICE_ADDRESS``,
on the bridge the sandbox owns), which is where the nodes reach them, and nowhere else: no dashboard,
no Prometheus module, IPv4 only.

Manila's own CephFS native driver talks to this cluster as ``client.manila`` (the capabilities
Manila's documentation gives it: ``mon 'allow r'``, ``mgr 'allow rw'``).

The cluster is made once (``mkfs`` of the mon and the OSD, the daemons' keys, the file system) and
found again on every later ``up``; each step checks whether it is done, so an ``up`` interrupted
half-way finishes on the next one. ``reset`` wipes ``data/`` and ``etc/``, and with them the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from container_infra.sandbox.layout import CEPH_MON_PORTS, STORAGE_CIDR, STORAGE_SERVICE_ADDRESS, Layout

# The Debian packages of the cluster and its clients; ``python3-rados`` is Manila's binding to it.
DEBIAN_PACKAGES = {
    "/usr/bin/ceph-mon": "ceph-mon",
    "/usr/bin/ceph-mgr": "ceph-mgr",
    "/usr/bin/ceph-osd": "ceph-osd",
    "/usr/bin/ceph-mds": "ceph-mds",
    "/usr/bin/ceph": "ceph-common",
    "/usr/bin/ceph-fuse": "ceph-fuse",
    "/usr/lib/python3/dist-packages/ceph_argparse.py": "python3-rados",
}
# Debian's python3-rados, importable from the services' venv (same CPython minor version): only the
# binding and the argument parser Manila's driver imports, not the whole of dist-packages.
RADOS_MODULES = ("rados.cpython-*.so", "ceph_argparse.py")
DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")

FS_NAME = "cephfs"
MANILA_AUTH_ID = "manila"
MON_ID = "a"
MGR_ID = "x"
MDS_ID = "a"
OSD_BLOCK_BYTES = 8 * 1024**3  # sparse: allocates only what is written

Report = Callable[[str], None]


class CephError(RuntimeError):
    """A step of the cluster's set-up failed; the message names it and the log to read."""


def conf_dir(layout: Layout) -> Path:
    return layout.etc / "ceph"


def conf_path(layout: Layout) -> Path:
    return conf_dir(layout) / "ceph.conf"


def data_dir(layout: Layout) -> Path:
    return layout.data / "ceph"


def run_dir(layout: Layout) -> Path:
    return layout.run / "ceph"


def keyring(layout: Layout, entity: str) -> Path:
    return conf_dir(layout) / f"ceph.{entity}.keyring"


def mon_host() -> str:
    v2, v1 = CEPH_MON_PORTS
    return f"[v2:{STORAGE_SERVICE_ADDRESS}:{v2},v1:{STORAGE_SERVICE_ADDRESS}:{v1}]"


def render_conf(layout: Layout, fsid: str) -> str:
    data, run = data_dir(layout), run_dir(layout)
    lines = [
        "[global]",
        f"fsid = {fsid}",
        f"mon_host = {mon_host()}",
        f"mon_initial_members = {MON_ID}",
        f"public_network = {STORAGE_CIDR}",
        f"cluster_network = {STORAGE_CIDR}",
        f"public_addr = {STORAGE_SERVICE_ADDRESS}",
        f"cluster_addr = {STORAGE_SERVICE_ADDRESS}",
        "ms_bind_ipv4 = true",
        "ms_bind_ipv6 = false",
        "auth_cluster_required = cephx",
        "auth_service_required = cephx",
        "auth_client_required = cephx",
        "auth_allow_insecure_global_id_reclaim = false",
        # One OSD: pools of one copy, and no warning about it.
        "osd_pool_default_size = 1",
        "osd_pool_default_min_size = 1",
        "osd_pool_default_pg_num = 8",
        "osd_pool_default_pgp_num = 8",
        "osd_crush_chooseleaf_type = 0",
        "mon_allow_pool_size_one = true",
        "mon_warn_on_pool_no_redundancy = false",
        "mon_allow_pool_delete = true",
        # The machine's disk is shared with everything else: warn only when it is really full.
        "mon_data_avail_warn = 2",
        "mon_data_avail_crit = 1",
        # The manager's HTTP modules (dashboard, prometheus, restful) stay off: nothing listens but
        # the daemons' messenger ports on the storage address.
        "mgr_initial_modules = iostat",
        # Admin sockets for the daemons only (below): clients such as manila-share and the CLI would
        # otherwise fight over one socket per client name.
        f"run_dir = {run}",
        f"pid_file = {run}/$cluster-$name.pid",
        f"log_file = {layout.log}/ceph-$name.log",
        f"crash_dir = {data}/crash",
        "log_to_stderr = false",
        "err_to_stderr = true",
        "",
        "[mon]",
        f"admin_socket = {run}/$cluster-$name.asok",
        f"mon_data = {data}/mon/$cluster-$id",
        f"keyring = {keyring(layout, 'mon')}",
        "",
        "[mgr]",
        f"admin_socket = {run}/$cluster-$name.asok",
        f"mgr_data = {data}/mgr/$cluster-$id",
        f"keyring = {conf_dir(layout)}/ceph.mgr.$id.keyring",
        "",
        "[osd]",
        f"admin_socket = {run}/$cluster-$name.asok",
        f"osd_data = {data}/osd/$cluster-$id",
        f"keyring = {data}/osd/$cluster-$id/keyring",
        "osd_objectstore = bluestore",
        # The block file beside the data directory: inside it, mkfs fails ("Too many levels of
        # symbolic links").
        f"bluestore_block_path = {data}/osd/$cluster-$id.block",
        "bluestore_block_create = true",
        f"bluestore_block_size = {OSD_BLOCK_BYTES}",
        "osd_memory_target = 939524096",
        "bluestore_cache_autotune = false",
        "bluestore_cache_size = 134217728",
        "",
        "[mds]",
        f"admin_socket = {run}/$cluster-$name.asok",
        f"mds_data = {data}/mds/$cluster-$id",
        f"keyring = {conf_dir(layout)}/ceph.mds.$id.keyring",
        "",
        "[client]",
        f"keyring = {conf_dir(layout)}/ceph.$name.keyring",
        "",
    ]
    return "\n".join(lines)


def client_conf(fsid: str) -> str:
    """What a client (a node, Manila) needs to find the cluster: its id and monitors."""
    return f"[global]\nfsid = {fsid}\nmon_host = {mon_host()}\n"


def _write_private(path: Path, text: str) -> bool:
    """Write ``text`` 0600 (atomically) unless the file holds it already; returns whether it changed."""
    if path.exists() and path.read_text() == text and (path.stat().st_mode & 0o777) == 0o600:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(temp, 0o600)
    os.replace(temp, path)
    return True


def fsid(layout: Layout) -> str:
    """The cluster's id, made once and kept beside its data."""
    path = data_dir(layout) / "fsid"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(uuid.uuid4()))
    return path.read_text().strip()


def write_conf(layout: Layout) -> list[Path]:
    """ceph.conf for the daemons and Manila; returns the files that changed."""
    changed = []
    for directory in (conf_dir(layout), data_dir(layout), run_dir(layout)):
        directory.mkdir(parents=True, exist_ok=True)
    text = render_conf(layout, fsid(layout))
    if _write_private(conf_path(layout), text):
        changed.append(conf_path(layout))
    return changed


def _run(args: list[str], what: str, stdin: str | None = None, timeout: float = 60) -> str:
    try:
        result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise CephError(f"{what} did not finish within {timeout:.0f} s ({' '.join(args[:3])} ...)") from error
    if result.returncode != 0:
        raise CephError(f"{what} failed: {(result.stderr or result.stdout).strip()[-800:]}")
    return result.stdout


def ceph(layout: Layout, *args: str, timeout: float = 30, stdin_json=None) -> str:
    """The ``ceph`` CLI as client.admin of the sandbox's cluster."""
    return _run(["ceph", "--conf", str(conf_path(layout)), "--name", "client.admin",
                 "--keyring", str(keyring(layout, "client.admin")), "--connect-timeout", "10", *args],
                f"ceph {' '.join(args)}", stdin=None if stdin_json is None else json.dumps(stdin_json),
                timeout=timeout)


def ceph_json(layout: Layout, *args: str, timeout: float = 30):
    return json.loads(ceph(layout, *args, "--format", "json", timeout=timeout) or "null")


def _gen_key() -> str:
    return _run(["ceph-authtool", "--gen-print-key"], "making a cephx key").strip()


def _keyring_text(entity: str, key: str, caps: dict[str, str] | None = None) -> str:
    lines = [f"[{entity}]", f"\tkey = {key}"]
    lines += [f'\tcaps {service} = "{cap}"' for service, cap in (caps or {}).items()]
    return "\n".join(lines) + "\n"


ADMIN_CAPS = {"mds": "allow *", "mgr": "allow *", "mon": "allow *", "osd": "allow *"}


def prepare_mon(layout: Layout, report: Report) -> None:
    """Make the mon's store once (mon and admin keys, monmap with the storage address)."""
    mon_data = data_dir(layout) / "mon" / f"ceph-{MON_ID}"
    if (mon_data / "done").exists():
        return
    report("making the Ceph cluster (once)")
    admin = keyring(layout, "client.admin")
    if not admin.exists():
        _write_private(admin, _keyring_text("client.admin", _gen_key(), ADMIN_CAPS))
    mon_keyring = keyring(layout, "mon")
    _write_private(mon_keyring, _keyring_text("mon.", _gen_key(), {"mon": "allow *"}) + admin.read_text())
    monmap = data_dir(layout) / "monmap"
    v2, v1 = CEPH_MON_PORTS
    _run(["monmaptool", "--create", "--clobber", "--fsid", fsid(layout), "--addv", MON_ID,
          f"[v2:{STORAGE_SERVICE_ADDRESS}:{v2},v1:{STORAGE_SERVICE_ADDRESS}:{v1}]", str(monmap)], "monmaptool")
    if mon_data.exists():
        _run(["rm", "-rf", str(mon_data)], "clearing a half-made mon store")
    mon_data.mkdir(parents=True)
    _run(["ceph-mon", "--conf", str(conf_path(layout)), "--mkfs", "-i", MON_ID, "--monmap", str(monmap),
          "--keyring", str(mon_keyring)], "ceph-mon --mkfs")
    (mon_data / "done").write_text("")


def _daemon_keyring(layout: Layout, entity: str, path: Path, caps: list[str]) -> None:
    if path.exists():
        return
    text = ceph(layout, "auth", "get-or-create", entity, *caps)
    _write_private(path, text)


def prepare_daemons(layout: Layout) -> None:
    """Keys of the mgr, the MDS and Manila, and the OSD's store (the mon must be up)."""
    data = data_dir(layout)
    (data / "mgr" / f"ceph-{MGR_ID}").mkdir(parents=True, exist_ok=True)
    (data / "mds" / f"ceph-{MDS_ID}").mkdir(parents=True, exist_ok=True)
    (data / "crash").mkdir(parents=True, exist_ok=True)
    _daemon_keyring(layout, f"mgr.{MGR_ID}", conf_dir(layout) / f"ceph.mgr.{MGR_ID}.keyring",
                    ["mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"])
    _daemon_keyring(layout, f"mds.{MDS_ID}", conf_dir(layout) / f"ceph.mds.{MDS_ID}.keyring",
                    ["mon", "allow profile mds", "mgr", "allow profile mds", "mds", "allow *", "osd", "allow *"])
    # Manila's identity, with the capabilities Manila's CephFS documentation gives it.
    _daemon_keyring(layout, f"client.{MANILA_AUTH_ID}", keyring(layout, f"client.{MANILA_AUTH_ID}"),
                    ["mon", "allow r", "mgr", "allow rw"])
    _prepare_osd(layout)


def _prepare_osd(layout: Layout) -> None:
    osd_root = data_dir(layout) / "osd"
    osd_data = osd_root / "ceph-0"
    if (osd_data / "done").exists():
        return
    osd_root.mkdir(parents=True, exist_ok=True)
    uuid_file = osd_root / "uuid"
    if not uuid_file.exists():
        uuid_file.write_text(str(uuid.uuid4()))
    osd_uuid = uuid_file.read_text().strip()
    secret_file = osd_root / "secret"
    if not secret_file.exists():
        _write_private(secret_file, _gen_key())
    secret = secret_file.read_text().strip()
    # `osd new` is idempotent for the same uuid: an interrupted first up gets id 0 again.
    osd_id = ceph(layout, "osd", "new", osd_uuid, "-i", "-", stdin_json={"cephx_secret": secret}).strip()
    if osd_id != "0":
        raise CephError(f"the sandbox's OSD got id {osd_id}, not 0; run `container-infra sandbox reset`")
    for leftover in (osd_data, osd_root / "ceph-0.block"):
        if leftover.exists():
            _run(["rm", "-rf", str(leftover)], "clearing a half-made OSD")
    osd_data.mkdir()
    _write_private(osd_data / "keyring", _keyring_text("osd.0", secret))
    _run(["ceph-osd", "--conf", str(conf_path(layout)), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid],
         "ceph-osd --mkfs", timeout=180)
    (osd_data / "done").write_text("")


def ensure_filesystem(layout: Layout, timeout: float = 120) -> None:
    """The CephFS volume Manila's driver serves shares from (pools, file system), made once."""
    deadline = time.monotonic() + timeout
    while True:
        names = {fs["name"] for fs in ceph_json(layout, "fs", "ls")}
        if FS_NAME in names:
            return
        try:
            # The mgr's volumes module makes the pools and the file system; it answers once the mgr
            # is active, which takes a few seconds after it starts.
            ceph(layout, "fs", "volume", "create", FS_NAME, timeout=60)
            return
        except CephError as error:
            if time.monotonic() > deadline:
                raise CephError(f"the CephFS volume {FS_NAME} could not be made: {error}") from error
            time.sleep(1)


def health(layout: Layout) -> dict:
    """``ceph status`` in short: health, OSDs up, the file system's active MDS."""
    status = ceph_json(layout, "status")
    fsmap = status.get("fsmap", {})
    return {
        "health": status["health"]["status"],
        "checks": sorted(status["health"].get("checks", {})),
        "osds_up": status["osdmap"].get("num_up_osds", 0),
        "mds_up": fsmap.get("up", 0),
        "mgr_available": status.get("mgrmap", {}).get("available", False),
    }


def wait_ready(layout: Layout, failed: Callable[[], str | None], timeout: float = 120) -> dict:
    """Wait for HEALTH_OK with the OSD up and the file system's MDS active."""
    deadline = time.monotonic() + timeout
    delay, last = 0.3, {}
    while True:
        try:
            last = health(layout)
            if last["health"] == "HEALTH_OK" and last["osds_up"] >= 1 and last["mds_up"] >= 1:
                return last
        except CephError as error:
            last = {"error": str(error)}
        problem = failed()
        if problem:
            raise CephError(f"Ceph did not come up: {problem}")
        if time.monotonic() > deadline:
            raise CephError(f"Ceph was not healthy within {timeout:.0f} s (last: {last}); see "
                            "`container-infra sandbox logs ceph-mon` and the ceph-*.log files beside it")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def rados_link_dir(layout: Layout) -> Path:
    return layout.venv / "ceph-bindings"


def ensure_rados_in_venv(layout: Layout) -> None:
    """Make Debian's rados binding importable in the services' venv (a .pth naming a directory of links)."""
    links = rados_link_dir(layout)
    links.mkdir(parents=True, exist_ok=True)
    for pattern in RADOS_MODULES:
        for source in DIST_PACKAGES.glob(pattern):
            target = links / source.name
            if not target.is_symlink() or os.readlink(target) != str(source):
                target.unlink(missing_ok=True)
                target.symlink_to(source)
    site = _run([str(layout.bin("python")), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                "finding the services' site-packages").strip()
    pth = Path(site) / "container-infra-ceph.pth"
    if not pth.exists() or pth.read_text().strip() != str(links):
        pth.write_text(f"{links}\n")
