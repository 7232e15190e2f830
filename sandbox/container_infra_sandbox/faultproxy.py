"""The sandbox's fault-injecting reverse proxy.

One process stands in front of every service's public endpoint (see ``sandbox/CONTRACT.md``).
Each route listens on a loopback address and forwards every request verbatim (method, raw path and
query, headers including ``Host``, streamed body) to the service's internal address; it never
follows redirects, so ``Location`` headers and links reach the client exactly as the service wrote
them.  An admin JSON API on its own address injects faults and latency and counts requests:

``POST /faults``
    ``{"service": "*"|<catalog type>, "method": "*"|"GET"|"POST,PUT"..., "path": <glob>,
    "action": "status"|"reset", "status": 503, "message": "...", "count": N,
    "when": "before"|"after", "retry_after": seconds, "agent": <glob>}`` -> the rule, with its ``id``.
    ``agent`` (default ``"*"``) matches the request's User-Agent, so that one client (say, an
    openstacksdk connection made with ``app_name="test-1234"``) meets the fault and the clients
    of tests running beside it do not.
    ``status`` answers with an OpenStack-shaped JSON error body of the service's own shape;
    ``reset`` aborts the TCP connection (RST) without a response.  ``when: "after"`` lets the
    request reach the service first and injects the fault instead of the service's answer (the
    cloud did the work, the client never heard).  ``count`` N > 0: the next N matching requests,
    then the rule expires; 0 or absent: until cleared.  Rules match in creation order; the first
    matching rule wins.
``GET /faults``
    ``{"faults": [active rules with "remaining" and "hits"], "expired": [recently expired rules]}``.
``DELETE /faults``, ``DELETE /faults/{id}``
    clear all rules, or one (404 if there is no such rule).
``PUT /latency`` ``{"ms": N, "service": "*"}``, ``GET /latency``
    add N ms to every request of a service (``"*"``: every service, replacing per-service values);
    0 clears.
``GET /counts[?agent=<glob>]``, ``DELETE /counts[?agent=<glob>]``
    per service ``{"total": n, "by_method": {"GET": n, ...}, "faulted": n}`` for the requests whose
    User-Agent matches (default: all); DELETE returns the counts it reset and resets only those.
    Counts include requests that were faulted.
``GET /health``
    ``{"status": "ok", "routes": [...]}``.

Run as ``python -m container_infra_sandbox.faultproxy --config FILE`` where FILE is JSON:
``{"admin": "127.0.0.1:25999", "routes": [{"service": "identity", "listen": "127.0.0.1:5000",
"upstream": "http://127.0.0.1:25000"}, ...]}``.  Only 127.0.0.0/8 addresses are accepted, for
listening and for upstreams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import http
import ipaddress
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

LOG = logging.getLogger("container_infra_sandbox.faultproxy")

# Headers that belong to one hop and are never forwarded (RFC 9110 7.6.1), plus Expect: this
# proxy's server side already answered "100 Continue".
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
# Generous header limits: Keystone tokens, Nova microversion and Heat parameters live in headers.
MAX_LINE = 65536
MAX_FIELD = 65536
EXPIRED_KEPT = 100


class ConfigError(Exception):
    """The configuration cannot be used; the message says why, in one sentence."""


# --------------------------------------------------------------------------- configuration


def _require_loopback(host: str, what: str) -> str:
    """Return ``host`` as an IPv4 literal in 127.0.0.0/8, or raise ConfigError."""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"{what} {host!r} is not an IP address; the fault proxy only binds and forwards "
            "to 127.0.0.0/8 (write e.g. 127.0.0.1)"
        ) from None
    if address.version != 4 or address not in ipaddress.ip_network("127.0.0.0/8"):
        raise ConfigError(
            f"{what} {host} is outside 127.0.0.0/8; the fault proxy refuses to bind or forward "
            "to anything but the loopback range"
        )
    return str(address)


def parse_hostport(value: Any, what: str) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{what} must be a 'HOST:PORT' string such as '127.0.0.1:5000', not {value!r}")
    host, _, port_text = value.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{what} {value!r} has no numeric port") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{what} {value!r} has a port outside 1-65535")
    return _require_loopback(host, what), port


def parse_upstream(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a URL such as 'http://127.0.0.1:25000', not {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} {value!r} must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ConfigError(f"{what} {value!r} must not have a query or fragment")
    host = _require_loopback(parts.hostname, what)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{what} {value!r} has an invalid port") from None
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class Route:
    service: str
    host: str
    port: int
    upstream: str

    def as_dict(self) -> dict[str, str]:
        return {"service": self.service, "listen": f"{self.host}:{self.port}", "upstream": self.upstream}


@dataclass(frozen=True)
class Config:
    admin_host: str
    admin_port: int
    routes: tuple[Route, ...]


def load_config(data: Any) -> Config:
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a JSON object with 'admin' and 'routes'")
    admin_host, admin_port = parse_hostport(data.get("admin", "127.0.0.1:25999"), "admin address")
    raw_routes = data.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise ConfigError("the configuration's 'routes' must be a non-empty list")
    routes: list[Route] = []
    seen_services: set[str] = set()
    seen_addresses: set[tuple[str, int]] = {(admin_host, admin_port)}
    for index, raw in enumerate(raw_routes):
        if not isinstance(raw, dict):
            raise ConfigError(f"route #{index} must be an object with service, listen and upstream")
        service = raw.get("service")
        if not isinstance(service, str) or not service or service == "*":
            raise ConfigError(f"route #{index} needs a 'service' (a catalog service type such as 'identity')")
        if service in seen_services:
            raise ConfigError(f"service {service!r} has two routes; give each service one")
        host, port = parse_hostport(raw.get("listen"), f"route {service!r} listen address")
        if (host, port) in seen_addresses:
            raise ConfigError(f"route {service!r} listens on {host}:{port}, which is already taken")
        upstream = parse_upstream(raw.get("upstream"), f"route {service!r} upstream")
        seen_services.add(service)
        seen_addresses.add((host, port))
        routes.append(Route(service, host, port, upstream))
    return Config(admin_host, admin_port, tuple(routes))


def read_config(path: str) -> Config:
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"the configuration {path} is not valid JSON: {exc}") from None
    return load_config(data)


# --------------------------------------------------------------------------- state


class RuleError(ValueError):
    """A fault rule or latency request the admin API refuses; the message says why."""


@dataclass
class Rule:
    id: int
    service: str
    methods: tuple[str, ...]  # empty: any method
    path: str
    action: str
    status: int | None
    message: str | None
    count: int
    when: str
    retry_after: int | None
    created: float
    remaining: int | None = None
    hits: int = 0
    agent: str = "*"

    def matches(self, service: str, method: str, path: str, agent: str = "") -> bool:
        return (
            (self.service == "*" or self.service == service)
            and (not self.methods or method in self.methods)
            and fnmatch.fnmatchcase(path, self.path)
            and (self.agent == "*" or fnmatch.fnmatchcase(agent, self.agent))
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "method": ",".join(self.methods) if self.methods else "*",
            "path": self.path,
            "action": self.action,
            "status": self.status,
            "message": self.message,
            "count": self.count,
            "remaining": self.remaining,
            "hits": self.hits,
            "when": self.when,
            "retry_after": self.retry_after,
            "created": self.created,
            "agent": self.agent,
        }


@dataclass
class ServiceCounts:
    total: int = 0
    faulted: int = 0
    by_method: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_method": dict(sorted(self.by_method.items())),
            "faulted": self.faulted,
        }


class FaultState:
    """Rules, latency and counters, shared by every route; every operation holds one lock."""

    def __init__(self, services: list[str]) -> None:
        self.services = list(services)
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._expired: list[Rule] = []
        self._next_id = 1
        self._latency: dict[str, int] = {}
        # (service, User-Agent) -> counts; read back aggregated over the agents a glob matches.
        self._counts: dict[tuple[str, str], ServiceCounts] = {}

    # rules ---------------------------------------------------------------
    def add_rule(self, spec: Any) -> dict[str, Any]:
        rule = self._validate(spec)
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
            return rule.as_dict()

    def _validate(self, spec: Any) -> Rule:
        if not isinstance(spec, dict):
            raise RuleError("a fault rule must be a JSON object")
        known = {"service", "method", "path", "action", "status", "message", "count", "when", "retry_after", "agent"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise RuleError(f"unknown field(s) {', '.join(unknown)}; a rule takes {', '.join(sorted(known))}")
        service = spec.get("service", "*")
        if service != "*" and service not in self.services:
            raise RuleError(
                f"service {service!r} has no route here; use '*' or one of {', '.join(self.services)}"
            )
        method = spec.get("method", "*")
        if not isinstance(method, str) or not method.strip():
            raise RuleError("method must be '*' or an HTTP method such as 'POST' (or a list: 'PUT,PATCH')")
        methods: tuple[str, ...] = ()
        if method.strip() != "*":
            methods = tuple(sorted({m.strip().upper() for m in method.split(",") if m.strip()}))
            if not methods or not all(m.isalpha() for m in methods):
                raise RuleError(f"method {method!r} is not '*' or HTTP method names such as 'POST'")
        path = spec.get("path", "*")
        if not isinstance(path, str) or not path:
            raise RuleError("path must be a glob on the request path such as '/v1/clusters*'")
        action = spec.get("action", "status")
        if action not in ("status", "reset"):
            raise RuleError(f"action {action!r} is not 'status' or 'reset'")
        status = spec.get("status")
        if action == "status":
            if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
                raise RuleError("a 'status' fault needs a status code between 400 and 599, e.g. 503")
        elif status is not None:
            raise RuleError("a 'reset' fault takes no status code; it sends no response at all")
        message = spec.get("message")
        if message is not None and not isinstance(message, str):
            raise RuleError("message must be a string")
        count = spec.get("count") or 0
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise RuleError("count must be a whole number >= 0 (0: until cleared)")
        when = spec.get("when", "before")
        if when not in ("before", "after"):
            raise RuleError(
                "when must be 'before' (the service never sees the request) or 'after' "
                "(the service handles it, the client gets the fault)"
            )
        retry_after = spec.get("retry_after")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise RuleError("retry_after must be a whole number of seconds >= 0")
        if retry_after is not None and action != "status":
            raise RuleError("retry_after only applies to 'status' faults")
        agent = spec.get("agent", "*")
        if not isinstance(agent, str) or not agent:
            raise RuleError("agent must be a glob on the User-Agent header such as '*test-1234*'")
        return Rule(
            id=0,
            service=service,
            methods=methods,
            path=path,
            action=action,
            status=status if action == "status" else None,
            message=message,
            count=count,
            when=when,
            retry_after=retry_after,
            created=time.time(),
            remaining=count or None,
            agent=agent,
        )

    def list_rules(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": [rule.as_dict() for rule in self._rules],
                "expired": [rule.as_dict() for rule in self._expired],
            }

    def clear_rules(self) -> int:
        with self._lock:
            cleared = len(self._rules)
            self._rules.clear()
            self._expired.clear()
            return cleared

    def remove_rule(self, rule_id: int) -> dict[str, Any] | None:
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.id == rule_id:
                    del self._rules[index]
                    return rule.as_dict()
            return None

    def take(self, service: str, method: str, path: str, agent: str = "") -> Rule | None:
        """Count one request and return the rule that fires for it, if any (consuming one use)."""
        with self._lock:
            counts = self._counts.setdefault((service, agent), ServiceCounts())
            counts.total += 1
            counts.by_method[method] = counts.by_method.get(method, 0) + 1
            for index, rule in enumerate(self._rules):
                if rule.matches(service, method, path, agent):
                    rule.hits += 1
                    counts.faulted += 1
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            del self._rules[index]
                            self._expired.append(rule)
                            del self._expired[:-EXPIRED_KEPT]
                    # A snapshot: the caller reads it outside the lock.
                    return Rule(**{**rule.__dict__})
            return None

    # latency -------------------------------------------------------------
    def set_latency(self, spec: Any) -> dict[str, int]:
        if not isinstance(spec, dict):
            raise RuleError('latency must be a JSON object such as {"ms": 200, "service": "*"}')
        ms = spec.get("ms")
        if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= 600_000:
            raise RuleError("ms must be a whole number of milliseconds between 0 and 600000 (0 clears)")
        service = spec.get("service", "*")
        if service != "*" and service not in self.services:
            raise RuleError(
                f"service {service!r} has no route here; use '*' or one of {', '.join(self.services)}"
            )
        with self._lock:
            if service == "*":
                self._latency.clear()
            if ms:
                self._latency[service] = ms
            else:
                self._latency.pop(service, None)
            return dict(self._latency)

    def latency(self) -> dict[str, int]:
        with self._lock:
            return dict(self._latency)

    def latency_for(self, service: str) -> float:
        with self._lock:
            ms = self._latency.get(service, self._latency.get("*", 0))
        return ms / 1000.0

    # counts --------------------------------------------------------------
    def counts(self, reset: bool = False, agent: str = "*") -> dict[str, Any]:
        with self._lock:
            totals = {name: ServiceCounts() for name in self.services}
            for (service, user_agent), counts in list(self._counts.items()):
                if agent != "*" and not fnmatch.fnmatchcase(user_agent, agent):
                    continue
                total = totals.setdefault(service, ServiceCounts())
                total.total += counts.total
                total.faulted += counts.faulted
                for method, n in counts.by_method.items():
                    total.by_method[method] = total.by_method.get(method, 0) + n
                if reset:
                    del self._counts[(service, user_agent)]
            return {name: counts.as_dict() for name, counts in totals.items()}


# --------------------------------------------------------------------------- error bodies

# Nova's (and Manila's) wsgi fault names by status code.
_COMPUTE_FAULTS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Client Error" if status < 500 else "Server Error"


def error_body(service: str, status: int, message: str, request_id: str) -> dict[str, Any]:
    """An error body shaped as ``service`` itself shapes its errors."""
    title = _reason(status)
    if service in ("compute", "sharev2", "share", "volume", "volumev3", "block-storage"):
        name = _COMPUTE_FAULTS.get(status, "computeFault" if status >= 500 else "badRequest")
        return {name: {"code": status, "message": message}}
    if service == "network":
        exc_type = "HTTP" + title.replace(" ", "").replace("-", "")
        return {"NeutronError": {"type": exc_type, "message": message, "detail": ""}}
    if service == "container-infra":
        return {
            "errors": [
                {
                    "request_id": request_id,
                    "code": "server" if status >= 500 else "client",
                    "status": status,
                    "title": title,
                    "detail": message,
                    "links": [],
                }
            ]
        }
    if service == "placement":
        return {
            "errors": [
                {
                    "status": status,
                    "title": title,
                    "detail": message,
                    "code": "placement.undefined_code",
                    "request_id": request_id,
                }
            ]
        }
    if service == "orchestration":
        return {
            "explanation": message,
            "code": status,
            "error": {"message": message, "traceback": None, "type": title.replace(" ", "")},
            "title": title,
        }
    if service == "image":
        return {"code": f"{status} {title}", "title": title, "message": message}
    # Keystone's shape, and the default.
    return {"error": {"code": status, "title": title, "message": message}}


def fault_response(service: str, rule: Rule) -> web.Response:
    assert rule.status is not None
    request_id = f"req-{uuid.uuid4()}"
    message = rule.message or (
        f"{_reason(rule.status)} (injected by the sandbox's fault proxy, rule {rule.id})"
    )
    headers = {
        "X-Openstack-Request-Id": request_id,
        "X-Sandbox-Fault": str(rule.id),
    }
    if rule.retry_after is not None:
        headers["Retry-After"] = str(rule.retry_after)
    return web.json_response(
        error_body(service, rule.status, message, request_id),
        status=rule.status,
        reason=_reason(rule.status),
        headers=headers,
    )


def reset_connection(request: web.BaseRequest) -> None:
    """Abort the client's TCP connection with an RST, sending nothing."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# --------------------------------------------------------------------------- the proxy


