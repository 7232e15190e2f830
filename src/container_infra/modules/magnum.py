"""Magnum helpers shared by the cluster, template and config modules: finding by name, normalising
what Magnum returns across microversions, and resolving names of flavors, images and networks."""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from container_infra.cloud.errors import CloudError, classify, explain, is_transient

UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)
NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*$")


def info(resource: Any) -> dict[str, Any]:
    """A client resource (or dict) as a plain dict."""
    if resource is None:
        return {}
    if isinstance(resource, dict):
        return dict(resource)
    return dict(getattr(resource, "_info", None) or resource.to_dict())


def stack_ref(cluster: dict[str, Any]) -> str | None:
    """The Heat stack id (Heat era) or the Cluster API name: ``stack_id`` before 1.13, ``cluster_id`` after.

    (In a nodegroup, ``cluster_id`` is the cluster's UUID, not a stack: callers pass clusters only.)"""
    return cluster.get("stack_id") or cluster.get("cluster_id") or None


def driver_kind(cluster: dict[str, Any]) -> str | None:
    """``heat`` when the cluster's stack reference is a Heat stack UUID, ``cluster_api`` for the names
    Cluster API drivers use (``kube-ab12c``, ``<name>-<12 chars>``), None before the driver set one."""
    ref = stack_ref(cluster)
    if not ref:
        return None
    return "heat" if UUID.match(ref) else "cluster_api"


def normalise_cluster(cluster: dict[str, Any]) -> dict[str, Any]:
    """Both ``stack_id`` and ``cluster_id`` set to the stack reference; links dropped; driver_kind added."""
    out = {k: v for k, v in cluster.items() if k != "links"}
    ref = stack_ref(cluster)
    out["stack_id"] = ref
    out["cluster_id"] = ref
    out["labels"] = dict(out.get("labels") or {})
    out["driver_kind"] = driver_kind(cluster)
    return out


def normalise_nodegroup(nodegroup: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in nodegroup.items() if k not in ("links", "id")}


def read(fn, *args, attempts: int = 5, **kwargs):
    """A read that rides over a few transient errors: 5xx, resets, and Magnum's 400 about master_count 0,
    which a listing answers while any cluster of the project is early in CREATE_IN_PROGRESS."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            time.sleep(attempt + 1)
    return None


def _find_one(listing, what: str, name_or_id: str, several) -> dict[str, Any] | None:
    """The record whose UUID, else whose name, is ``name_or_id`` (None if none); ``several(named)`` gives
    the CloudError to raise when more than one has that name (Magnum does not keep names unique)."""
    try:
        records = [info(r) for r in read(listing)]
    except Exception as exc:
        raise explain(exc, "listing", what) from exc
    by_id = [r for r in records if r.get("uuid") == name_or_id]
    if by_id:
        return by_id[0]
    named = [r for r in records if r.get("name") == name_or_id]
    if len(named) > 1:
        raise several(named)
    return named[0] if named else None


def find_cluster(magnum, name_or_id: str) -> dict[str, Any] | None:
    """The cluster's brief record by UUID or name; None if there is none; CloudError if several share the name."""
    def several(named):
        ids = ", ".join(sorted(c["uuid"] for c in named))
        return CloudError(
            f"finding cluster {name_or_id} failed: {len(named)} clusters have that name ({ids}); "
            "delete or rename the duplicates (or name the cluster by its UUID), then run again",
            status=409)

    return _find_one(magnum.clusters.list, "clusters", name_or_id, several)


def get_cluster(magnum, uuid: str, *, missing_ok: bool = False, attempts: int = 3) -> dict[str, Any] | None:
    """The cluster's detail; a read rides over a few transient errors (5xx, resets, Magnum's early 400)."""
    for attempt in range(attempts):
        try:
            return normalise_cluster(info(magnum.clusters.get(uuid)))
        except Exception as exc:
            if missing_ok and classify(exc) == "notfound":
                return None
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            time.sleep(attempt + 1)
    return None


def list_nodegroups(magnum, cluster_uuid: str) -> list[dict[str, Any]]:
    try:
        return [normalise_nodegroup(info(n)) for n in read(magnum.nodegroups.list, cluster_uuid)]
    except Exception as exc:
        raise explain(exc, "listing", f"the nodegroups of cluster {cluster_uuid}") from exc


def find_template(magnum, name_or_id: str, *, parameter: str = "cluster_template") -> dict[str, Any] | None:
    """A cluster template by UUID or name (None when there is none; CloudError when the name is ambiguous)."""
    def several(named):
        return CloudError(
            f"finding cluster template {name_or_id} failed: {len(named)} templates have that name; "
            f"set {parameter} to the UUID of the one you mean")

    return _find_one(magnum.cluster_templates.list, "cluster templates", name_or_id, several)


class Resolver:
    """Names <-> ids of flavors, images, networks, subnets and keypairs, looked up only when needed and
    cached, so that a run that changes nothing makes no lookups."""

    KINDS: ClassVar[dict[str, tuple[str, str]]] = {
        "flavor": ("compute", "find_flavor"),
        "image": ("image", "find_image"),
        "network": ("network", "find_network"),
        "subnet": ("network", "find_subnet"),
        "keypair": ("compute", "find_keypair"),
    }

    def __init__(self, sdk) -> None:
        self.sdk = sdk
        self._cache: dict[tuple[str, str], Any] = {}

    def find(self, kind: str, name_or_id: str):
        key = (kind, name_or_id)
        if key not in self._cache:
            proxy, method = self.KINDS[kind]
            try:
                found = getattr(getattr(self.sdk, proxy), method)(name_or_id, ignore_missing=True)
            except Exception as exc:
                raise explain(exc, "looking up", f"{kind} {name_or_id}") from exc
            self._cache[key] = found
        return self._cache[key]

    def require(self, kind: str, name_or_id: str, parameter: str):
        found = self.find(kind, name_or_id)
        if found is None:
            raise CloudError(
                f"{parameter} {name_or_id!r} names no {kind} in this project and region; "
                f"list them with `openstack {kind} list` and use one of those names or ids")
        return found

    def aliases(self, kind: str, name_or_id: str | None) -> set[str]:
        """All the spellings (name and id) of one resource, for comparing a stored value with a wanted one."""
        if not name_or_id:
            return set()
        found = self.find(kind, name_or_id)
        if found is None:
            return {name_or_id}
        return {v for v in (getattr(found, "id", None), getattr(found, "name", None), name_or_id) if v}

    def same(self, kind: str, stored: str | None, wanted: str | None) -> bool:
        """Whether a stored reference (name or id) names the same resource as the wanted one."""
        if wanted is None:
            return True
        if stored == wanted:
            return True
        if not stored or kind is None:
            # kind None: a plain value (a count, a flag), which has no other spelling.
            return False
        return stored in self.aliases(kind, wanted)
