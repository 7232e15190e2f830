"""A Magnum cluster, its size, template and nodegroups, as find -> diff -> plan (module os_container_infra).

The plan (:func:`plan_cluster`) is a pure function of what the cloud has and what the parameters
ask for; check mode reports it, a real run carries it out step by step
(:class:`Runner`), waiting for each step. :func:`progress_line` is what os_container_infra_status
reports while the role waits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from container_infra import magnum as mg
from container_infra.cloud.errors import CloudError, classify, explain
from container_infra.cloud.module import ModuleFailure, check_common
from container_infra.cloud.waiter import wait_for

# Cluster fields that Magnum cannot change in place: (parameter, cluster field, kind for name/id matching).
IMMUTABLE = (
    ("keypair", "keypair", None),
    ("master_count", "master_count", None),
    ("flavor", "flavor_id", "flavor"),
    ("master_flavor", "master_flavor_id", "flavor"),
    ("fixed_network", "fixed_network", "network"),
    ("fixed_subnet", "fixed_subnet", "subnet"),
    ("floating_ip_enabled", "floating_ip_enabled", None),
    ("master_lb_enabled", "master_lb_enabled", None),
    ("docker_volume_size", "docker_volume_size", None),
)
NODEGROUP_IMMUTABLE = (
    ("role", "role", None),
    ("flavor", "flavor_id", "flavor"),
    ("image", "image_id", "image"),
    ("docker_volume_size", "docker_volume_size", None),
)


# ---------------------------------------------------------------------------------------- validation
def validate(params: dict[str, Any]) -> None:
    """Refuse bad parameters before any cloud call, in one sentence naming the parameter."""
    name = params["name"]
    if not mg.NAME.match(name) and not mg.UUID.match(name):
        raise ModuleFailure(
            f"name {name!r} is not a valid cluster name: it must start with a letter and hold only letters, "
            "digits, '_', '.' and '-'")
    if len(name) > 242:
        raise ModuleFailure(f"name is {len(name)} characters long; Magnum allows at most 242")
    for param, low in (("node_count", 0), ("master_count", 1), ("docker_volume_size", 1),
                       ("create_timeout", 1), ("upgrade_max_batch_size", 1)):
        value = params.get(param)
        if value is not None and value < low:
            raise ModuleFailure(f"{param} must be {low} or more, not {value}")
    check_common(params)
    mg.clean_labels("labels", params.get("labels"))
    seen = set()
    for index, ng in enumerate(params.get("nodegroups") or []):
        where = f"nodegroups[{ng.get('name') or index}]"
        if not ng.get("name") or not mg.NAME.match(ng["name"]):
            raise ModuleFailure(f"{where}.name {ng.get('name')!r} is not a valid nodegroup name")
        if ng["name"] in seen:
            raise ModuleFailure(f"nodegroups names {ng['name']!r} twice; give each nodegroup once")
        seen.add(ng["name"])
        if ng["name"] == mg.DEFAULT_MASTER:
            raise ModuleFailure(
                "nodegroups cannot manage default-master: the number of masters is master_count, "
                "fixed when the cluster is created")
        if ng.get("role") == "master" and ng["name"] not in mg.DEFAULT_NODEGROUPS:
            raise ModuleFailure(f"{where}.role cannot be master: Magnum adds master nodegroups only at creation")
        count, low, high = ng.get("node_count"), ng.get("min_node_count"), ng.get("max_node_count")
        for key, value in (("node_count", count), ("min_node_count", low), ("max_node_count", high),
                           ("docker_volume_size", ng.get("docker_volume_size"))):
            if value is not None and value < 0:
                raise ModuleFailure(f"{where}.{key} must be 0 or more, not {value}")
        if low is not None and high is not None and low > high:
            raise ModuleFailure(f"{where}.min_node_count {low} is above its max_node_count {high}")
        if count is not None and low is not None and count < low:
            raise ModuleFailure(
                f"{where}.node_count {count} is below its min_node_count {low}; raise node_count or lower "
                "min_node_count")
        if count is not None and high is not None and count > high:
            raise ModuleFailure(f"{where}.node_count {count} is above its max_node_count {high}")
        mg.clean_labels(f"{where}.labels", ng.get("labels"))
        mg.clean_labels(f"{where}.node_labels", ng.get("node_labels"))
        for taint in ng.get("node_taints") or []:
            if not isinstance(taint, dict) or not taint.get("key") or taint.get("effect") not in (
                    "NoSchedule", "PreferNoSchedule", "NoExecute"):
                raise ModuleFailure(
                    f"{where}.node_taints entries need a key and an effect of NoSchedule, PreferNoSchedule "
                    f"or NoExecute, not {taint!r}")
        if ng["name"] == mg.DEFAULT_WORKER and params.get("node_count") is not None and \
                count is not None and count != params["node_count"]:
            raise ModuleFailure(
                f"node_count {params['node_count']} and nodegroups[default-worker].node_count {count} disagree; "
                "give the default workers' count once")


# ---------------------------------------------------------------------------------------- planning
@dataclass
class Plan:
    actions: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def describe(self) -> list[str]:
        return [describe(action) for action in self.actions]


def describe(action: dict[str, Any]) -> str:
    kind = action["action"]
    if kind == "create":
        return f"create cluster {action['body']['name']}"
    if kind == "recreate":
        return f"delete cluster {action['name']} ({action['status']}) and create it again"
    if kind == "delete":
        return f"delete cluster {action['name']}"
    if kind == "upgrade":
        return f"upgrade to cluster template {action['cluster_template_name']}"
    if kind == "resize":
        removed = f", removing {', '.join(action['nodes_to_remove'])}" if action.get("nodes_to_remove") else ""
        return f"resize nodegroup {action['nodegroup']} from {action['from']} to {action['node_count']} nodes{removed}"
    if kind == "nodegroup_create":
        return f"create nodegroup {action['body']['name']} with {action['body'].get('node_count', 1)} nodes"
    if kind == "nodegroup_update":
        changes = ", ".join(f"{p['path'].strip('/')} {p['value']}" for p in action["patch"])
        return f"update nodegroup {action['nodegroup']}: {changes}"
    if kind == "nodegroup_delete":
        return f"delete nodegroup {action['nodegroup']}"
    return kind


def _exact(kind: str | None, stored: Any, wanted: Any) -> bool:
    return stored == wanted


def create_body(params: dict[str, Any], template_uuid: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": params["name"], "cluster_template_id": template_uuid}
    for param, key in (("keypair", "keypair"), ("master_count", "master_count"), ("node_count", "node_count"),
                       ("flavor", "flavor_id"), ("master_flavor", "master_flavor_id"),
                       ("fixed_network", "fixed_network"), ("fixed_subnet", "fixed_subnet"),
                       ("floating_ip_enabled", "floating_ip_enabled"), ("master_lb_enabled", "master_lb_enabled"),
                       ("docker_volume_size", "docker_volume_size"), ("create_timeout", "create_timeout")):
        if params.get(param) is not None:
            body[key] = params[param]
    labels = mg.clean_labels("labels", params.get("labels"))
    if labels is not None:
        body["labels"] = labels
        body["merge_labels"] = bool(params.get("merge_labels"))
    return body


def nodegroup_body(ng: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": ng["name"], "role": ng.get("role") or "worker",
                            "node_count": ng.get("node_count", 1)}
    for param, key in (("flavor", "flavor_id"), ("image", "image_id"), ("min_node_count", "min_node_count"),
                       ("max_node_count", "max_node_count"), ("docker_volume_size", "docker_volume_size")):
        if ng.get(param) is not None:
            body[key] = ng[param]
    if ng.get("labels") is not None:
        body["labels"] = mg.clean_labels("labels", ng["labels"])
        body["merge_labels"] = bool(ng.get("merge_labels"))
    if ng.get("node_labels") is not None:
        body["node_labels"] = mg.clean_labels("node_labels", ng["node_labels"])
    if ng.get("node_taints") is not None:
        body["node_taints"] = ng["node_taints"]
    return body


def _labels_differ(current: dict[str, str], wanted: dict[str, str], merge: bool,
                   template_labels: dict[str, str] | None) -> bool:
    if merge:
        return any(current.get(k) != v for k, v in wanted.items())
    return current != wanted


def plan_cluster(
    params: dict[str, Any],
    current: dict[str, Any] | None,
    nodegroups: list[dict[str, Any]] | None = None,
    *,
    template: dict[str, Any] | None = None,
    same=_exact,
    nodegroup_details: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """What to do to bring ``current`` (the cluster's detail, or None) to what ``params`` ask for.

    ``template``: the cluster template the parameters name (resolved), ``same(kind, stored, wanted)``:
    whether a stored name/id names the wanted resource, ``nodegroup_details``: full records of existing
    nodegroups whose labels, node_labels or node_taints are asked for (the listing lacks them)."""
    plan = Plan()
    state = params["state"]
    name = params["name"]
    if state == "query":
        return plan
    if state == "absent":
        if current is not None:
            # A delete already under way (another run, a retry) is waited for, not asked again: Magnum
            # would ask Heat again, and Heat restarts a delete it is running.
            plan.actions.append({"action": "delete", "name": name, "uuid": current["uuid"],
                                 "under_way": current.get("status") == "DELETE_IN_PROGRESS"})
            plan.before = {"name": name, "status": current.get("status")}
        return plan

    labels = mg.clean_labels("labels", params.get("labels"))
    wanted_ngs = params.get("nodegroups")

    if current is None or (current.get("status") == "CREATE_FAILED" and params.get("recreate_failed", True)):
        if template is None:
            raise ModuleFailure(f"cluster_template is required to create cluster {name}")
        body = create_body(params, template["uuid"])
        if current is None:
            plan.actions.append({"action": "create", "body": body})
        else:
            plan.actions.append({"action": "recreate", "name": name, "uuid": current["uuid"],
                                 "status": current["status"], "body": body})
            plan.before = {"name": name, "status": current["status"],
                           "status_reason": current.get("status_reason")}
        plan.after = {k: v for k, v in body.items() if k != "create_timeout"}
        for ng in wanted_ngs or []:
            if ng["name"] in mg.DEFAULT_NODEGROUPS:
                continue
            plan.actions.append({"action": "nodegroup_create", "body": nodegroup_body(ng)})
        if wanted_ngs:
            plan.after["nodegroups"] = {ng["name"]: ng.get("node_count", 1) for ng in wanted_ngs}
        return plan

    # The cluster exists: what differs, and can it be changed in place?
    differences: list[str] = []
    for param, key, kind in IMMUTABLE:
        wanted = params.get(param)
        if wanted is None:
            continue
        stored = current.get(key)
        if not same(kind, stored, wanted):
            differences.append(f"{param} is {stored!r}, wanted {wanted!r}")
            plan.before[key], plan.after[key] = stored, wanted
    if labels is not None:
        stored_labels = dict(current.get("labels") or {})
        if _labels_differ(stored_labels, labels, bool(params.get("merge_labels")), None):
            changed_keys = sorted(k for k in set(stored_labels) | set(labels)
                                  if stored_labels.get(k) != labels.get(k)
                                  and (k in labels or not params.get("merge_labels")))
            differences.append(f"labels differ in {', '.join(changed_keys)}")
            plan.before["labels"], plan.after["labels"] = stored_labels, (
                {**stored_labels, **labels} if params.get("merge_labels") else labels)

    if template is not None and current.get("cluster_template_id") != template["uuid"]:
        plan.actions.append({"action": "upgrade", "cluster_template": template["uuid"],
                             "cluster_template_name": template.get("name") or template["uuid"],
                             "max_batch_size": params.get("upgrade_max_batch_size") or 1})
        plan.before["cluster_template_id"] = current.get("cluster_template_id")
        plan.after["cluster_template_id"] = template["uuid"]

    by_name = {ng["name"]: ng for ng in nodegroups or []}
    details = nodegroup_details or {}
    # Magnum's cluster node_count sums every worker nodegroup: the default workers' own count is
    # default-worker's (from the listing); the cluster's total stands in only without a listing.
    default_worker = {**by_name.get(mg.DEFAULT_WORKER, {}), **details.get(mg.DEFAULT_WORKER, {})}
    wanted_default = next((ng for ng in wanted_ngs or [] if ng["name"] == mg.DEFAULT_WORKER), {})
    worker_count = params.get("node_count")
    if worker_count is None:
        worker_count = wanted_default.get("node_count")
    current_workers = default_worker.get("node_count") if nodegroups else current.get("node_count")
    loosen, tighten = bounds_patches(default_worker, wanted_default) if nodegroups else ([], [])
    if loosen:
        plan.actions.append({"action": "nodegroup_update", "nodegroup": mg.DEFAULT_WORKER, "patch": loosen})
    if worker_count is not None and current_workers != worker_count:
        low, high = _bounds_after(default_worker, loosen + tighten)
        if low is not None and worker_count < low:
            raise ModuleFailure(
                f"node_count {worker_count} is below the min_node_count {low} of nodegroup default-worker of "
                f"cluster {name}; raise node_count, or lower min_node_count under nodegroups[default-worker]")
        if high is not None and worker_count > high:
            raise ModuleFailure(
                f"node_count {worker_count} is above the max_node_count {high} of nodegroup default-worker of "
                f"cluster {name}; lower node_count, or raise max_node_count under nodegroups[default-worker]")
        action = {"action": "resize", "nodegroup": mg.DEFAULT_WORKER, "node_count": worker_count,
                  "from": current_workers}
        if params.get("nodes_to_remove") and worker_count < (current_workers or 0):
            action["nodes_to_remove"] = list(params["nodes_to_remove"])
        plan.actions.append(action)
        plan.before["node_count"], plan.after["node_count"] = current_workers, worker_count
    if tighten:
        plan.actions.append({"action": "nodegroup_update", "nodegroup": mg.DEFAULT_WORKER, "patch": tighten})
    default_bounds = {p["path"].strip("/"): p["value"] for p in loosen + tighten}
    if default_bounds:
        plan.before["nodegroups"] = {mg.DEFAULT_WORKER: {k: default_worker.get(k) for k in default_bounds}}
        plan.after["nodegroups"] = {mg.DEFAULT_WORKER: default_bounds}

    if wanted_ngs is not None:
        ng_before: dict[str, Any] = {}
        ng_after: dict[str, Any] = {}
        wanted_names = {ng["name"] for ng in wanted_ngs}
        for ng in wanted_ngs:
            if ng["name"] in mg.DEFAULT_NODEGROUPS:
                continue
            existing = by_name.get(ng["name"])
            if existing is None:
                plan.actions.append({"action": "nodegroup_create", "body": nodegroup_body(ng)})
                ng_after[ng["name"]] = {"node_count": ng.get("node_count", 1)}
                continue
            where = f"nodegroups[{ng['name']}]"
            for param, key, kind in NODEGROUP_IMMUTABLE:
                wanted = ng.get(param)
                if wanted is None or (param == "role" and wanted == "worker" and existing.get(key) is None):
                    continue
                if not same(kind, existing.get(key), wanted):
                    differences.append(f"{where}.{param} is {existing.get(key)!r}, wanted {wanted!r}")
            detail = {**existing, **details.get(ng["name"], {})}
            for param in ("labels", "node_labels"):
                wanted = mg.clean_labels(param, ng.get(param))
                if wanted is None:
                    continue
                stored = dict(detail.get(param) or {})
                if _labels_differ(stored, wanted, param == "labels" and bool(ng.get("merge_labels")), None):
                    differences.append(f"{where}.{param} differ")
            if ng.get("node_taints") is not None and list(detail.get("node_taints") or []) != ng["node_taints"]:
                differences.append(f"{where}.node_taints differ")
            count = ng.get("node_count", 1)
            before_ng = {"node_count": existing.get("node_count")}
            after_ng = {"node_count": count}
            loosen, tighten = bounds_patches(detail, ng)
            for p in loosen + tighten:
                key = p["path"].strip("/")
                before_ng[key], after_ng[key] = detail.get(key), p["value"]
            if loosen:
                plan.actions.append({"action": "nodegroup_update", "nodegroup": ng["name"], "patch": loosen})
            if existing.get("node_count") != count:
                plan.actions.append({"action": "resize", "nodegroup": ng["name"], "node_count": count,
                                     "from": existing.get("node_count")})
            if tighten:
                plan.actions.append({"action": "nodegroup_update", "nodegroup": ng["name"], "patch": tighten})
            if before_ng != after_ng:
                ng_before[ng["name"]], ng_after[ng["name"]] = before_ng, after_ng
        for existing in nodegroups or []:
            if existing["name"] in mg.DEFAULT_NODEGROUPS or existing.get("is_default"):
                continue
            if existing["name"] not in wanted_names:
                plan.actions.append({"action": "nodegroup_delete", "nodegroup": existing["name"],
                                     "uuid": existing.get("uuid")})
                ng_before[existing["name"]] = {"node_count": existing.get("node_count")}
                ng_after[existing["name"]] = None
        if ng_before or ng_after:
            plan.before.setdefault("nodegroups", {}).update(ng_before)
            plan.after.setdefault("nodegroups", {}).update(ng_after)

    if differences:
        plan.refusals = differences
    return plan


BOUNDS = ("min_node_count", "max_node_count")


def bounds_patches(stored: dict[str, Any], wanted: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The min/max changes a nodegroup needs, split into those that loosen its bounds (sent before a
    resize, so the new count fits) and those that tighten them (sent after, so the current count fits):
    Magnum checks min <= node_count <= max on both calls. Nothing when the stored bounds already match."""
    loosen: list[dict] = []
    tighten: list[dict] = []
    for param in BOUNDS:
        value = wanted.get(param)
        if value is None or stored.get(param) == value:
            continue
        old = stored.get(param)
        # Magnum's defaults: min 0, max None (no bound).
        loosening = value < (old or 0) if param == "min_node_count" else old is not None and value > old
        (loosen if loosening else tighten).append({"op": "replace", "path": f"/{param}", "value": value})
    return loosen, tighten


def _bounds_after(stored: dict[str, Any], patches: list[dict]) -> tuple[int | None, int | None]:
    bounds = {param: stored.get(param) for param in BOUNDS}
    bounds.update({p["path"].strip("/"): p["value"] for p in patches})
    return bounds["min_node_count"], bounds["max_node_count"]


def refusal_message(name: str, differences: list[str]) -> str:
    return (f"cluster {name} cannot be changed in place: {'; '.join(differences)}; set these parameters back to "
            "the cluster's values, or delete the cluster (state: absent) and create it again")


# ---------------------------------------------------------------------------------------- waiting
FINAL_SUFFIXES = ("_COMPLETE", "_FAILED")
#: How long a just-created cluster may be missing (Magnum's conductor records it after the API answers).
RECORD_GRACE_S = 120


def failure_sentence(cluster: dict[str, Any]) -> str:
    reason = (cluster.get("status_reason") or "no reason given").strip().rstrip(".")
    faults = cluster.get("faults") or {}
    fault_text = "; ".join(f"{k}: {str(v).strip().rstrip('.')}" for k, v in faults.items()) if faults else ""
    sentence = f"cluster {cluster.get('name')} is {cluster.get('status')}: {reason}"
    if fault_text and fault_text not in reason:
        sentence += f" (faults: {fault_text})"
    return sentence


class Runner:
    """Carries a plan out against the cloud, waiting for each step and recording progress."""

    def __init__(self, module, cloud, params: dict[str, Any]):
        self.module = module
        self.cloud = cloud
        self.params = params
        self.magnum = cloud.magnum()
        self.events: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.deadline_s = float(1800 if params.get("timeout") is None else params["timeout"])
        self.poll = float(5.0 if params.get("poll_interval") is None else params["poll_interval"])

    # -------------------------------------------------------------- progress
    def note(self, step: str, status: str | None, reason: str | None = None) -> None:
        last = self.events[-1] if self.events else None
        if last and last["step"] == step and last["status"] == status:
            return
        event = {"elapsed": round(time.monotonic() - self.started, 1), "step": step, "status": status}
        if reason:
            event["status_reason"] = reason
        self.events.append(event)
        if self.module is not None:
            self.module.log(f"os_container_infra {self.params['name']}: {step}: {status}")

    def remaining(self) -> float:
        return max(1.0, self.deadline_s - (time.monotonic() - self.started))

    # -------------------------------------------------------------- waits
    def wait_cluster(self, uuid: str, step: str, *, since: str | None = None, expect_change: bool = True,
                     just_created: bool = False) -> dict[str, Any]:
        """Wait until the cluster leaves *_IN_PROGRESS (after the step has visibly started).

        ``just_created``: Magnum's API answers a creation with the new UUID before its conductor has
        recorded the cluster, so a GET can answer 404 for a while; that counts as CREATE_IN_PROGRESS
        for up to RECORD_GRACE_S."""
        seen = {"progress": not expect_change}
        record_deadline = time.monotonic() + RECORD_GRACE_S

        def fetch():
            cluster = mg.get_cluster(self.magnum, uuid, missing_ok=just_created)
            if cluster is not None:
                return cluster
            if time.monotonic() < record_deadline:
                return {"uuid": uuid, "name": self.params["name"], "status": "CREATE_IN_PROGRESS",
                        "status_reason": "Magnum has accepted the cluster; its conductor has not recorded it yet"}
            raise CloudError(
                f"creating cluster {self.params['name']} failed: Magnum accepted it ({uuid}) but had not recorded it "
                f"{RECORD_GRACE_S} s later; check that magnum-conductor runs, then run again")

        def started(cluster):
            if cluster["status"].endswith("_IN_PROGRESS") or (since is not None and cluster.get("updated_at") != since):
                seen["progress"] = True
            return seen["progress"]

        def done(cluster):
            return started(cluster) and cluster["status"].endswith("_COMPLETE")

        def failed(cluster):
            if started(cluster) and cluster["status"].endswith("_FAILED"):
                return failure_sentence(cluster)
            return False

        try:
            return wait_for(fetch, done, failed, timeout=self.remaining(), poll_interval=self.poll,
                            progress=lambda c: self.note(step, c["status"], c.get("status_reason")),
                            what=f"cluster {self.params['name']} ({step})")
        except CloudError as exc:
            self._attach(exc, uuid)
            raise

    def wait_cluster_gone(self, uuid: str, step: str) -> None:
        def fetch():
            cluster = mg.get_cluster(self.magnum, uuid, missing_ok=True)
            return cluster or {"status": "DELETED"}

        def failed(cluster):
            return failure_sentence(cluster) if cluster["status"] == "DELETE_FAILED" else False

        wait_for(fetch, lambda c: c["status"] == "DELETED", failed, timeout=self.remaining(),
                 poll_interval=self.poll, progress=lambda c: self.note(step, c["status"]),
                 what=f"cluster {self.params['name']} to be deleted")

    def wait_nodegroup(self, cluster_uuid: str, name: str, step: str, *, gone: bool = False,
                       since: str | None = None) -> dict[str, Any] | None:
        seen = {"progress": False}

        def fetch():
            try:
                return mg.info(self.magnum.nodegroups.get(cluster_uuid, name))
            except Exception as exc:
                if classify(exc) == "notfound":
                    return {"status": "DELETED"}
                raise

        def started(ng):
            if ng["status"].endswith("_IN_PROGRESS") or ng["status"] == "DELETED" or (
                    since is not None and ng.get("updated_at") != since) or since is None:
                seen["progress"] = True
            return seen["progress"]

        def done(ng):
            if gone:
                return ng["status"] == "DELETED"
            return started(ng) and ng["status"].endswith("_COMPLETE")

        def failed(ng):
            if ng["status"].endswith("_FAILED") and started(ng):
                return (f"nodegroup {name} of cluster {self.params['name']} is {ng['status']}: "
                        f"{(ng.get('status_reason') or 'no reason given').rstrip('.')}")
            return False

        return wait_for(fetch, done, failed, timeout=self.remaining(), poll_interval=self.poll,
                        progress=lambda ng: self.note(step, ng["status"]),
                        what=f"nodegroup {name} of cluster {self.params['name']}")

    def _attach(self, exc: CloudError, uuid: str) -> None:
        try:
            cluster = mg.get_cluster(self.magnum, uuid, missing_ok=True)
        except Exception:
            cluster = None
        exc.result = {"cluster": cluster or {}, "events": self.events,
                      "driver_kind": (cluster or {}).get("driver_kind")}

    # -------------------------------------------------------------- steps
    def call(self, operation: str, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CloudError:
            raise
        except Exception as exc:
            raise explain(exc, operation, what) from exc

    def execute(self, plan: Plan, current: dict[str, Any] | None) -> dict[str, Any] | None:
        name = self.params["name"]
        wait = self.params.get("wait", True)
        uuid = current["uuid"] if current else None
        cluster = current
        for index, action in enumerate(plan.actions):
            last = index == len(plan.actions) - 1
            must_wait = wait or not last
            kind = action["action"]
            step = describe(action)
            if kind in ("delete", "recreate"):
                if not action.get("under_way"):
                    try:
                        self.magnum.clusters.delete(action["uuid"])
                    except Exception as exc:
                        if classify(exc) != "notfound":  # gone since it was read: what was asked
                            raise explain(exc, "deleting", f"cluster {name}") from exc
                self.note(step, "DELETE_IN_PROGRESS")
                if must_wait or kind == "recreate":
                    self.wait_cluster_gone(action["uuid"], step)
                cluster = None
                if kind == "delete":
                    continue
            if kind in ("create", "recreate"):
                created = self.call("creating", f"cluster {name}", self.magnum.clusters.create, **action["body"])
                uuid = mg.info(created).get("uuid")
                self.note(step, "CREATE_IN_PROGRESS")
                if must_wait:
                    cluster = self.wait_cluster(uuid, step, expect_change=False, just_created=True)
                else:
                    cluster = mg.get_cluster(self.magnum, uuid, missing_ok=True) or {
                        "uuid": uuid, "name": name, "status": "CREATE_IN_PROGRESS"}
            elif kind == "upgrade":
                since = (cluster or {}).get("updated_at")
                self.call("upgrading", f"cluster {name}", self.magnum.clusters.upgrade, uuid,
                          action["cluster_template"], max_batch_size=action["max_batch_size"])
                self.note(step, "UPDATE_IN_PROGRESS")
                if must_wait:
                    cluster = self.wait_cluster(uuid, step, since=since)
            elif kind == "resize":
                since = (cluster or {}).get("updated_at")
                ng_since = None
                if action["nodegroup"] not in mg.DEFAULT_NODEGROUPS:
                    ng_since = mg.info(self.magnum.nodegroups.get(uuid, action["nodegroup"])).get("updated_at")
                self.call("resizing", f"cluster {name}", self.magnum.clusters.resize, uuid,
                          action["node_count"], nodes_to_remove=action.get("nodes_to_remove") or [],
                          nodegroup=action["nodegroup"])
                self.note(step, "UPDATE_IN_PROGRESS")
                if must_wait:
                    if action["nodegroup"] in mg.DEFAULT_NODEGROUPS:
                        cluster = self.wait_cluster(uuid, step, since=since)
                    else:
                        self.wait_nodegroup(uuid, action["nodegroup"], step, since=ng_since or "")
                        cluster = self.wait_cluster(uuid, step, expect_change=False)
            elif kind == "nodegroup_create":
                self.call("creating", f"nodegroup {action['body']['name']} of cluster {name}",
                          self.magnum.nodegroups.create, uuid, **action["body"])
                self.note(step, "CREATE_IN_PROGRESS")
                if must_wait:
                    self.wait_nodegroup(uuid, action["body"]["name"], step)
            elif kind == "nodegroup_update":
                ng_since = mg.info(self.magnum.nodegroups.get(uuid, action["nodegroup"])).get("updated_at")
                self.call("updating", f"nodegroup {action['nodegroup']} of cluster {name}",
                          self.magnum.nodegroups.update, uuid, action["nodegroup"], action["patch"])
                self.note(step, "UPDATE_IN_PROGRESS")
                if must_wait:
                    self.wait_nodegroup(uuid, action["nodegroup"], step, since=ng_since or "")
            elif kind == "nodegroup_delete":
                self.call("deleting", f"nodegroup {action['nodegroup']} of cluster {name}",
                          self.magnum.nodegroups.delete, uuid, action["nodegroup"])
                self.note(step, "DELETE_IN_PROGRESS")
                if must_wait:
                    self.wait_nodegroup(uuid, action["nodegroup"], step, gone=True)
            if kind.startswith("nodegroup_") and must_wait:
                # Magnum holds the cluster in UPDATE_IN_PROGRESS until its next status sync, and refuses
                # a resize or upgrade until then.
                cluster = self.wait_cluster(uuid, step, expect_change=False)
        if uuid and plan.actions and plan.actions[-1]["action"] != "delete":
            cluster = mg.get_cluster(self.magnum, uuid, missing_ok=True)
        return cluster


# ---------------------------------------------------------------------------------------- the module
def template_for(params, magnum, current) -> dict[str, Any] | None:
    wanted = params.get("cluster_template")
    if not wanted:
        return None
    if current is not None and current.get("cluster_template_id") == wanted:
        return {"uuid": wanted, "name": wanted}
    template = mg.find_template(magnum, wanted)
    if template is None:
        raise CloudError(
            f"cluster_template {wanted!r} names no cluster template in this project; list them with "
            "`openstack coe cluster template list`, or create it with os_container_infra_template")
    return template


def check_references(params, resolver, template, current) -> None:
    """Flavors and networks named in the parameters exist (checked only where they would be used)."""
    checks = [("flavor", "flavor", "flavor_id"), ("master_flavor", "flavor", "master_flavor_id"),
              ("fixed_network", "network", "fixed_network"), ("fixed_subnet", "subnet", "fixed_subnet"),
              ("keypair", "keypair", "keypair")]
    for param, kind, key in checks:
        value = params.get(param)
        if value is None or (current is not None and current.get(key) == value):
            continue
        resolver.require(kind, value, param)
    for ng in params.get("nodegroups") or []:
        for param, kind in (("flavor", "flavor"), ("image", "image")):
            if ng.get(param):
                resolver.require(kind, ng[param], f"nodegroups[{ng['name']}].{param}")


def nodegroup_details(magnum, cluster_uuid: str, params: dict[str, Any],
                       nodegroups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Full records of the nodegroups whose fields missing from Magnum's listing (labels, node_labels,
    node_taints, min/max_node_count) the parameters ask about, and of default-worker when its count
    changes (its bounds decide whether the resize is allowed). None otherwise: a no-change run of
    nodegroups without those fields makes no per-nodegroup call."""
    listed = {ng["name"]: ng for ng in nodegroups}
    wanted_default = next((ng for ng in params.get("nodegroups") or [] if ng["name"] == mg.DEFAULT_WORKER), {})
    worker_count = params.get("node_count")
    if worker_count is None:
        worker_count = wanted_default.get("node_count")
    needed = set()
    if worker_count is not None and listed.get(mg.DEFAULT_WORKER, {}).get("node_count") != worker_count:
        needed.add(mg.DEFAULT_WORKER)
    for ng in params.get("nodegroups") or []:
        if any(ng.get(k) is not None for k in ("labels", "node_labels", "node_taints", *BOUNDS)):
            needed.add(ng["name"])
    details = {}
    for name in sorted(needed & set(listed)):
        try:
            details[name] = mg.normalise_nodegroup(mg.info(mg.read(magnum.nodegroups.get, cluster_uuid, name)))
        except Exception as exc:
            raise explain(exc, "reading", f"nodegroup {name} of cluster {params['name']}") from exc
    return details


def result_cluster(magnum, cluster: dict[str, Any] | None) -> dict[str, Any]:
    if not cluster:
        return {}
    out = dict(cluster)
    if cluster.get("status") not in (None, "DELETED") and not cluster["status"].startswith("DELETE"):
        try:
            out["nodegroups"] = mg.list_nodegroups(magnum, cluster["uuid"])
        except CloudError:
            out["nodegroups"] = []
    return out


# ---------------------------------------------------------------------------------------- progress
def settled(status: str | None) -> bool:
    """Nothing in progress: a final state Magnum leaves alone (COMPLETE or FAILED)."""
    return bool(status) and not status.endswith("_IN_PROGRESS")


def progress_line(name: str, status: str | None, reason: str | None, active: int, expected: int,
                  elapsed: float | None) -> str:
    parts = [f"cluster {name}: {status or 'absent'}"]
    if reason:
        parts.append(reason if len(reason) <= 120 else reason[:117] + "...")
    parts.append(f"{active}/{expected} nodes ACTIVE")
    if elapsed is not None:
        parts.append(f"{int(elapsed)} s")
    return " - ".join(parts)
