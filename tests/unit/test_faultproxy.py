"""The sandbox's fault proxy, its client and its CLI, against a tiny upstream on loopback.

The proxy runs as a subprocess with the sandbox services' Python (where aiohttp lives), from this
checkout's ``sandbox/`` directory; every address is 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "src") not in sys.path:  # until the toolkit is installed into the venv
    sys.path.insert(0, str(REPO / "src"))

from container_infra.sandbox.fault_cli import fault  # noqa: E402
from container_infra.sandbox.faults import FaultClient, FaultProxyError, FaultProxyUnavailable  # noqa: E402

SANDBOX_DIR = Path(os.environ.get("CONTAINER_INFRA_SANDBOX_DIR", "~/.local/share/container-infra/sandbox"))
SERVICES_PYTHON = SANDBOX_DIR.expanduser() / "venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- a tiny upstream


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.seen: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class EchoHandler(BaseHTTPRequestHandler):
    """Echoes the request as JSON; ``/redirect`` answers 302, ``/status/NNN`` answers NNN."""

    protocol_version = "HTTP/1.1"
    server: Upstream

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._body()
        record = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_len": len(body),
            "body": body[:200].decode("latin-1"),
        }
        with self.server.lock:
            self.server.seen.append(record)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/landed-here?from=redirect")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
        payload = b"" if status in (204, 304) else json.dumps(record).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", "echo")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


# --------------------------------------------------------------------------- fixtures


class Sandbox:
    def __init__(self, upstream: Upstream, ports: dict[str, int], admin_port: int) -> None:
        self.upstream = upstream
        self.ports = ports
        self.admin_url = f"http://127.0.0.1:{admin_port}"
        self.client = FaultClient(self.admin_url)
        self.http = requests.Session()
        self.http.trust_env = False

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def request(self, method: str, service: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        kwargs.setdefault("allow_redirects", False)
        return self.http.request(method, self.url(service, path), **kwargs)


def _start_proxy(config_path: Path, log_path: Path) -> subprocess.Popen:
    if not SERVICES_PYTHON.exists():
        pytest.fail(
            f"the sandbox services' Python {SERVICES_PYTHON} is missing; the fault proxy runs there "
            "(create the sandbox's venv with aiohttp, e.g. `container-infra sandbox up`)"
        )
    env = dict(os.environ, PYTHONPATH=str(REPO / "sandbox"))
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [str(SERVICES_PYTHON), "-m", "container_infra_sandbox.faultproxy", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(REPO),
        )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    upstream = Upstream()
    thread = threading.Thread(target=upstream.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    ports = {"identity": free_port(), "compute": free_port()}
    admin_port = free_port()
    workdir = tmp_path_factory.mktemp("faultproxy")
    config = workdir / "faultproxy.json"
    config.write_text(
        json.dumps(
            {
                "admin": f"127.0.0.1:{admin_port}",
                "routes": [
                    {"service": name, "listen": f"127.0.0.1:{port}", "upstream": upstream.url}
                    for name, port in ports.items()
                ],
            }
        )
    )
    log = workdir / "faultproxy.log"
    proc = _start_proxy(config, log)
    env = Sandbox(upstream, ports, admin_port)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the fault proxy exited with {proc.returncode}:\n{log.read_text()}")
            try:
                env.client.health()
                break
            except FaultProxyUnavailable:
                if time.monotonic() > deadline:
                    pytest.fail(f"the fault proxy did not answer within 10 s:\n{log.read_text()}")
                time.sleep(0.05)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        upstream.shutdown()
        upstream.server_close()
        env.client.close()
        env.http.close()


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    sandbox.client.reset()
    with sandbox.upstream.lock:
        sandbox.upstream.seen.clear()
    return sandbox


# --------------------------------------------------------------------------- pass-through


def test_forwards_method_path_query_headers_and_body_verbatim(sb: Sandbox) -> None:
    path = "/v3/some%20thing//x;y?name=a%2Fb&empty=&name=2"
    response = sb.request(
        "PATCH",
        "identity",
        path,
        data=b'{"a": 1}',
        headers={"X-Auth-Token": "tok", "Content-Type": "application/json", "OpenStack-API-Version": "x 1.2"},
    )
    assert response.status_code == 200
    assert response.headers["X-Upstream"] == "echo"
    seen = response.json()
    assert seen["method"] == "PATCH"
    assert seen["path"] == path
    assert seen["body"] == '{"a": 1}'
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["x-auth-token"] == "tok"
    assert headers["content-type"] == "application/json"
    assert headers["openstack-api-version"] == "x 1.2"
    # Host is the public address, so services build links with it.
    assert headers["host"] == f"127.0.0.1:{sb.ports['identity']}"
    assert "user-agent" in headers and headers["user-agent"].startswith("python-requests")
    # Nothing added, nothing lost but the hop-by-hop Connection header.
    sent = {k.lower() for k in response.request.headers} | {"host"}
    assert set(headers) == sent - {"connection"}


def test_forwards_status_codes_and_head(sb: Sandbox) -> None:
    assert sb.request("GET", "compute", "/status/418").status_code == 418
    assert sb.request("DELETE", "compute", "/status/204").status_code == 204
    head = sb.request("HEAD", "compute", "/anything")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) > 0
    assert [s["method"] for s in sb.upstream.seen] == ["GET", "DELETE", "HEAD"]


def test_streams_large_and_chunked_bodies(sb: Sandbox) -> None:
    blob = os.urandom(3 * 1024 * 1024)
    seen = sb.request("PUT", "compute", "/v2/images/x/file", data=blob).json()
    assert seen["body_len"] == len(blob)
    assert ["Content-Length", str(len(blob))] in seen["headers"]

    def chunks():
        for _ in range(8):
            yield b"z" * 10000

    seen = sb.request("POST", "compute", "/chunked", data=chunks()).json()
    assert seen["body_len"] == 80000
    assert ["Transfer-Encoding", "chunked"] in seen["headers"]


def test_redirect_is_passed_through_not_followed(sb: Sandbox) -> None:
    response = sb.request("GET", "identity", "/redirect?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/landed-here?from=redirect"
    assert [s["path"] for s in sb.upstream.seen] == ["/redirect?x=1"]


# --------------------------------------------------------------------------- faults


def test_status_fault_hits_exactly_the_next_n_matching_requests(sb: Sandbox) -> None:
    rule = sb.client.add_fault(service="identity", method="POST", path="/v3/auth/*", status=503, count=2)
    assert rule["id"] and rule["remaining"] == 2 and rule["hits"] == 0

    assert sb.request("GET", "identity", "/v3/auth/tokens").status_code == 200  # other method
    assert sb.request("POST", "identity", "/v3/users").status_code == 200  # other path
    assert sb.request("POST", "compute", "/v3/auth/tokens").status_code == 200  # other service
    first = sb.request("POST", "identity", "/v3/auth/tokens", json={"auth": {}})
    assert first.status_code == 503
    assert first.json()["error"]["code"] == 503
    assert "fault proxy" in first.json()["error"]["message"]
    assert first.headers["X-Openstack-Request-Id"].startswith("req-")
    assert [r["remaining"] for r in sb.client.list_faults()] == [1]
    assert sb.request("POST", "identity", "/v3/auth/tokens").status_code == 503
    assert sb.request("POST", "identity", "/v3/auth/tokens").status_code == 200  # expired: passes

    assert sb.client.list_faults() == []
    expired = sb.client.list_faults(expired=True)
    assert [(r["id"], r["hits"]) for r in expired] == [(rule["id"], 2)]
    # The faulted requests never reached the service.
    assert [(s["method"], s["path"]) for s in sb.upstream.seen] == [
        ("GET", "/v3/auth/tokens"),
        ("POST", "/v3/users"),
        ("POST", "/v3/auth/tokens"),  # the compute one
        ("POST", "/v3/auth/tokens"),  # after the rule expired
    ]


def test_status_fault_body_has_the_service_shape_and_message(sb: Sandbox) -> None:
    sb.client.add_fault(service="compute", status=409, message="Cannot 'resize' while busy", retry_after=3)
    response = sb.request("POST", "compute", "/v2.1/servers/x/action")
    assert response.status_code == 409
    assert response.json() == {"conflictingRequest": {"code": 409, "message": "Cannot 'resize' while busy"}}
    assert response.headers["Retry-After"] == "3"


def test_first_matching_rule_wins_in_creation_order(sb: Sandbox) -> None:
    sb.client.add_fault(path="/v2.1/servers*", status=500, count=1)
    sb.client.add_fault(path="/v2.1/*", status=404)
    assert sb.request("GET", "compute", "/v2.1/servers/detail").status_code == 500
    assert sb.request("GET", "compute", "/v2.1/servers/detail").status_code == 404
    assert sb.request("GET", "compute", "/v2/other").status_code == 200


def test_reset_fault_aborts_the_connection(sb: Sandbox) -> None:
    sb.client.add_fault(service="compute", method="GET", path="/v2.1/flavors*", reset=True, count=1)
    with pytest.raises(requests.ConnectionError):
        sb.request("GET", "compute", "/v2.1/flavors/detail")
    assert sb.request("GET", "compute", "/v2.1/flavors/detail").status_code == 200
    assert sb.client.counts()["compute"] == {"total": 2, "by_method": {"GET": 2}, "faulted": 1}


def test_fault_after_the_service_answered(sb: Sandbox) -> None:
    sb.client.add_fault(method="POST", status=500, when="after", count=1)
    assert sb.request("POST", "identity", "/v3/projects", json={}).status_code == 500
    assert [s["path"] for s in sb.upstream.seen] == ["/v3/projects"]  # the service did the work
    sb.client.add_fault(method="DELETE", reset=True, when="after", count=1)
    with pytest.raises(requests.ConnectionError):
        sb.request("DELETE", "identity", "/v3/projects/p1")
    assert [s["path"] for s in sb.upstream.seen] == ["/v3/projects", "/v3/projects/p1"]


def test_count_is_exact_under_concurrency(sb: Sandbox) -> None:
    sb.client.add_fault(service="compute", status=503, count=7)

    def one(_: int) -> int:
        with requests.Session() as http:
            http.trust_env = False
            return http.get(sb.url("compute", "/v2.1/servers"), timeout=5).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(one, range(40)))
    assert statuses.count(503) == 7 and statuses.count(200) == 33
    assert sb.client.counts()["compute"]["total"] == 40


def test_latency_delays_requests_and_zero_clears_it(sb: Sandbox) -> None:
    assert sb.client.set_latency(200) == {"*": 200}
    started = time.monotonic()
    assert sb.request("GET", "identity", "/v3").status_code == 200
    assert time.monotonic() - started >= 0.2
    assert sb.client.set_latency(0) == {}
    started = time.monotonic()
    sb.request("GET", "identity", "/v3")
    assert time.monotonic() - started < 0.2
    # Per service: only that service slows down.
    assert sb.client.set_latency(200, service="compute") == {"compute": 200}
    started = time.monotonic()
    sb.request("GET", "identity", "/v3")
    assert time.monotonic() - started < 0.2
    started = time.monotonic()
    sb.request("GET", "compute", "/v2.1")
    assert time.monotonic() - started >= 0.2


def test_counts_per_service_and_method(sb: Sandbox) -> None:
    sb.client.add_fault(service="identity", method="DELETE", status=403)
    sb.request("GET", "identity", "/v3")
    sb.request("GET", "identity", "/v3/users")
    sb.request("POST", "identity", "/v3/users", json={})
    sb.request("DELETE", "identity", "/v3/users/u")
    sb.request("PUT", "compute", "/v2.1/x", json={})
    counts = sb.client.counts()
    assert counts["identity"] == {"total": 4, "by_method": {"DELETE": 1, "GET": 2, "POST": 1}, "faulted": 1}
    assert counts["compute"] == {"total": 1, "by_method": {"PUT": 1}, "faulted": 0}
    assert sb.client.reset_counts()["identity"]["total"] == 4
    assert sb.client.counts()["identity"] == {"total": 0, "by_method": {}, "faulted": 0}


def test_agent_scopes_faults_and_counts_to_one_client(sb: Sandbox) -> None:
    mine, theirs = {"User-Agent": "openstacksdk/4 test-abc123"}, {"User-Agent": "openstacksdk/4 test-other"}
    sb.client.add_fault(service="compute", path="/v2.1/servers", status=409, agent="*test-abc123*")
    assert sb.request("GET", "compute", "/v2.1/servers", headers=theirs).status_code == 200
    assert sb.request("GET", "compute", "/v2.1/servers", headers=mine).status_code == 409
    sb.request("GET", "compute", "/v2.1/flavors", headers=mine)
    assert sb.client.counts(agent="*test-abc123*")["compute"] == {
        "total": 2, "by_method": {"GET": 2}, "faulted": 1
    }
    assert sb.client.counts()["compute"]["total"] == 3
    assert sb.client.reset_counts(agent="*test-abc123*")["compute"]["total"] == 2
    assert sb.client.counts()["compute"]["total"] == 1  # the other client's request is still counted


def test_clear_and_remove(sb: Sandbox) -> None:
    first = sb.client.add_fault(status=500)
    sb.client.add_fault(reset=True, path="/never")
    assert sb.request("GET", "compute", "/x").status_code == 500
    sb.client.remove_fault(first["id"])
    assert [r["path"] for r in sb.client.list_faults()] == ["/never"]
    assert sb.client.clear_faults() == 1
    assert sb.client.list_faults() == []
    assert sb.request("GET", "compute", "/x").status_code == 200
    with pytest.raises(FaultProxyError, match="no active fault rule with id"):
        sb.client.remove_fault(first["id"])


def test_injected_context_manager(sb: Sandbox) -> None:
    with sb.client.injected(service="identity", status=503) as rule:
        assert sb.request("GET", "identity", "/v3").status_code == 503
        assert [r["id"] for r in sb.client.list_faults()] == [rule["id"]]
    assert sb.client.list_faults() == []
    with sb.client.injected(status=500, count=1):  # expires inside the block: no error on exit
        assert sb.request("GET", "identity", "/v3").status_code == 500
    assert sb.request("GET", "identity", "/v3").status_code == 200


def test_admin_api_refuses_bad_rules_in_one_sentence(sb: Sandbox) -> None:
    with pytest.raises(FaultProxyError, match="service 'baremetal' has no route here"):
        sb.client.add_fault(service="baremetal", status=500)
    with pytest.raises(FaultProxyError, match="between 400 and 599"):
        sb.client.add_fault(status=200)
    with pytest.raises(FaultProxyError, match=r"status code .* or reset=True"):
        sb.client.add_fault()


# --------------------------------------------------------------------------- CLI


def test_cli_against_the_running_proxy(sb: Sandbox) -> None:
    runner = CliRunner()

    def cli(*args: str):
        return runner.invoke(fault, ["--admin-url", sb.admin_url, *args], catch_exceptions=False)

    added = cli("add", "--service", "compute", "--method", "post", "--path", "/v2.1/servers*",
                "--status", "503", "--count", "2", "--message", "no valid host")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added fault" in added.output and "HTTP 503" in added.output and "next 2" in added.output
    rule = json.loads(cli("add", "--reset", "--path", "/v3/never", "--json").output)
    assert rule["action"] == "reset"

    listed = cli("list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ID", "SERVICE", "METHOD", "PATH", "FAULT", "WHEN", "LEFT", "HITS", "MESSAGE"]
    assert "/v2.1/servers*" in lines[1] and "503" in lines[1] and "no valid host" in lines[1]
    assert "reset" in lines[2]
    assert lines[-1] == "latency: none"

    response = sb.request("POST", "compute", "/v2.1/servers", json={})
    assert response.status_code == 503
    assert response.json()["serviceUnavailable"]["message"] == "no valid host"

    as_json = json.loads(cli("list", "--json").output)
    assert [(r["remaining"], r["hits"]) for r in as_json["faults"]] == [(1, 1), (None, 0)]

    assert cli("latency", "150", "--service", "identity").output.strip() == "latency: identity +150 ms"
    assert json.loads(cli("latency", "0", "--json").output) == {"latency": {}}

    counts = cli("counts")
    assert counts.output.splitlines()[0].split() == ["SERVICE", "TOTAL", "FAULTED", "POST"]
    assert counts.output.splitlines()[1].split() == ["compute", "1", "1", "1"]
    assert json.loads(cli("counts", "--reset", "--json").output)["compute"]["total"] == 1
    assert json.loads(cli("counts", "--json").output)["compute"]["total"] == 0

    assert cli("clear", str(rule["id"])).exit_code == 0
    missing = runner.invoke(fault, ["--admin-url", sb.admin_url, "clear", str(rule["id"])])
    assert missing.exit_code == 1 and "no active fault rule" in missing.output
    assert cli("clear").output.strip() == "cleared 1 fault rule(s)"
    assert cli("list").output.splitlines()[0] == "no fault rules"

    neither = runner.invoke(fault, ["--admin-url", sb.admin_url, "add"])
    assert neither.exit_code == 2 and "--status CODE or --reset" in neither.output
    refused = runner.invoke(
        fault, ["--admin-url", sb.admin_url, "add", "--service", "dns", "--status", "500"]
    )
    assert refused.exit_code == 1 and "has no route here" in refused.output


# --------------------------------------------------------------------------- nothing listening, bad config


def test_client_says_clearly_when_the_proxy_is_not_running() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(FaultProxyUnavailable) as caught:
        FaultClient(url).list_faults()
    assert str(caught.value) == (
        f"the sandbox's fault proxy at {url} is not answering; run `container-infra sandbox up`"
    )
    result = CliRunner().invoke(fault, ["--admin-url", url, "counts"])
    assert result.exit_code == 1
    assert "is not answering; run `container-infra sandbox up`" in result.output
    assert "Traceback" not in result.output


def test_proxy_refuses_anything_but_loopback(tmp_path: Path) -> None:
    if not SERVICES_PYTHON.exists():
        pytest.fail(f"the sandbox services' Python {SERVICES_PYTHON} is missing; the fault proxy runs there")
    p, q = free_port(), free_port()
    cases = [  # admin, listen, upstream, the complaint
        (f"127.0.0.1:{p}", f"0.0.0.0:{q}", "http://127.0.0.1:1", "0.0.0.0 is outside 127.0.0.0/8"),
        (f"127.0.0.1:{p}", f"127.0.0.1:{q}", "http://10.1.2.3:80", "10.1.2.3 is outside 127.0.0.0/8"),
        (f"192.168.1.1:{p}", f"127.0.0.1:{q}", "http://127.0.0.1:1", "192.168.1.1 is outside 127.0.0.0/8"),
        (f"127.0.0.1:{p}", f"127.0.0.1:{q}", "http://example.org", "is not an IP address"),
    ]
    procs = []
    for index, (admin, listen, upstream, _) in enumerate(cases):
        config = tmp_path / f"bad{index}.json"
        route = {"service": "identity", "listen": listen, "upstream": upstream}
        config.write_text(json.dumps({"admin": admin, "routes": [route]}))
        procs.append(
            subprocess.Popen(
                [str(SERVICES_PYTHON), "-m", "container_infra_sandbox.faultproxy", "--config", str(config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ, PYTHONPATH=str(REPO / "sandbox")),
            )
        )
    try:
        for proc, (*_, complaint) in zip(procs, cases, strict=True):
            _, stderr = proc.communicate(timeout=10)
            assert proc.returncode == 2, stderr
            assert complaint in stderr
            assert "Traceback" not in stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