def _forward_headers(headers: Any) -> CIMultiDict[str]:
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
        if token.strip()
    }
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in named:
            continue
        out.add(name, value)
    return out


#: Seconds an idle upstream connection stays pooled: less than the services keep it open (gunicorn's
#: --keep-alive 75 in the sandbox's supervisor configuration), so the proxy never sends on a connection
#: the service is closing.
UPSTREAM_KEEPALIVE_S = 30


class ServiceProxy:
    """The handler of one route: count, delay, maybe fault, else forward."""

    def __init__(self, route: Route, state: FaultState) -> None:
        self.route = route
        self.state = state
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False, enable_cleanup_closed=True,
                                           keepalive_timeout=UPSTREAM_KEEPALIVE_S),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            max_line_size=MAX_LINE,
            max_field_size=MAX_FIELD,
            max_headers=512,
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        service = self.route.service
        path = request.raw_path.split("?", 1)[0]
        rule = self.state.take(service, request.method, path, request.headers.get("User-Agent", ""))
        delay = self.state.latency_for(service)
        if delay:
            await asyncio.sleep(delay)
        if rule is not None:
            LOG.info(
                "%s %s %s: fault rule %s (%s%s)",
                service,
                request.method,
                request.raw_path,
                rule.id,
                f"status {rule.status}" if rule.action == "status" else "reset",
                ", after the service answered" if rule.when == "after" else "",
            )
            if rule.when == "before":
                return await self._inject(request, rule)
        return await self._forward(request, rule)

    async def _inject(self, request: web.BaseRequest, rule: Rule) -> web.StreamResponse:
        if rule.action == "reset":
            reset_connection(request)
            # Nothing can be written any more; aiohttp drops this response on the closed transport.
            return web.Response(status=499)
        return fault_response(self.route.service, rule)

    async def _forward(self, request: web.BaseRequest, after: Rule | None) -> web.StreamResponse:
        assert self.session is not None
        url = URL(self.route.upstream + request.raw_path, encoded=True)
        headers = _forward_headers(request.headers)
        has_body = request.body_exists
        attempts = 1 if has_body else 2
        for attempt in range(attempts):
            try:
                upstream = await self.session.request(
                    request.method,
                    url,
                    headers=headers,
                    data=request.content.iter_any() if has_body else None,
                    allow_redirects=False,
                    compress=None,
                    chunked=None,
                )
                break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # A pooled keep-alive connection the service had closed: retry once without a body.
                if attempt + 1 < attempts and not isinstance(exc, aiohttp.ClientConnectorError):
                    continue
                return self._unreachable(request, exc)
            except aiohttp.ClientError as exc:
                return self._unreachable(request, exc)
        try:
            if after is not None:
                await upstream.read()
                return await self._inject(request, after)
            response = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers=_forward_headers(upstream.headers),
            )
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                # Headers are gone already: cut the client off so it sees a truncated response.
                LOG.warning("%s: upstream failed mid-response: %s", self.route.service, exc)
                reset_connection(request)
                return response
            except ConnectionError:
                return response  # the client went away
            await response.write_eof()
            return response
        finally:
            upstream.release()

    def _unreachable(self, request: web.BaseRequest, exc: Exception) -> web.Response:
        LOG.warning(
            "%s %s %s: upstream %s failed: %s",
            self.route.service,
            request.method,
            request.raw_path,
            self.route.upstream,
            exc,
        )
        request_id = f"req-{uuid.uuid4()}"
        message = (
            f"the sandbox's {self.route.service} service at {self.route.upstream} is not answering "
            f"({exc.__class__.__name__}); see its log under the sandbox's log/ directory"
        )
        return web.json_response(
            error_body(self.route.service, 502, message, request_id),
            status=502,
            headers={"X-Openstack-Request-Id": request_id},
        )


