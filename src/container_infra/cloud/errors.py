"""One place that turns the clients' exceptions into one sentence: what failed, what the cloud said,
what to do.

``explain(exc, "creating", "cluster demo")`` -> ``CloudError("creating cluster demo failed: Flavor
bm.huge could not be found (HTTP 400); check the parameters named in the message")``.
"""

from __future__ import annotations

import json
import re
from typing import Any


class CloudError(Exception):
    """A failure explained in one sentence (``str(error)``), safe to show an operator as is."""

    def __init__(self, message: str, *, status: int | None = None, details: dict[str, Any] | None = None):
        super().__init__(one_sentence(message))
        self.status = status
        self.details = details or {}


_WS = re.compile(r"\s+")
_REQUEST_ID = re.compile(r"\s*\(Request-ID: [^)]*\)")


def one_sentence(text: str) -> str:
    """Collapse whitespace and drop request ids and trailing punctuation duplicates."""
    text = _REQUEST_ID.sub("", str(text))
    return _WS.sub(" ", text).strip()


def _status_of(exc: BaseException) -> int | None:
    for attr in ("http_status", "status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    if isinstance(value, int):
        return value
    return None


def _cloud_message(exc: BaseException) -> str:
    """What the cloud said, without the client's decorations."""
    # magnumclient / manilaclient HttpError: .message (the faultstring), heatclient: .error dict.
    error = getattr(exc, "error", None)
    if isinstance(error, dict):
        inner = error.get("error", error)
        if isinstance(inner, dict) and inner.get("message"):
            return _strip_message(str(inner["message"]))
    for attr in ("message", "details"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value and value not in ("HTTP Error",):
            return _strip_message(value)
    text = str(exc)
    return _strip_message(text)


def _strip_message(text: str) -> str:
    text = text.strip()
    # Some services wrap the message in JSON once more.
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            for value in body.values():
                if isinstance(value, dict) and value.get("message"):
                    return _strip_message(str(value["message"]))
            if body.get("message"):
                return _strip_message(str(body["message"]))
            if body.get("faultstring"):
                return _strip_message(str(body["faultstring"]))
    text = re.sub(r"^(ERROR: |Error: )", "", text)
    text = _REQUEST_ID.sub("", text).strip()
    text = re.sub(r"\s*\(HTTP \d{3}\)$", "", text)
    text = text.rstrip(". ")
    return one_sentence(text) or "no message"


def _is(exc: BaseException, dotted: str) -> bool:
    """isinstance by qualified class name, so that optional clients need not be importable."""
    module, _, name = dotted.rpartition(".")
    return any(klass.__name__ == name and klass.__module__.startswith(module) for klass in type(exc).__mro__)


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def classify(exc: BaseException) -> str:
    """A short kind: auth, forbidden, notfound, conflict, badrequest, server, unreachable, timeout,
    ssl, config, other."""
    for item in _chain(exc):
        name = type(item).__name__
        text = str(item)
        if _is(item, "keystoneauth1.exceptions.SSLError") or name == "SSLError" or "CERTIFICATE_VERIFY" in text:
            return "ssl"
        if name in ("ConnectTimeout", "ReadTimeout", "Timeout", "TimeoutError") or (
                _is(item, "keystoneauth1.exceptions.ConnectTimeout")):
            return "timeout"
        if name in ("ConnectFailure", "ConnectionError", "ConnectionRefused", "ConnectionRefusedError",
                    "ConnectionResetError", "CommunicationError", "UnknownConnectionError",
                    "RemoteDisconnected") and _status_of(item) is None:
            return "unreachable"
        if name in ("ConfigException", "MissingRequiredOptions", "AuthPluginOptionsMissing",
                    "NoMatchingPlugin", "OpenStackConfigException", "MissingAuthPlugin"):
            return "config"
        if name in ("EndpointNotFound", "EmptyCatalog", "DiscoveryFailure"):
            return "endpoint"
        status = _status_of(item)
        if status == 401 or name in ("Unauthorized", "HTTPUnauthorized", "AuthorizationFailure"):
            return "auth"
        # Keystone answers a revoked or expired token with 404 "Failed to validate token".
        if status == 404 and "Failed to validate token" in text:
            return "auth"
        if status == 403:
            return "forbidden"
        if status == 404 or name in ("ResourceNotFound", "NotFoundException", "NotFound"):
            return "notfound"
        if status == 409 or name in ("NoUniqueMatch", "DuplicateResource", "MultipleMatches"):
            return "conflict"
        if status == 413 or status == 429:
            return "overlimit"
        if status in (400, 406, 422):
            return "badrequest"
        if status is not None and status >= 500:
            return "server"
    return "other"


_ADVICE = {
    "auth": "check the credentials (password, application credential or token, which may have expired) "
            "in clouds.yaml or the auth parameter",
    "forbidden": "ask the cloud's operator for the role this needs, or use a project where you have it",
    "notfound": "check the name or id, and that it is in the project and region in use",
    "conflict": "wait for the resource to leave its transitional state or name it by its UUID, then run again",
    "overlimit": "raise the project's quota or free resources, then run again",
    "badrequest": "correct the parameter the cloud names and run again",
    "server": "the cloud failed on its side; run again later or ask its operator",
    "unreachable": "check the auth_url and endpoints are reachable from this host (network, proxy, firewall)",
    "timeout": "the cloud did not answer in time; raise api_timeout or run again when it is less busy",
    "ssl": "set ca_cert to the cloud's CA bundle (or validate_certs: false for a test cloud)",
    "config": "name a cloud that exists in clouds.yaml, or give auth parameters or OS_* variables",
    "endpoint": "check region_name and interface, and that the cloud offers this service",
    "other": "see the message and run again once it is fixed",
}


def _what_it_said(kind: str, exc: BaseException) -> str:
    if kind == "unreachable":
        for item in _chain(exc):
            url = getattr(item, "url", None) or getattr(getattr(item, "request", None), "url", None)
            if url:
                return f"cannot connect to {url}"
        return "cannot connect to the cloud"
    if kind == "timeout":
        for item in _chain(exc):
            url = getattr(item, "url", None) or getattr(getattr(item, "request", None), "url", None)
            if url:
                return f"no answer from {url} in time"
        return "the cloud did not answer in time"
    if kind == "ssl":
        return "the TLS certificate of the cloud could not be verified"
    if kind == "auth":
        message = _cloud_message(exc)
        if not message or message == "no message" or ("HTTP 401" in str(exc) and len(message) < 8):
            return "the cloud rejected the credentials (HTTP 401)"
        return f"the cloud rejected the credentials ({message})"
    message = _cloud_message(exc)
    status = _status_of(exc)
    if status and f"HTTP {status}" not in message:
        message = f"{message} (HTTP {status})"
    return message


def explain(exc: BaseException, operation: str, resource: str) -> CloudError:
    """``<operation> <resource> failed: <what the cloud said>; <what to do>`` as a CloudError."""
    if isinstance(exc, CloudError):
        return exc
    kind = classify(exc)
    said = _what_it_said(kind, exc)
    if kind == "conflict" and re.search(r"multiple|more than one|several", said, re.I):
        advice = "rename or delete the duplicates (or name the resource by its UUID), then run again"
    else:
        advice = _ADVICE[kind]
    return CloudError(f"{operation} {resource} failed: {said}; {advice}", status=_status_of(exc),
                      details={"kind": kind, "exception": type(exc).__name__})


def is_transient(exc: BaseException) -> bool:
    """Errors a waiter rides over: 5xx, resets, timeouts, and Magnum's early 400 about master_count 0."""
    kind = classify(exc)
    if kind in ("server", "unreachable", "timeout"):
        return True
    return kind == "badrequest" and "master_count" in str(_cloud_message(exc)) + str(exc)
