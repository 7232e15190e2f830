"""The sandbox's verbs: up, down, status, logs, reset."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from container_infra.sandbox import (
    bootstrap,
    ceph,
    clouds,
    configs,
    install,
    nodeimage,
    nodes,
    packages,
    registry,
    seed,
    storagenet,
)
from container_infra.sandbox.layout import (
    APIS,
    CEPH_MON_PORTS,
    FAULT_ADMIN_PORT,
    MARIADB_PORT,
    PACKAGES_PORT,
    RABBIT_PORT,
    REGISTRY_PORT,
    STORAGE_SERVICE_ADDRESS,
    Layout,
)
from container_infra.sandbox.supervisor import Supervisor, kill_strays, programs, sandbox_pids, supervisord_alive

Report = Callable[[str], None]


class SandboxError(RuntimeError):
    """Something stopped the sandbox from coming up or going down; the message says what to do."""


@dataclass
class ServiceStatus:
    name: str
    state: str
    detail: str
    url: str


def _program_failed(supervisor: Supervisor, layout: Layout, name: str) -> Callable[[], str | None]:
    def check() -> str | None:
        state = supervisor.statuses().get(name, ("UNKNOWN", ""))[0]
        if state in ("EXITED", "FATAL", "BACKOFF"):
            tail = bootstrap.read_log_tail(layout.log / f"{name}.log")
            return f"it is {state}; last lines of {layout.log / (name + '.log')}:\n{tail}"
        return None

    return check


def _wait_http(url: str, name: str, timeout: float, failed: Callable[[], str | None]) -> None:
    """Wait until the service answers HTTP (gunicorn accepts before its worker has loaded the app)."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            if requests.get(url, timeout=30).status_code < 500:
                return
        except requests.RequestException:
            pass
        problem = failed()
        if problem:
            raise SandboxError(f"{name} did not start: {problem}")
        if time.monotonic() > deadline:
            raise SandboxError(f"{name} did not answer at {url} within {timeout:.0f} s; see `container-infra "
                               f"sandbox logs {name}`")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