# --------------------------------------------------------------------------- admin API


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the request body is not valid JSON"}), content_type="application/json"
        ) from None


def admin_app(state: FaultState, config: Config) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/health")
    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "routes": [route.as_dict() for route in config.routes], "pid": os.getpid()}
        )

    @routes.post("/faults")
    async def add_fault(request: web.Request) -> web.Response:
        try:
            rule = state.add_rule(await _read_json(request))
        except RuleError as exc:
            return _json_error(400, str(exc))
        LOG.info("added fault rule %s", rule)
        return web.json_response(rule, status=201)

    @routes.get("/faults")
    async def list_faults(request: web.Request) -> web.Response:
        return web.json_response(state.list_rules())

    @routes.delete("/faults")
    async def clear_faults(request: web.Request) -> web.Response:
        cleared = state.clear_rules()
        LOG.info("cleared %d fault rule(s)", cleared)
        return web.json_response({"cleared": cleared})

    @routes.delete("/faults/{rule_id}")
    async def remove_fault(request: web.Request) -> web.Response:
        try:
            rule_id = int(request.match_info["rule_id"])
        except ValueError:
            return _json_error(400, f"fault rule id {request.match_info['rule_id']!r} is not a number")
        rule = state.remove_rule(rule_id)
        if rule is None:
            return _json_error(404, f"there is no active fault rule with id {rule_id}")
        LOG.info("removed fault rule %s", rule_id)
        return web.json_response(rule)

    @routes.put("/latency")
    async def put_latency(request: web.Request) -> web.Response:
        try:
            latency = state.set_latency(await _read_json(request))
        except RuleError as exc:
            return _json_error(400, str(exc))
        LOG.info("latency now %s", latency or "none")
        return web.json_response({"latency": latency})

    @routes.get("/latency")
    async def get_latency(request: web.Request) -> web.Response:
        return web.json_response({"latency": state.latency()})

    @routes.get("/counts")
    async def get_counts(request: web.Request) -> web.Response:
        return web.json_response(state.counts(agent=request.query.get("agent", "*")))

    @routes.delete("/counts")
    async def reset_counts(request: web.Request) -> web.Response:
        return web.json_response(state.counts(reset=True, agent=request.query.get("agent", "*")))

    app = web.Application()
    app.add_routes(routes)
    return app


