"""Bulk REST calls to Nova and Neutron on the shared keystoneauth session.

openstacksdk's proxies make one call per resource where the APIs take many ids at once
(``GET /v2.0/ports?device_id=A&device_id=B``), and its resource layer drops query parameters it does
not know. The toolkit's node-level logic (provider ports, :mod:`container_infra.discovery`) therefore
talks to the two APIs through this small client: each method is one HTTP request (a listing follows
its ``next`` links), and every request is counted by :attr:`container_infra.cloud.Cloud.api_calls`
because it rides on the same session.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from keystoneauth1 import exceptions as ks_exceptions

#: The compute microversion the listings ask for: 2.47 embeds the flavor in a server.
SERVER_LIST_MICROVERSION = "2.47"
#: Flavor listings include extra_specs from 2.61.
FLAVOR_MICROVERSION = "2.61"
#: os-interface with a device tag needs 2.49.
TAGGED_ATTACH_MICROVERSION = "2.49"
#: Servers per page of a detailed listing: Nova's default ``[api] max_limit`` (a cloud with a lower
#: one answers its own page size and a ``next`` link, which the listing follows). Nova asks Neutron
#: about a page's servers in chunks of 150 ids (about 7 KB request lines), which Apache, nginx and
#: eventlet take (8 KB); the sandbox's gunicorn-served Neutron takes any length.
DETAIL_PAGE = 1000
#: The longest query string one listing of ours sends: under the 4 KB request line some front ends
#: take (gunicorn's default is 4094 bytes; Apache, nginx and eventlet take 8 KB).
QUERY_BUDGET = 3000
#: Answers a gateway or an API worker gives while it is briefly unavailable (a restart, a full pool):
#: an idempotent read is tried again, a mutating call never (it may have taken effect).
RETRY_STATUSES = frozenset({502, 503, 504})
#: Tries of one read in all, the first wait between them (doubled each time) and the most seconds
#: spent waiting, so that a cloud that stays down fails the run in bounded time.
READ_TRIES = 4
RETRY_BACKOFF = 1.0
RETRY_BUDGET = 20.0
#: The methods that change nothing, so that repeating them is safe.
SAFE_METHODS = frozenset({"GET", "HEAD"})


def chunks(items: list[str], field: str = "id", budget: int = QUERY_BUDGET) -> Iterable[list[str]]:
    """Split ids so that ``field=id&field=id...`` stays within ``budget`` bytes."""
    group: list[str] = []
    used = 0
    for item in items:
        cost = len(field) + len(item) + 2
        if group and used + cost > budget:
            yield group
            group, used = [], 0
        group.append(item)
        used += cost
    if group:
        yield group


def _service_message(response) -> str | None:
    """The message in Neutron's ``{"NeutronError": {"message"}}`` or Nova's ``{"badRequest": {"message"}}``."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])
        if isinstance(body.get("message"), str):
            return body["message"]
    return None