@contextlib.contextmanager
def exclusive(layout: Layout):
    """One up, down or reset at a time per sandbox (parallel test workers, two operators' shells)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with (layout.root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(layout: Layout, report: Report) -> dict[str, float]:
    """Install (once), configure, start and seed the sandbox; returns the seconds each phase took."""
    with exclusive(layout):
        return _up(layout, report)


def _up(layout: Layout, report: Report) -> dict[str, float]:
    timings: dict[str, float] = {}
    started = time.monotonic()

    def phase(name: str) -> None:
        nonlocal started
        now = time.monotonic()
        timings[name] = round(now - started, 1)
        report(f"{name}: {timings[name]:.1f} s")
        started = now

    install.install_debian_packages(report)
    install.ensure_venv(layout, report)
    install.ensure_nova_driver_shim(layout)
    ceph.ensure_rados_in_venv(layout)
    nodeimage.ensure_dockerd(layout.log, report)
    nodeimage.build(report)
    phase("install")

    bootstrap.prepare_dirs(layout)
    secrets = bootstrap.load_or_create_secrets(layout)
    changed = configs.write_all(layout, secrets)
    # This machine's Docker pushes the sandbox's images to its registry over TLS.
    registry.trust_on_host(registry.ca_path(layout))
    bootstrap.prepare_mariadb(layout)
    bootstrap.prepare_rabbitmq(layout, secrets)
    supervisor = Supervisor(layout)
    if not supervisor.running() and not supervisord_alive(layout):
        # After a crash of supervisord its children may live on, holding ports and files that the
        # programs about to start need: without a supervisord, every process of the sandbox is a stray.
        strays = kill_strays(layout)
        if strays:
            report(f"stopped {len(strays)} process(es) left by a sandbox that did not shut down")
    supervisor.ensure_started()
    stale = programs_reading(layout, changed)
    if stale:
        # Stopped here, started again by their phase below with the new configuration.
        report(f"configuration changed; restarting {', '.join(stale)}")
        supervisor.stop(*stale)
    supervisor.start("mariadb", "rabbitmq")
    bootstrap.wait_for_port(MARIADB_PORT, "mariadb", 60, _program_failed(supervisor, layout, "mariadb"))
    bootstrap.create_databases(layout, secrets)
    bootstrap.migrate_databases(layout, report)
    bootstrap.wait_for_port(RABBIT_PORT, "rabbitmq", 90, _program_failed(supervisor, layout, "rabbitmq"))
    phase("databases")

    bootstrap.keystone_bootstrap(layout, secrets)
    supervisor.start("keystone", "fault-proxy")
    keystone_url = f"http://127.0.0.1:{APIS[0].internal_port}/v3"
    _wait_http(keystone_url, "keystone", 120, _program_failed(supervisor, layout, "keystone"))
    bootstrap.wait_for_port(FAULT_ADMIN_PORT, "fault-proxy", 30, _program_failed(supervisor, layout, "fault-proxy"))
    conn = bootstrap.admin_connection(secrets)
    bootstrap.ensure_catalog(layout, conn, secrets)
    # A token carries the catalog of its time: log in again to see the endpoints just made.
    conn = bootstrap.admin_connection(secrets)
    phase("keystone")

    rest = [program.name for program in programs(layout) if program.phase == 2]
    supervisor.start(*rest)
    with ThreadPoolExecutor(max_workers=len(APIS)) as pool:
        futures = [
            pool.submit(_wait_http, api.url("internal").split("/%")[0].rstrip("/") + "/", api.program, 240,
                        _program_failed(supervisor, layout, api.program))
            for api in APIS[1:]
        ]
        for future in futures:
            future.result()
    phase("services")

    seed_data = seed.load_seed(layout.source / "seed.yaml")
    passwords = {"admin": secrets["admin"], "demo": secrets["demo"]}
    seed.apply_seed(conn, seed_data, passwords, report)
    phase("seed")

    _start_storage(conn, supervisor, layout, report)
    phase("storage")

    _wait_for_compute_and_shares(conn, supervisor, layout)
    nodes.ensure_zones(conn, report)
    nodes.reconcile_containers(conn, report)
    path = clouds.write_clouds(passwords)
    report(f"clouds.yaml entries 'sandbox' and 'sandbox-admin' are in {path}")
    phase("nodes")
    return timings


def _start_storage(conn, supervisor: Supervisor, layout: Layout, report: Report) -> None:
    """The storage network's address, then Ceph (made once), then what serves from it (phase 3)."""
    storagenet.ensure_service_address(conn)
    ceph.prepare_mon(layout, report)
    supervisor.start("ceph-mon")
    mon_failed = _program_failed(supervisor, layout, "ceph-mon")
    bootstrap.wait_for_port(CEPH_MON_PORTS[0], "ceph-mon", 60, mon_failed, host=STORAGE_SERVICE_ADDRESS)
    ceph.prepare_daemons(layout)
    packages.ensure_repository(layout, report)
    daemons = [program.name for program in programs(layout)
               if program.phase == 3 and program.name not in ("ceph-mon", "manila-share")]
    supervisor.start(*daemons)
    ceph.ensure_filesystem(layout)

    def failed() -> str | None:
        return next(filter(None, (_program_failed(supervisor, layout, name)() for name in daemons)), None)

    ceph.wait_ready(layout, failed)
    bootstrap.wait_for_port(REGISTRY_PORT, "registry", 30, _program_failed(supervisor, layout, "registry"),
                            host=STORAGE_SERVICE_ADDRESS)
    bootstrap.wait_for_port(PACKAGES_PORT, "packages", 30, _program_failed(supervisor, layout, "packages"),
                            host=STORAGE_SERVICE_ADDRESS)
    supervisor.start("manila-share")


def programs_reading(layout: Layout, files) -> list[str]:
    """The programs whose configuration is among ``files``."""
    names = []
    for path in files:
        if path.name == "faultproxy.json":
            names.append("fault-proxy")
            continue
        if path.name == "fipforward.json":
            names.append("fip-forwarder")
            continue
        own = [p.name for p in programs(layout) if p.name == path.stem]
        if own:
            # A file named after its program (nova-compute.conf) is read by that program alone.
            names += own
            continue
        service = path.relative_to(layout.etc).parts[0]
        names += [p.name for p in programs(layout) if p.name == service or p.name.startswith(f"{service}-")]
    return sorted(set(names))


