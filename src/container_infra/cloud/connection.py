"""Authentication and the one keystoneauth session shared by openstacksdk and the service clients.

``Cloud.from_params(params)`` reads the module parameters of :data:`AUTH_ARGUMENT_SPEC` the way
openstacksdk's config loader does (a clouds.yaml entry named by ``cloud``, an ``auth`` dict, the
``OS_*`` environment, application credentials through ``auth_type: v3applicationcredential``) and
builds one :class:`openstack.connection.Connection`; python-magnumclient, python-heatclient and
python-manilaclient ride on its keystoneauth session, so a token is fetched once and every request
is counted in :attr:`Cloud.api_calls`.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from typing import Any

from container_infra.cloud.errors import CloudError, classify, explain

AUTH_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "cloud": {"type": "raw"},
    "auth": {"type": "dict", "no_log": True},
    "auth_type": {"type": "str"},
    "region_name": {"type": "str"},
    "interface": {"type": "str", "default": "public", "choices": ["public", "internal", "admin"],
                  "aliases": ["endpoint_type"]},
    "validate_certs": {"type": "bool", "aliases": ["verify"]},
    "ca_cert": {"type": "str", "aliases": ["cacert"]},
    "client_cert": {"type": "str", "aliases": ["cert"]},
    "client_key": {"type": "str", "no_log": True, "aliases": ["key"]},
    "api_timeout": {"type": "int"},
    "wait": {"type": "bool", "default": True},
    "timeout": {"type": "int", "default": 1800},
    "poll_interval": {"type": "float", "default": 5.0},
}

#: Keys of a cloud definition whose values are secrets (matched as parts of the key's name, any case).
SECRET_KEY_PARTS = ("password", "secret", "token", "passcode", "totp", "key")


def cloud_secrets(cloud: Any) -> set[str]:
    """Every secret value in an inline ``cloud`` dict (passwords, application credential secrets, tokens,
    keys), so that a module can hide them like a no_log option's; nothing for a cloud name."""
    found: set[str] = set()

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, secret or any(part in str(key).lower() for part in SECRET_KEY_PARTS))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, secret)
        elif secret and value not in (None, "") and not isinstance(value, bool):
            found.add(str(value))

    if isinstance(cloud, dict):
        walk(cloud, False)
    return found


def cloud_label(params: dict[str, Any]) -> str:
    """The cloud as a failure sentence names it: never an inline definition's values, only where it points."""
    cloud = params.get("cloud")
    if isinstance(cloud, dict):
        auth = cloud.get("auth") if isinstance(cloud.get("auth"), dict) else {}
        where = auth.get("auth_url")
        return f"the inline cloud definition (auth_url {where})" if where else "the inline cloud definition"
    if cloud:
        return f"cloud {cloud}"
    return "the cloud of the auth parameters or OS_* environment"


#: Seconds one API request may take when neither the task nor the cloud's clouds.yaml entry says: a
#: stalled endpoint fails the run with a sentence instead of hanging it for ever.
DEFAULT_API_TIMEOUT = 120

#: The highest Magnum microversion this toolkit knows (1.13 renames stack_id, 1.14 node labels/taints).
MAGNUM_MAX_MICROVERSION = (1, 14)
MAGNUM_SERVICE_TYPE = "container-infra"


