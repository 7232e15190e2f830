"""Issue 15, finding 11: the Nova/Neutron REST client rides over a brief 502/503/504 or a reset connection on
a read (GET), and never repeats a mutating call. A real keystoneauth session talks to a scripted HTTP server
on 127.0.0.1, so the retries meet real responses and real connection failures."""

from __future__ import annotations

import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session

from container_infra.cloud.errors import explain
from container_infra.cloud.rest import Rest


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next scripted status (200 with an empty port list once the script is
    spent); "reset" closes the connection without an answer."""

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append(self.command)
        what = self.server.script.pop(0) if self.server.script else 200
        if what == "reset":
            # SO_LINGER 0: the peer sees a connection reset, not an orderly close.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        body = json.dumps({"ports": [], "port": {"id": "p1"}} if what == 200 else
                          {"message": "The server is currently unavailable."}).encode()
        self.send_response(what)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    httpd.script, httpd.seen = [], []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def rest_for(server, tries=4, budget=20.0) -> Rest:
    cloud = SimpleNamespace(session=ks_session.Session(), api_timeout=5)
    rest = Rest(cloud)
    rest._endpoints["network"] = f"http://127.0.0.1:{server.server_address[1]}/v2.0"
    rest.read_tries, rest.retry_backoff, rest.retry_budget = tries, 0.01, budget
    return rest


@pytest.mark.parametrize("fault", [503, 502, 504, "reset"])
def test_one_failed_read_then_an_answer_is_ridden_over(server, fault):
    server.script = [fault]
    assert rest_for(server).list_ports(device_ids=["d1"]) == []
    assert server.seen == ["GET", "GET"]


def test_a_mutating_call_is_never_repeated_and_fails_in_one_sentence(server):
    server.script = [503]
    with pytest.raises(ks_exceptions.HttpError) as caught:
        rest_for(server).create_port({"network_id": "n1"})
    assert server.seen == ["POST"]
    message = str(explain(caught.value, "attaching", "port of server n1"))
    assert "\n" not in message
    assert "HTTP 503" in message and "not repeated since it may have taken effect" in message, message


@pytest.mark.parametrize("call", [lambda rest: rest.update_port("p1", {"name": "x"}),
                                  lambda rest: rest.delete_port("p1")])
def test_put_and_delete_are_sent_once(server, call):
    server.script = [503]
    with pytest.raises(ks_exceptions.HttpError):
        call(rest_for(server))
    assert len(server.seen) == 1


def test_a_reset_post_is_not_repeated(server):
    server.script = ["reset"]
    with pytest.raises(ks_exceptions.ConnectFailure):
        rest_for(server).create_port({"network_id": "n1"})
    assert server.seen == ["POST"]


def test_reads_stop_after_the_bound_of_tries(server):
    server.script = [503] * 10
    with pytest.raises(ks_exceptions.HttpError) as caught:
        rest_for(server, tries=3).list_ports(device_ids=["d1"])
    assert server.seen == ["GET"] * 3
    assert "HTTP 503" in str(caught.value) and "after 3 tries" in str(caught.value)


def test_reads_stop_when_the_time_bound_is_spent(server):
    server.script = [503] * 10
    rest = rest_for(server, tries=10, budget=0.05)
    rest.retry_backoff = 0.04
    with pytest.raises(ks_exceptions.HttpError):
        rest.list_ports(device_ids=["d1"])
    # Waits of 0.04 then 0.08 s: the second would pass the 0.05 s budget, so two tries in all.
    assert server.seen == ["GET", "GET"]


def test_a_client_error_on_a_read_is_not_retried(server):
    server.script = [400]
    with pytest.raises(ks_exceptions.HttpError):
        rest_for(server).list_ports(device_ids=["d1"])
    assert server.seen == ["GET"]
