"""Magnum, as the toolkit reads it: finding clusters and templates by name, one rule for a cluster's stack
reference and its driver era, the default nodegroups' names, labels, and resolving names of flavors,
images and networks. Shared by the cluster, template, config, status and inventory modules."""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from container_infra.cloud.errors import CloudError, classify, explain, is_transient
from container_infra.cloud.ids import UUID
from container_infra.cloud.module import ModuleFailure

#: A name Magnum takes for a cluster, template or nodegroup.
NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*$")
#: The nodegroups Magnum makes with every cluster (and the names the Swarm without Magnum gives its own).
DEFAULT_MASTER = "default-master"
DEFAULT_WORKER = "default-worker"
DEFAULT_NODEGROUPS = (DEFAULT_MASTER, DEFAULT_WORKER)
#: The driver eras: a Heat stack behind the cluster, or a Cluster API cluster (no stack).
HEAT = "heat"
CLUSTER_API = "cluster_api"


#: How many workers a cluster spec (or one of its nodegroups) has when it does not say: stated here only;
#: the role reads it through the ``container_infra_node_count`` filter.
DEFAULT_NODE_COUNT = 1


def node_count(spec: dict | None) -> Any:
    """The spec's (or a nodegroup's) ``node_count``, :data:`DEFAULT_NODE_COUNT` when it gives none."""
    value = (spec or {}).get("node_count")
    return DEFAULT_NODE_COUNT if value is None else value


def default_nodegroup(role: str | None) -> str:
    """The default nodegroup of a node of ``role`` (masters ``default-master``, workers ``default-worker``)."""
    return DEFAULT_MASTER if role == "master" else DEFAULT_WORKER


ROLES = ("master", "worker")


def cluster_name_problem(name: Any) -> str:
    """Why ``name`` cannot name a cluster (or a Swarm's stack), in one sentence; '' when it can. The name
    is also the cluster's directory under the inventory root, so '/' and a leading '.' never pass."""
    if not isinstance(name, str) or not NAME.match(name):
        return (f"cluster name {name!r} is not valid: it must start with a letter and hold only letters, digits, "
                "'_', '.' and '-' (it names the cluster in the cloud and its directory of inventory and "
                "credentials); rename it in the spec")
    if len(name) > 242:
        return f"cluster name is {len(name)} characters long; Magnum allows at most 242, shorten it in the spec"
    return ""


def placed_on(network: dict, role: str, nodegroup: str) -> bool:
    """Whether a spec ``networks`` entry goes to nodes of ``role`` in ``nodegroup``: an entry without
    ``roles`` is for every role, one without ``nodegroups`` for every nodegroup."""
    roles = network.get("roles")
    groups = network.get("nodegroups")
    return (roles is None or role in roles) and (groups is None or nodegroup in groups)


def spec_nodegroups(spec: dict) -> list[tuple[str, str]]:
    """(role, name) of each nodegroup a cluster spec gives its cluster: the two defaults, then its own."""
    own = [((ng.get("role") or "worker"), ng["name"]) for ng in spec.get("nodegroups") or []
           if isinstance(ng, dict) and isinstance(ng.get("name"), str) and ng["name"]]
    return [("master", DEFAULT_MASTER), ("worker", DEFAULT_WORKER)] + [g for g in own if g[1] not in DEFAULT_NODEGROUPS]


def placement_problems(cluster: str, where: str, network: dict, groups: list[tuple[str, str]]) -> list[str]:
    """Where a spec ``networks`` entry cannot go, one sentence each: a role that is none, a nodegroup the
    cluster does not have (``groups``: its (role, name) pairs), or no node in both."""
    problems = []
    wrong = sorted(set(network.get("roles") or []) - set(ROLES), key=str)
    if wrong:
        problems.append(f"{where}.roles: {', '.join(map(str, wrong))} is not a role; use master and/or worker")
    known = [name for _, name in groups]
    unknown = [g for g in network.get("nodegroups") or [] if g not in known]
    if unknown:
        problems.append(f"{where}.nodegroups: {', '.join(map(str, unknown))} is not a nodegroup of cluster {cluster} "
                        f"(it has {', '.join(known)}); name one of those or add the nodegroup")
    if not wrong and not unknown and not any(placed_on(network, role, group) for role, group in groups):
        problems.append(f"{where}: no node is in both its roles and its nodegroups; widen one of them")
    return problems


def network_problems(spec: dict) -> list[str]:
    """What in a cluster spec's ``networks`` cannot be placed on its nodes (any driver), one sentence each,
    before anything is made: a network named on a nodegroup that does not exist is refused, not skipped."""
    problems = []
    groups = spec_nodegroups(spec)
    for index, network in enumerate(spec.get("networks") or []):
        net = (network or {}).get("network") if isinstance(network, dict) else None
        where = f"networks[{net or index}]"
        if not net:
            problems.append(f"{where} has no network; name the provider network")
            continue
        problems.extend(placement_problems(spec.get("name"), where, network, groups))
    return problems


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


def era_of(cluster: dict[str, Any]) -> str | None:
    """``heat`` when the cluster's stack reference is a Heat stack UUID, ``cluster_api`` for the names
    Cluster API drivers use (``kube-ab12c``, ``<name>-<12 chars>``), None before the driver set one.

    Results call it ``driver_kind`` (the cluster modules) or ``era`` (discovery, the inventory)."""
    ref = stack_ref(cluster)
    if not ref:
        return None
    return HEAT if UUID.match(ref) else CLUSTER_API


def normalise_cluster(cluster: dict[str, Any]) -> dict[str, Any]:
    """Both ``stack_id`` and ``cluster_id`` set to the stack reference; links dropped; driver_kind added."""
    out = {k: v for k, v in cluster.items() if k != "links"}
    ref = stack_ref(cluster)
    out["stack_id"] = ref
    out["cluster_id"] = ref
    out["labels"] = dict(out.get("labels") or {})
    out["driver_kind"] = era_of(cluster)
    return out


def _label_value(where: str, key: Any, value: Any) -> str:
    if not isinstance(key, str) or not key or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-/]*", key):
        raise ModuleFailure(f"{where} has an invalid key {key!r}: label keys are letters, digits, '_', '.', '-', '/'")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ModuleFailure(
        f"{where}.{key} must be a string, number or boolean, not a {type(value).__name__}; "
        "Magnum labels are flat key=value strings")


def clean_labels(where: str, labels: dict[str, Any] | None) -> dict[str, str] | None:
    """Labels as Magnum keeps them (flat strings); a bad key or value fails in one sentence naming it."""
    if labels is None:
        return None
    return {key: _label_value(where, key, value) for key, value in labels.items()}


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
