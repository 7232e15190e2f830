"""The sandbox's processes under supervisord.

supervisord owns every process of the sandbox: it keeps their logs, restarts none of them behind
our back (``autorestart=false``, so a crash shows in ``sandbox status``), and escalates SIGTERM to
SIGKILL after ``stopwaitsecs`` for the oslo.service engines that hang on SIGTERM. Every program
carries ``CONTAINER_INFRA_SANDBOX_DIR`` in its environment, which is how ``down`` finds strays (an
epmd daemon, a gunicorn worker) that outlived supervisord.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

from container_infra.sandbox import ceph, packages, registry
from container_infra.sandbox.layout import (
    APIS_BY_NAME,
    EPMD_PORT,
    HOST,
    MARIADB_PORT,
    RABBIT_DIST_PORT,
    RABBIT_PORT,
    Layout,
)

MARKER_ENV = "CONTAINER_INFRA_SANDBOX_DIR"


@dataclass(frozen=True)
class Program:
    name: str
    command: list[str]
    # Start phase: 0 infrastructure, 1 keystone, 2 the OpenStack services, 3 storage (after the seed).
    phase: int
    env: dict[str, str] = field(default_factory=dict)
    stopwaitsecs: int = 15


def _gunicorn(layout: Layout, service: str, factory: str, workers: int = 1, threads: int = 8,
              limit_request_line: int | None = None) -> list[str]:
    api = APIS_BY_NAME[service]
    limits = [] if limit_request_line is None else ["--limit-request-line", str(limit_request_line)]
    return [
        str(layout.bin("gunicorn")),
        "--bind",
        f"{HOST}:{api.internal_port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--timeout",
        "300",
        "--graceful-timeout",
        "5",
        # Idle keep-alive connections stay open longer than the fault proxy keeps them pooled
        # (faultproxy.UPSTREAM_KEEPALIVE_S): with gunicorn's default of 2 s, a pooled connection could
        # be closed just as the proxy sent a POST on it, which the proxy cannot retry (502).
        "--keep-alive",
        "75",
        "--name",
        f"sandbox-{service}",
        *limits,
        f"container_infra_sandbox.wsgi_apps:{factory}()",
    ]


def _oslo(layout: Layout, binary: str, *configs: str) -> list[str]:
    command = [str(layout.bin(binary))]
    for config in configs:
        command += ["--config-file", str(layout.etc / config)]
    return command


def rabbit_env(layout: Layout) -> dict[str, str]:
    base = layout.rabbitmq
    return {
        "HOME": str(base),
        "RABBITMQ_NODENAME": "sandbox@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(RABBIT_PORT),
        "RABBITMQ_DIST_PORT": str(RABBIT_DIST_PORT),
        # Erlang's distribution listener binds every address unless told otherwise.
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_ADDRESS": HOST,
        "ERL_EPMD_PORT": str(EPMD_PORT),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(layout.log / "rabbitmq"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(layout.run / "rabbitmq.pid"),
    }


def programs(layout: Layout) -> list[Program]:
    return [
        Program(
            "mariadb",
            [
                "/usr/sbin/mariadbd",
                f"--defaults-file={layout.etc / 'mysql' / 'my.cnf'}",
                "--user=root",
            ],
            phase=0,
            stopwaitsecs=30,
        ),
        Program("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], phase=0, env=rabbit_env(layout)),
        Program("keystone", _gunicorn(layout, "keystone", "keystone", threads=16), phase=1),
        Program(
            "fault-proxy",
            [str(layout.bin("python")), "-m", "container_infra_sandbox.faultproxy",
             "--config", str(layout.etc / "faultproxy.json")],
            phase=1,
        ),
        Program("glance-api", _gunicorn(layout, "glance", "glance"), phase=2),
        Program("placement-api", _gunicorn(layout, "placement", "placement"), phase=2),
        Program("nova-api", _gunicorn(layout, "nova", "nova"), phase=2),
        Program("nova-conductor", _oslo(layout, "nova-conductor", "nova/nova.conf"), phase=2),
        Program("nova-scheduler", _oslo(layout, "nova-scheduler", "nova/nova.conf"), phase=2),
        Program("nova-compute", _oslo(layout, "nova-compute", "nova/nova-compute.conf"), phase=2),
        Program("nova-compute-docker", _oslo(layout, "nova-compute", "nova/nova-compute-docker.conf"), phase=2,
                stopwaitsecs=30),
        Program(
            "fip-forwarder",
            [str(layout.bin("python")), "-m", "container_infra_sandbox.fipforward",
             "--config", str(layout.etc / "fipforward.json")],
            phase=2,
        ),
        # Nova lists a project's ports by up to 150 device ids in one query string (listing servers):
        # gunicorn's default request line limit (4094) fails that from about 80 servers; a real
        # deployment's web server takes it. Two worker processes: attaching ports keeps one Neutron
        # process busy on a whole core (benchmarks/server_interface.py), the rest of the cloud far less.
        Program("neutron-api", _gunicorn(layout, "neutron", "neutron", limit_request_line=0, workers=2), phase=2),
        Program("heat-api", _gunicorn(layout, "heat", "heat"), phase=2),
        Program("heat-engine", _oslo(layout, "heat-engine", "heat/heat.conf"), phase=2),
        Program("magnum-api", _gunicorn(layout, "magnum", "magnum"), phase=2),
        Program("magnum-conductor", _oslo(layout, "magnum-conductor", "magnum/magnum.conf"), phase=2),
        Program("manila-api", _gunicorn(layout, "manila", "manila"), phase=2),
        Program("manila-scheduler", _oslo(layout, "manila-scheduler", "manila/manila.conf"), phase=2),
        # Phase 3: after the seed, once the storage network's bridge carries the service address
        # the Ceph daemons bind to (manager._start_storage); manila-share's CephFS driver needs Ceph.
        *_ceph_programs(layout),
        Program("manila-share", _oslo(layout, "manila-share", "manila/manila.conf"), phase=3),
        # Phase 3 too: the image registry listens on the storage network's service address only
        # (registry.py), which exists once the manager has put it on the storage bridge.
        Program("registry", registry.command(layout), phase=3),
        # The emulated NVIDIA driver's and toolkit's repository (packages.py), on the same address only.
        Program("packages", packages.command(layout), phase=3),
    ]


def _ceph_programs(layout: Layout) -> list[Program]:
    """The Ceph daemons in the foreground (-f), as systemd and cephadm run them; stderr to their log."""
    conf = str(ceph.conf_path(layout))
    return [
        Program(f"ceph-{kind}", [f"/usr/bin/ceph-{kind}", "-f", "--conf", conf, "-i", ident], phase=3,
                stopwaitsecs=30)
        for kind, ident in (("mon", ceph.MON_ID), ("mgr", ceph.MGR_ID), ("osd", "0"), ("mds", ceph.MDS_ID))
    ]


def render_conf(layout: Layout) -> str:
    parser = configparser.RawConfigParser(interpolation=None)
    parser.optionxform = str
    parser["unix_http_server"] = {"file": str(layout.supervisor_socket), "chmod": "0700"}
    parser["supervisord"] = {
        "logfile": str(layout.log / "supervisord.log"),
        "pidfile": str(layout.run / "supervisord.pid"),
        "childlogdir": str(layout.log),
        "nodaemon": "false",
        "minfds": "4096",
    }
    parser["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    parser["supervisorctl"] = {"serverurl": f"unix://{layout.supervisor_socket}"}
    path = f"{layout.venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"
    for program in programs(layout):
        # SPT_NOENV: setproctitle (gunicorn's and oslo.service's process titles) otherwise writes the
        # title over /proc/PID/environ, and sandbox_pids() would lose the marker of those processes.
        env = {MARKER_ENV: str(layout.root), "SPT_NOENV": "1", "PATH": path, "PYTHONUNBUFFERED": "1"} | program.env
        parser[f"program:{program.name}"] = {
            "command": " ".join(_quote(part) for part in program.command),
            "directory": str(layout.root),
            "autostart": "false",
            "autorestart": "false",
            "startsecs": "1",
            "stopsignal": "TERM",
            "stopwaitsecs": str(program.stopwaitsecs),
            "stopasgroup": "true",
            "killasgroup": "true",
            "redirect_stderr": "true",
            "stdout_logfile": str(layout.log / f"{program.name}.log"),
            "stdout_logfile_maxbytes": "50MB",
            "stdout_logfile_backups": "1",
            "environment": ",".join(f'{key}="{value}"' for key, value in env.items()),
        }
    buffer = StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def _quote(part: str) -> str:
    # supervisord splits commands with shlex; our paths have no quotes but may have spaces.
    return f'"{part}"' if (" " in part or "(" in part) else part


class Supervisor:
    """Drives supervisord through supervisorctl from the services' venv."""

    def __init__(self, layout: Layout):
        self.layout = layout

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.layout.bin("supervisorctl")), "-c", str(self.layout.supervisor_conf), *args],
            capture_output=True,
            text=True,
            check=check,
        )

    def running(self) -> bool:
        if not self.layout.supervisor_socket.exists():
            return False
        return self._ctl("pid", check=False).stdout.strip().isdigit()

    def ensure_started(self) -> None:
        self.layout.supervisor_conf.parent.mkdir(parents=True, exist_ok=True)
        text = render_conf(self.layout)
        changed = not self.layout.supervisor_conf.exists() or self.layout.supervisor_conf.read_text() != text
        if changed:
            self.layout.supervisor_conf.write_text(text)
        if self.running():
            if changed:
                self._ctl("reread")
                self._ctl("update")
            return
        env = dict(os.environ) | {MARKER_ENV: str(self.layout.root)}
        subprocess.run(
            [str(self.layout.bin("supervisord")), "-c", str(self.layout.supervisor_conf)],
            check=True,
            env=env,
        )
        deadline = time.monotonic() + 20
        while not self.running():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"supervisord did not start; see {self.layout.log / 'supervisord.log'}"
                )
            time.sleep(0.2)

    def start(self, *names: str) -> None:
        result = self._ctl("start", *names, check=False)
        failed = [line for line in result.stdout.splitlines() if "ERROR" in line and "already started" not in line]
        if failed:
            raise RuntimeError(
                "could not start " + "; ".join(failed) + f" (logs in {self.layout.log})"
            )

    def stop(self, *names: str) -> None:
        self._ctl("stop", *names, check=False)

    def statuses(self) -> dict[str, tuple[str, str]]:
        """program -> (state, description) as supervisord reports them."""
        if not self.running():
            return {}
        result = self._ctl("status", check=False)
        statuses = {}
        for line in result.stdout.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2:
                statuses[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
        return statuses

    def shutdown(self) -> None:
        """Stop every program (SIGTERM, then SIGKILL after stopwaitsecs), then supervisord."""
        if self.running():
            self._ctl("stop", "all", check=False)
            self._ctl("shutdown", check=False)
            pid_file = self.layout.run / "supervisord.pid"
            deadline = time.monotonic() + 30
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        kill_strays(self.layout)


def sandbox_pids(layout: Layout) -> list[int]:
    """Processes whose environment marks them as this sandbox's (started by its supervisord)."""
    marker = f"{MARKER_ENV}={layout.root}".encode()
    own = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def supervisord_alive(layout: Layout) -> bool:
    """Whether this sandbox's supervisord process exists (it may be too busy to answer its socket)."""
    for pid in sandbox_pids(layout):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(Path(arg.decode(errors="replace")).name == "supervisord" for arg in argv[:2]):
            return True
    return False


def kill_strays(layout: Layout, grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, whatever of the sandbox outlived supervisord; returns their pids."""
    pids = sandbox_pids(layout)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def mariadb_conf(layout: Layout) -> str:
    return "\n".join(
        [
            "[mysqld]",
            f"datadir={layout.mysql}",
            f"socket={layout.mysql_socket}",
            f"pid-file={layout.run / 'mysqld.pid'}",
            f"bind-address={HOST}",
            f"port={MARIADB_PORT}",
            "skip-name-resolve",
            # A test cloud: durability per transaction is not worth the fsyncs.
            "innodb_flush_log_at_trx_commit=0",
            "innodb_buffer_pool_size=256M",
            "max_connections=1000",
            "character-set-server=utf8mb4",
            "collation-server=utf8mb4_general_ci",
            f"log-error={layout.log / 'mariadb-error.log'}",
            "",
        ]
    )
