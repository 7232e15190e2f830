"""A client for the sandbox's fault proxy (``container_infra_sandbox.faultproxy``) admin API.

The proxy stands in front of every public endpoint of the sandbox cloud; through it, tests and
operators make the cloud answer 503s, drop connections, slow down, and count the calls the toolkit
makes::

    faults = FaultClient()
    with faults.injected(service="container-infra", method="POST", path="/v1/clusters*",
                         status=503, count=2):
        ...  # the next two cluster creations get a 503 from "Magnum"
    faults.counts()["compute"]["by_method"].get("GET", 0)
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator
from typing import Any

import requests

DEFAULT_ADMIN_URL = "http://127.0.0.1:25999"

__all__ = ["DEFAULT_ADMIN_URL", "FaultClient", "FaultProxyError", "FaultProxyUnavailable"]


class FaultProxyError(RuntimeError):
    """The fault proxy refused a request; the message is one sentence saying why."""


class FaultProxyUnavailable(FaultProxyError):
    """Nothing answers on the fault proxy's admin address."""


class FaultClient:
    """Thin client over the fault proxy's admin JSON API."""

    def __init__(self, admin_url: str = DEFAULT_ADMIN_URL, timeout: float = 5.0) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        # The admin API is on loopback: never route it through an HTTP(S)_PROXY from the environment.
        self._session.trust_env = False

    # ------------------------------------------------------------------ plumbing
    def _call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        url = f"{self.admin_url}{path}"
        try:
            response = self._session.request(method, url, json=body, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout):
            raise FaultProxyUnavailable(
                f"the sandbox's fault proxy at {self.admin_url} is not answering; "
                "run `container-infra sandbox up`"
            ) from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                detail = response.json().get("error")
            except ValueError:
                detail = None
            raise FaultProxyError(
                f"the fault proxy at {self.admin_url} refused {method} {path}: "
                f"{detail or f'HTTP {response.status_code}'}"
            )
        try:
            return response.json()
        except ValueError:
            raise FaultProxyError(
                f"the fault proxy at {self.admin_url} answered {method} {path} with something "
                "that is not JSON; is another program listening on that address?"
            ) from None

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> FaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ API
    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "routes": [{service, listen, upstream}, ...], "pid": n}``."""
        return self._call("GET", "/health")

    def add_fault(
        self,
        service: str = "*",
        method: str = "*",
        path: str = "*",
        status: int | None = None,
        reset: bool = False,
        count: int = 0,
        message: str | None = None,
        when: str = "before",
        retry_after: int | None = None,
        agent: str = "*",
    ) -> dict[str, Any]:
        """Add a rule and return it (with its ``id``).

        ``agent`` is a glob on the request's User-Agent: give each client its own (openstacksdk:
        ``openstack.connect(..., app_name="t-1234")``, then ``agent="*t-1234*"``) so that tests
        running side by side do not take each other's faults.

        Give either ``status`` (an HTTP error code answered with an OpenStack-shaped body) or
        ``reset=True`` (the TCP connection is aborted, no response).  ``count`` N > 0 applies to the
        next N matching requests only; 0 until cleared.  ``when="after"`` lets the service handle
        the request first, then answers the fault instead of the service's response.
        """
        if reset and status is not None:
            raise FaultProxyError("give a fault either a status code or reset=True, not both")
        if not reset and status is None:
            raise FaultProxyError("a fault needs a status code (e.g. status=503) or reset=True")
        rule: dict[str, Any] = {
            "service": service,
            "method": method,
            "path": path,
            "action": "reset" if reset else "status",
            "count": count,
            "when": when,
            "agent": agent,
        }
        if status is not None:
            rule["status"] = status
        if message is not None:
            rule["message"] = message
        if retry_after is not None:
            rule["retry_after"] = retry_after
        return self._call("POST", "/faults", rule)

    def list_faults(self, expired: bool = False) -> list[dict[str, Any]]:
        """The active rules in match order (with ``remaining`` and ``hits``); or the recently
        expired ones with ``expired=True``."""
        return self._call("GET", "/faults")["expired" if expired else "faults"]

    def clear_faults(self) -> int:
        """Remove every rule; returns how many were active."""
        return self._call("DELETE", "/faults")["cleared"]

    def remove_fault(self, rule_id: int, missing_ok: bool = False) -> dict[str, Any] | None:
        """Remove one rule and return it; a rule that is gone (expired) raises unless
        ``missing_ok``."""
        return self._call("DELETE", f"/faults/{int(rule_id)}", missing_ok=missing_ok)

    def set_latency(self, ms: int, service: str = "*") -> dict[str, int]:
        """Add ``ms`` milliseconds to every request of ``service`` (``"*"``: all, replacing
        per-service values); 0 clears.  Returns the latency now in force per service."""
        return self._call("PUT", "/latency", {"ms": int(ms), "service": service})["latency"]

    def latency(self) -> dict[str, int]:
        return self._call("GET", "/latency")["latency"]

    def counts(self, agent: str = "*") -> dict[str, dict[str, Any]]:
        """Per service: ``{"total": n, "by_method": {"GET": n, ...}, "faulted": n}``, for the
        requests whose User-Agent matches the glob ``agent``."""
        return self._call("GET", "/counts?" + urllib.parse.urlencode({"agent": agent}))

    def reset_counts(self, agent: str = "*") -> dict[str, dict[str, Any]]:
        """Reset the counters of the matching User-Agents; returns them as they were just before."""
        return self._call("DELETE", "/counts?" + urllib.parse.urlencode({"agent": agent}))

    def reset(self) -> None:
        """Back to a clean proxy: no rules, no latency, zero counts."""
        self.clear_faults()
        self.set_latency(0)
        self.reset_counts()

    @contextlib.contextmanager
    def injected(self, **rule: Any) -> Iterator[dict[str, Any]]:
        """Add a rule (arguments as :meth:`add_fault`) for the duration of a ``with`` block."""
        added = self.add_fault(**rule)
        try:
            yield added
        except BaseException:
            # Do not let a failing clean-up hide the error of the block.
            with contextlib.suppress(FaultProxyError):
                self.remove_fault(added["id"], missing_ok=True)
            raise
        # The rule may have expired (its count reached); that is fine.
        self.remove_fault(added["id"], missing_ok=True)