class Rest:
    """Nova and Neutron through one keystoneauth session, endpoints taken from the catalog."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.session = cloud.session
        self._endpoints: dict[str, str] = {}
        self.read_tries = READ_TRIES
        self.retry_backoff = RETRY_BACKOFF
        self.retry_budget = RETRY_BUDGET

    # ------------------------------------------------------------------ plumbing
    def _filter(self, service_type: str) -> dict[str, Any]:
        if hasattr(self.cloud, "endpoint_filter"):
            return self.cloud.endpoint_filter(service_type)
        return {"service_type": service_type, "interface": getattr(self.cloud, "interface", "public")}

    def endpoint(self, service_type: str) -> str:
        """The catalog URL (no version discovery: the catalog says where the API is)."""
        if service_type not in self._endpoints:
            url = self.session.get_endpoint(**self._filter(service_type)).rstrip("/")
            if service_type == "network" and not url.endswith("/v2.0"):
                url += "/v2.0"
            self._endpoints[service_type] = url
        return self._endpoints[service_type]

    def request(self, service_type: str, method: str, path: str, *, params=None, json=None,
                microversion: str | None = None, ok_404: bool = False) -> Any:
        url = self.endpoint(service_type) + path
        kwargs: dict[str, Any] = {"raise_exc": False}
        if params is not None:
            kwargs["params"] = params
        if json is not None:
            kwargs["json"] = json
        if microversion:
            kwargs["microversion"] = microversion
            kwargs["microversion_service_type"] = service_type
        if getattr(self.cloud, "api_timeout", None):
            kwargs["timeout"] = self.cloud.api_timeout
        response = self._send(url, method, kwargs)
        if response.status_code == 404 and ok_404:
            return None
        if response.status_code >= 400:
            error = ks_exceptions.from_response(response, method, url)
            said = _service_message(response) or getattr(error, "message", None) or "the API refused the request"
            message = f"{said} (HTTP {response.status_code})"
            if response.status_code in RETRY_STATUSES:
                if method.upper() in SAFE_METHODS:
                    message += f" on {method.upper()} {path} after {getattr(response, 'tries', 1)} tries"
                else:
                    message += (f" on {method.upper()} {path}, not repeated since it may have taken effect; run "
                                "again once the cloud answers, the run finds what the call did")
            error.message = message
            error.args = (error.message,)
            raise error
        if not response.content:
            return None
        return response.json()

    def _send(self, url: str, method: str, kwargs: dict[str, Any]):
        """One request; a read (GET) that meets a connection failure or a 502/503/504 is tried again
        after a growing wait, within READ_TRIES and RETRY_BUDGET; a mutating call is sent once."""
        tries = self.read_tries if method.upper() in SAFE_METHODS else 1
        delay = self.retry_backoff
        deadline = time.monotonic() + self.retry_budget
        for attempt in range(1, tries + 1):
            last = attempt == tries or time.monotonic() + delay > deadline
            try:
                response = self.session.request(url, method, **kwargs)
            except (ks_exceptions.ConnectFailure, ks_exceptions.ConnectTimeout,
                    ks_exceptions.UnknownConnectionError) as exc:
                if last:
                    if attempt > 1:
                        exc.message = f"{getattr(exc, 'message', exc)} (after {attempt} tries)"
                        exc.args = (exc.message,)
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    response.tries = attempt
                    return response
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable: the last try returns or raises")

    def _list(self, service_type: str, path: str, key: str, params, microversion: str | None = None) -> list[dict]:
        items: list[dict] = []
        query = list(params)
        while True:
            body = self.request(service_type, "GET", path, params=query, microversion=microversion) or {}
            items.extend(body.get(key, []))
            nxt = next((link["href"] for link in body.get(f"{key}_links", []) if link.get("rel") == "next"), None)
            if not nxt:
                return items
            query = parse_qsl(urlsplit(nxt).query)

    def _project_id(self) -> str | None:
        try:
            return self.session.get_project_id()
        except Exception:  # an unscoped or odd auth plugin: the listing goes unfiltered by project
            return None

    # ------------------------------------------------------------------ Nova
    def list_servers(self, name_regex: str | None = None, detail: bool = True) -> list[dict]:
        """``GET /servers/detail`` (all pages); Nova's ``name`` filter is a regular expression.

        ``detail=False`` lists ids and names only (``GET /servers``), which Nova answers without
        asking Neutron about each server: the cheap listing when names are all that is needed."""
        params = [("name", name_regex)] if name_regex else []
        if detail:
            params.append(("limit", str(DETAIL_PAGE)))
        path = "/servers/detail" if detail else "/servers"
        return self._list("compute", path, "servers", params, SERVER_LIST_MICROVERSION)

    def attach(self, server_id: str, port_id: str, tag: str | None = None) -> dict:
        body: dict[str, Any] = {"port_id": port_id}
        if tag:
            body["tag"] = tag
        answer = self.request("compute", "POST", f"/servers/{server_id}/os-interface",
                              json={"interfaceAttachment": body},
                              microversion=TAGGED_ATTACH_MICROVERSION if tag else None)
        return (answer or {}).get("interfaceAttachment", {})

    def detach(self, server_id: str, port_id: str) -> None:
        self.request("compute", "DELETE", f"/servers/{server_id}/os-interface/{port_id}", ok_404=True)

    # ------------------------------------------------------------------ Neutron
    def list_networks(self, names: list[str] | None = None, ids: list[str] | None = None) -> list[dict]:
        params = [("name", n) for n in names or []] + [("id", i) for i in ids or []]
        return self._list("network", "/networks", "networks", params)

    def list_subnets(self, network_ids: list[str]) -> list[dict]:
        found: list[dict] = []
        for group in chunks(sorted(set(network_ids)), "network_id"):
            found += self._list("network", "/subnets", "subnets", [("network_id", i) for i in group])
        return found

    def list_security_groups(self, refs: list[str]) -> list[dict]:
        return self._list("network", "/security-groups", "security_groups",
                          [("fields", f) for f in ("id", "name")]) if refs else []

    def list_ports(self, device_ids: list[str] | None = None, ids: list[str] | None = None,
                   tags: list[str] | None = None, network_ids: list[str] | None = None,
                   description: str | None = None) -> list[dict]:
        """The ports of many servers (or many ports by id) in one request per ~60 ids (see QUERY_BUDGET);
        with ``tags`` (all of them) or ``description``, the ports of this project that match (on
        ``network_ids`` when given) in one request."""
        if tags is not None or description is not None:
            params = [("tags", ",".join(tags))] if tags is not None else []
            params += [("description", description)] if description is not None else []
            params += [("network_id", n) for n in sorted(set(network_ids or []))]
            # An admin sees every project's ports: a tag names a cluster of this project only.
            project_id = self._project_id()
            if project_id:
                params.append(("project_id", project_id))
            return self._list("network", "/ports", "ports", params)
        field, values = ("device_id", device_ids) if device_ids is not None else ("id", ids or [])
        found: list[dict] = []
        for group in chunks(sorted(set(values)), field):
            found += self._list("network", "/ports", "ports", [(field, v) for v in group])
        return found

    def list_floating_ips(self, port_ids: list[str]) -> list[dict]:
        found: list[dict] = []
        for group in chunks(sorted(set(port_ids)), "port_id"):
            found += self._list("network", "/floatingips", "floatingips", [("port_id", v) for v in group])
        return found

    def create_port(self, body: dict) -> dict:
        return self.request("network", "POST", "/ports", json={"port": body})["port"]

    def set_tags(self, port_id: str, tags: list[str]) -> None:
        """Replace the port's tags (Neutron's tags API; a port update does not take them)."""
        self.request("network", "PUT", f"/ports/{port_id}/tags", json={"tags": tags})

    def update_port(self, port_id: str, body: dict) -> dict:
        return self.request("network", "PUT", f"/ports/{port_id}", json={"port": body})["port"]

    def delete_port(self, port_id: str) -> None:
        self.request("network", "DELETE", f"/ports/{port_id}", ok_404=True)

    # ------------------------------------------------------------------ read-only bulk listings (inventory)
    def list_ports_where(self, device_ids: list[str], fields: list[str] | None = None) -> list[dict]:
        """Ports of ``device_ids`` in ONE request: filtered by device when the ids fit in one query,
        else every port the project sees (then filtered here), never one request per chunk."""
        wanted = sorted(set(device_ids))
        if not wanted:
            return []
        params = [("fields", f) for f in fields or []]
        groups = list(chunks(wanted, "device_id", QUERY_BUDGET - sum(len(f) + 8 for f in fields or [])))
        if len(groups) == 1:
            params += [("device_id", v) for v in groups[0]]
        found = self._list("network", "/ports", "ports", params)
        keep = set(wanted)
        return [p for p in found if p.get("device_id") in keep]

    def list_flavors(self) -> list[dict]:
        """Every flavor the project may use, with ``extra_specs`` (compute microversion 2.61)."""
        return self._list("compute", "/flavors/detail", "flavors", [("is_public", "None")], FLAVOR_MICROVERSION)

    def list_images(self, ids: list[str] | None = None, names: list[str] | None = None) -> list[dict]:
        """Glance v2 images by id and/or name (``in:`` filters): one request each (per page of 1000)."""
        found: list[dict] = []
        for field_name, values in (("id", ids), ("name", names)):
            values = sorted({v for v in values or [] if v and "," not in v})
            if not values:
                continue
            # Catalogs list Glance with or without its /v2; its next links are "/v2/images?marker=...".
            prefix = "" if self.endpoint("image").endswith("/v2") else "/v2"
            path: str | None = f"{prefix}/images"
            params: Any = [(field_name, "in:" + ",".join(values)), ("limit", "1000")]
            while path:
                body = self.request("image", "GET", path, params=params) or {}
                found += body.get("images", [])
                nxt = urlsplit(body["next"]) if body.get("next") else None
                path = prefix + nxt.path.removeprefix("/v2") if nxt else None
                params = parse_qsl(nxt.query) if nxt else None
        return found