def _wait_for_compute_and_shares(conn, supervisor: Supervisor, layout: Layout, timeout: float = 180) -> None:
    """Servers and shares can be created once the compute host and the share pool are known."""
    # Manila's API lists pools from a cache that its first listing fills for good, pools or none (see
    # container_infra_sandbox.manila_pools): the pool is asked of the scheduler itself, uncached, by
    # the services' interpreter, while this process waits for the compute host.
    probe = subprocess.Popen(
        [str(layout.bin("python")), "-m", "container_infra_sandbox.manila_pools",
         "--config-file", str(layout.etc / "manila" / "manila.conf"), "--timeout", str(int(timeout))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.5
        while not any(True for _ in conn.compute.hypervisors()):
            problem = _program_failed(supervisor, layout, "nova-compute")()
            if problem:
                raise SandboxError(f"nova-compute did not start: {problem}")
            if time.monotonic() > deadline:
                raise SandboxError(f"nova-compute did not register within {timeout:.0f} s; see "
                                   "`container-infra sandbox logs nova-compute`")
            time.sleep(delay)
            delay = min(delay * 1.5, 3)
        while probe.poll() is None:
            problem = _program_failed(supervisor, layout, "manila-share")()
            if problem:
                raise SandboxError(f"manila-share did not start: {problem}")
            time.sleep(0.5)
        if probe.returncode != 0:
            # The probe's last line says why; the services' interpreter prints warnings before it.
            why = (probe.stderr.read().strip().splitlines() or ["the probe failed"])[-1]
            share_errors = [line for line in bootstrap.read_log_tail(layout.log / "manila-share.log", 300).splitlines()
                            if " ERROR " in line]
            last_error = f"; its last error: {share_errors[-1]}" if share_errors else ""
            raise SandboxError(f"{why}{last_error}; see `container-infra sandbox logs manila-share`")
    finally:
        if probe.poll() is None:
            probe.kill()
        probe.wait()
        probe.stderr.close()


def down(layout: Layout) -> list[int]:
    """Stop every process of the sandbox; returns the pids of strays that had to be killed."""
    with exclusive(layout):
        return _down(layout)


def _down(layout: Layout) -> list[int]:
    supervisor = Supervisor(layout)
    supervisor.shutdown()
    strays = kill_strays(layout)
    # The nodes die with the cloud: no container, veth or bridge of the sandbox outlives `down`.
    nodes.cleanup()
    return strays


def status(layout: Layout) -> list[ServiceStatus]:
    supervisor = Supervisor(layout)
    states = supervisor.statuses()
    urls = {api.program: api.url("public") for api in APIS}
    urls["fault-proxy"] = f"http://127.0.0.1:{FAULT_ADMIN_PORT}"
    urls["mariadb"] = f"mysql://127.0.0.1:{MARIADB_PORT}"
    urls["rabbitmq"] = f"amqp://127.0.0.1:{RABBIT_PORT}"
    urls["registry"] = f"https://{registry.REGISTRY}"
    urls["packages"] = packages.URL
    for name in ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds"):
        urls[name] = f"ceph://{STORAGE_SERVICE_ADDRESS}:{CEPH_MON_PORTS[0]}"
    result = []
    for program in programs(layout):
        state, detail = states.get(program.name, ("STOPPED", "supervisord is not running"))
        result.append(ServiceStatus(program.name, state, detail, urls.get(program.name, "")))
    return result


def reset(layout: Layout) -> None:
    """Stop everything and wipe the sandbox's state; the services' venv is kept for a warm next up."""
    with exclusive(layout):
        _reset(layout)


def _reset(layout: Layout) -> None:
    _down(layout)
    leftovers = sandbox_pids(layout)
    if leftovers:
        raise SandboxError(f"processes {leftovers} of the sandbox are still running; stop them and retry")
    for path in layout.state_dirs:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    clouds.remove_clouds()
    registry.untrust_on_host()


def log_path(layout: Layout, service: str):
    names = [program.name for program in programs(layout)]
    if service not in names:
        raise SandboxError(f"no service {service!r} in the sandbox; choose one of: {', '.join(names)}")
    return layout.log / f"{service}.log"