class ApiCallCounter:
    """Counts the HTTP requests made through the shared session (thread safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.by_method: Counter[str] = Counter()
        self.by_host: Counter[str] = Counter()

    def __call__(self, response, *args, **kwargs):  # a requests response hook
        request = response.request
        with self._lock:
            self.total += 1
            self.by_method[request.method] += 1
            self.by_host[(request.url or "").split("/")[2] if "://" in (request.url or "") else ""] += 1
        return response

    def reset(self) -> int:
        with self._lock:
            total, self.total = self.total, 0
            self.by_method.clear()
            self.by_host.clear()
        return total

    def __int__(self) -> int:
        return self.total

    def __repr__(self) -> str:
        return f"ApiCallCounter(total={self.total}, by_method={dict(self.by_method)})"


def _parse_version(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        major, minor = str(text).split(".", 1)
        return int(major), int(minor)
    except ValueError:
        return None


def _header_version(value: str | None) -> str | None:
    """'container-infrastructure-management 1.14' -> '1.14'."""
    if not value:
        return None
    return value.split()[-1]


def negotiate(client_max: tuple[int, int], server_min: tuple[int, int] | None,
              server_max: tuple[int, int] | None) -> tuple[int, int] | None:
    """The highest microversion both sides support, or None when the ranges do not meet.

    A server that advertises no range speaks its base version only (Magnum: 1.1)."""
    if server_max is None:
        return (1, 1) if client_max >= (1, 1) else None
    chosen = min(client_max, server_max)
    if server_min is not None and chosen < server_min:
        return None
    return chosen


def _sdk_config_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """Module parameters -> keyword arguments of openstack.connect / get_cloud_region."""
    kwargs: dict[str, Any] = {}
    cloud = params.get("cloud")
    if isinstance(cloud, dict):
        # A whole cloud definition inline, as the openstack.cloud collection allows.
        kwargs.update(cloud)
    elif cloud:
        kwargs["cloud"] = cloud
    if params.get("auth"):
        kwargs["auth"] = dict(params["auth"])
    for ours, theirs in (("auth_type", "auth_type"), ("region_name", "region_name"),
                         ("interface", "interface"), ("ca_cert", "cacert"),
                         ("client_cert", "cert"), ("client_key", "key"),
                         ("api_timeout", "api_timeout")):
        if params.get(ours) is not None:
            kwargs[theirs] = params[ours]
    if params.get("validate_certs") is not None:
        kwargs["verify"] = params["validate_certs"]
    return kwargs


_BAD_REGION = re.compile(r"Region (?P<region>.+?) is not a valid region name for cloud (?P<cloud>.+?)\. "
                         r"Valid choices are (?P<choices>.+?)\.")


def region_problem(exc: BaseException, params: dict[str, Any]) -> str | None:
    """openstacksdk's refusal of a region the cloud's entry does not list, as one sentence that says where the
    region came from (its own says to name another cloud)."""
    found = _BAD_REGION.search(str(exc))
    if not found:
        return None
    source = "region_name" if params.get("region_name") else "the region (from clouds.yaml or OS_REGION_NAME)"
    choices = ", ".join(c.strip() for c in found["choices"].split(","))
    return (f"{source} {found['region']} is not a region of cloud {found['cloud']} (it has {choices}; "
            "names are case-sensitive); set region_name to one of those")


def _a(value: Any) -> str:
    kind = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "a list"}
    return kind.get(type(value), "empty" if value is None else f"a {type(value).__name__}")


def clouds_yaml_problem() -> str | None:
    """One sentence on what is wrong with the clouds.yaml openstacksdk reads (the first that exists of
    OS_CLIENT_CONFIG_FILE and its usual places), or None when its shape is sound."""
    import os

    import yaml
    from openstack.config import loader

    candidates = [os.environ.get("OS_CLIENT_CONFIG_FILE"), *loader.CONFIG_FILES]
    path = next((p for p in candidates if p and os.path.isfile(p) and os.access(p, os.R_OK)), None)
    if path is None or path.endswith(".json"):
        return None
    fix = "fix the file (clouds: a mapping of cloud names, each with an auth: mapping) and run again"
    try:
        with open(path) as stream:
            data = yaml.safe_load(stream)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        said = getattr(exc, "problem", None) or "it does not parse"
        return f"{path} is not valid YAML{where} ({said}); {fix}"
    if not isinstance(data, dict):
        return f"{path} holds {_a(data)}, not a mapping with a clouds: key; {fix}"
    clouds = data.get("clouds", {})
    if not isinstance(clouds, dict):
        return f"{path}: clouds is {_a(clouds)}, not a mapping of cloud names; {fix}"
    for name, entry in clouds.items():
        if not isinstance(entry, dict):
            return f"{path}: clouds.{name} is {_a(entry)}, not a mapping of its settings; {fix}"
        auth = entry.get("auth")
        if auth is not None and not isinstance(auth, dict):
            return f"{path}: clouds.{name}.auth is {_a(auth)}, not a mapping (auth_url, ...); {fix}"
    return None


class Cloud:
    """One authenticated connection: ``.sdk``, ``.session`` and the service clients on that session."""

    def __init__(self, sdk_connection, *, interface: str = "public", region_name: str | None = None,
                 api_timeout: int | None = None) -> None:
        self.sdk = sdk_connection
        self.session = sdk_connection.session
        self.interface = interface
        self.region_name = region_name or sdk_connection.config.get_region_name()
        self.api_timeout = api_timeout
        self.api_calls = ApiCallCounter()
        self.session.session.hooks.setdefault("response", []).append(self.api_calls)
        self.magnum_version: str | None = None
        self.manila_version: str | None = None
        self._magnum = self._heat = self._manila = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Cloud:
        """Build from module parameters (see AUTH_ARGUMENT_SPEC) and authenticate; raises CloudError on
        bad config."""
        cloud = cls.connect(params)
        cloud.authenticate(cloud_label(params))
        return cloud

    @classmethod
    def connect(cls, params: dict[str, Any]) -> Cloud:
        """The connection, not yet authenticated; every request on it is bounded by the api_timeout of
        the task, else of the clouds.yaml entry, else :data:`DEFAULT_API_TIMEOUT`."""
        import openstack

        kwargs = _sdk_config_kwargs(params)
        try:
            # The User-Agent names the toolkit, so that a cloud's logs (and the sandbox's fault
            # proxy) tell its requests from other clients'.
            conn = openstack.connect(load_yaml_config=True, load_envvars=True, app_name="container-infra",
                                     app_version=_version(), **kwargs)
        except Exception as exc:
            # openstacksdk reads a malformed clouds.yaml with errors such as "'str' object has no attribute
            # 'keys'": name the file and what in it is wrong instead.
            problem = clouds_yaml_problem() or region_problem(exc, params)
            if problem:
                raise CloudError(problem) from exc
            raise explain(exc, "connecting to", cloud_label(params)) from exc
        api_timeout = params.get("api_timeout")
        if api_timeout is None:
            api_timeout = (getattr(conn.config, "config", None) or {}).get("api_timeout")
        api_timeout = float(api_timeout) if api_timeout else float(DEFAULT_API_TIMEOUT)
        cloud = cls(conn, interface=params.get("interface") or "public",
                    region_name=params.get("region_name"), api_timeout=api_timeout)
        # keystoneauth applies the session's timeout to every request made through it: openstacksdk's
        # proxies, heatclient and manilaclient (magnumclient's own adapter is set in magnum()).
        cloud.session.timeout = api_timeout
        return cloud

    def authenticate(self, name: str, attempts: int = 3, delay: float = 1.0) -> None:
        """Fetch the token now, so that bad or expired credentials fail first and in one place; a
        connection that fails (a cloud restarting its proxy) is tried ``attempts`` times."""
        for attempt in range(attempts):
            try:
                self.session.get_token()
                return
            except Exception as exc:
                if classify(exc) not in ("unreachable", "timeout", "server") or attempt == attempts - 1:
                    raise explain(exc, "authenticating to", name) from exc
                time.sleep(delay * (attempt + 1))

    # ------------------------------------------------------------------ helpers
    def endpoint_filter(self, service_type: str) -> dict[str, Any]:
        return {"service_type": service_type, "interface": self.interface, "region_name": self.region_name}

    def _version_range(self, service_type: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """The (min, max) microversions a service advertises.

        One GET on the versioned endpoint: services answer with ``OpenStack-API-Minimum-Version`` and
        ``-Maximum-Version`` headers (Magnum), or a version document whose ``min_version`` and
        ``max_version``/``version`` give the range (Manila, Nova)."""
        response = self.session.get("/", endpoint_filter=self.endpoint_filter(service_type), raise_exc=True)
        low = _parse_version(_header_version(response.headers.get("OpenStack-API-Minimum-Version")))
        high = _parse_version(_header_version(response.headers.get("OpenStack-API-Maximum-Version")))
        if high is None:
            try:
                body = response.json()
            except ValueError:
                body = {}
            docs = body.get("versions") or [body.get("version") or body]
            if isinstance(docs, dict):
                docs = docs.get("values", [])
            current = [d for d in docs if isinstance(d, dict) and (d.get("max_version") or d.get("version"))]
            if current:
                doc = max(current, key=lambda d: _parse_version(d.get("max_version") or d.get("version")) or (0, 0))
                high = _parse_version(doc.get("max_version") or doc.get("version"))
                low = _parse_version(doc.get("min_version"))
        return low, high

    # ------------------------------------------------------------------ service clients
    def magnum(self):
        """python-magnumclient on the shared session, at the highest microversion both sides support."""
        if self._magnum is None:
            from magnumclient.v1 import client as magnum_client

            try:
                low, high = self._version_range(MAGNUM_SERVICE_TYPE)
            except Exception as exc:
                raise explain(exc, "discovering", "the container-infra (Magnum) API") from exc
            chosen = negotiate(MAGNUM_MAX_MICROVERSION, low, high)
            if chosen is None:
                raise CloudError(
                    f"discovering the container-infra (Magnum) API failed: the cloud offers microversions "
                    f"{low} to {high}, none of which this toolkit speaks (1.1 to 1.14); use a supported Magnum")
            self.magnum_version = f"{chosen[0]}.{chosen[1]}"
            self._magnum = magnum_client.Client(
                session=self.session, interface=self.interface, region_name=self.region_name,
                service_type=MAGNUM_SERVICE_TYPE, api_version=self.magnum_version)
            if self.api_timeout:
                self._magnum.http_client.timeout = self.api_timeout
        return self._magnum

    def magnum_at_least(self, version: str) -> bool:
        if self.magnum_version is None:
            self.magnum()
        return _parse_version(self.magnum_version) >= _parse_version(version)

    def heat(self):
        """python-heatclient on the shared session."""
        if self._heat is None:
            from heatclient import client as heat_client

            self._heat = heat_client.Client(
                "1", session=self.session, interface=self.interface, region_name=self.region_name,
                service_type="orchestration")
        return self._heat

    def manila(self):
        """python-manilaclient on the shared session, microversion negotiated."""
        if self._manila is None:
            import manilaclient
            from manilaclient import api_versions
            from manilaclient import client as manila_client

            try:
                low, high = self._version_range("sharev2")
            except Exception as exc:
                raise explain(exc, "discovering", "the shared file systems (Manila) API") from exc
            client_max = _parse_version(manilaclient.API_MAX_VERSION.get_string())
            chosen = negotiate(client_max, low, high) or (2, 0)
            self.manila_version = f"{chosen[0]}.{chosen[1]}"
            self._manila = manila_client.Client(
                api_versions.APIVersion(self.manila_version), session=self.session,
                service_type="sharev2", endpoint_type=self.interface, region_name=self.region_name)
        return self._manila

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort
            self.sdk.close()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("container-infra")
    except PackageNotFoundError:
        return "0"