# --------------------------------------------------------------------------- main


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    state = FaultState([route.service for route in config.routes])
    stop = stop or asyncio.Event()
    runners: list[web.BaseRunner] = []
    proxies: list[ServiceProxy] = []
    handler_args = {"max_line_size": MAX_LINE, "max_field_size": MAX_FIELD, "max_headers": 512}
    try:
        for route in config.routes:
            proxy = ServiceProxy(route, state)
            await proxy.start()
            proxies.append(proxy)
            # The access log of the routes is the record of every public API call (aiohttp.access).
            runner = web.ServerRunner(web.Server(proxy.handle, **handler_args))
            await runner.setup()
            runners.append(runner)
            await _bind(runner, route.host, route.port, f"the {route.service} route")
        runner = web.AppRunner(admin_app(state, config), access_log=None)
        await runner.setup()
        runners.append(runner)
        await _bind(runner, config.admin_host, config.admin_port, "the admin API")
        LOG.info(
            "fault proxy ready: admin on %s:%s; %s",
            config.admin_host,
            config.admin_port,
            ", ".join(f"{r.service} {r.host}:{r.port} -> {r.upstream}" for r in config.routes),
        )
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        for proxy in proxies:
            await proxy.close()


async def _bind(runner: web.BaseRunner, host: str, port: int, what: str) -> None:
    site = web.TCPSite(runner, host, port, reuse_address=True, shutdown_timeout=1.0)
    try:
        await site.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} for {what}: {exc.strerror or exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m container_infra_sandbox.faultproxy",
        description="The sandbox's fault-injecting reverse proxy (loopback only).",
    )
    parser.add_argument(
        "--config", required=True, help="JSON file: {admin, routes: [{service, listen, upstream}]}"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s faultproxy: %(message)s")
    try:
        config = read_config(args.config)
    except ConfigError as exc:
        print(f"faultproxy: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop)

    try:
        asyncio.run(run())
    except ConfigError as exc:
        print(f"faultproxy: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
