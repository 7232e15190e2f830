"""os_manila_share: ensure a Manila share and its access rules; parse its export locations.

find -> plan -> apply: the share is found by name (one listing); a missing share is created and
waited for until ``available``; a different size extends or shrinks it; metadata is set to what is
asked (keys Manila keeps for itself, ``__*``, are left alone); protocol, share type and availability
zone cannot change in place, and the module says so. Access rules named in ``access_rules`` are
added (a different access level: the rule is replaced) and waited for until ``active``; rules not
named stay unless ``purge_access_rules``. The result carries the export locations parsed for CephFS
(``monitors``, ``path``, ``fs_name``) and each rule; a rule's ``access_key`` (the cephx secret) only
with ``include_access_keys``, which the module refuses on a task without ``no_log: true``, so that a
task that shows its result never shows a key.
"""

from __future__ import annotations

import re
from typing import Any

from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.module import ModuleFailure
from container_infra.cloud.waiter import wait_for

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent", "query"]},
    "size": {"type": "int"},
    "share_type": {"type": "str"},
    "share_proto": {"type": "str", "default": "CEPHFS", "aliases": ["protocol"]},
    "description": {"type": "str"},
    "metadata": {"type": "dict"},
    "availability_zone": {"type": "str"},
    "access_rules": {
        "type": "list", "elements": "dict", "default": [],
        "options": {
            "access_type": {"type": "str", "default": "cephx", "choices": ["cephx", "ip", "user", "cert"]},
            "access_to": {"type": "str", "required": True},
            "access_level": {"type": "str", "default": "rw", "choices": ["rw", "ro"]},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
    },
    "purge_access_rules": {"type": "bool", "default": False},
    "include_access_keys": {"type": "bool", "default": False},
}

PROTOCOLS = ("CEPHFS", "GLUSTERFS", "NFS")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


class InputError(CloudError):
    pass


# ---------------------------------------------------------------------------- parsing
def parse_export_location(path: str, metadata: dict | None = None) -> dict:
    """``mon1:6789,mon2:6789:/volumes/_nogroup/x/y`` -> monitors, path (CephFS); ``host:/path`` (NFS,
    GlusterFS) -> host, path. ``fs_name`` from the share's ``__mount_options`` (``fs=<name>``)."""
    out: dict[str, Any] = {"export": path, "monitors": [], "path": path, "host": None, "fs_name": None}
    if ":/" in path:
        head, _, tail = path.partition(":/")
        out["path"] = "/" + tail
        hosts = [h for h in head.split(",") if h]
        out["monitors"] = hosts
        out["host"] = hosts[0] if hosts else None
    options = (metadata or {}).get("__mount_options") or ""
    for option in options.split(","):
        key, _, value = option.strip().partition("=")
        if key in ("fs", "mds_namespace") and value:
            out["fs_name"] = value
    return out


# ---------------------------------------------------------------------------- helpers
def _d(obj) -> dict:
    if isinstance(obj, dict):
        return dict(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(getattr(obj, "_info", {}))


def validate(params: dict) -> None:
    proto = (params.get("share_proto") or "").upper()
    if proto not in PROTOCOLS:
        raise InputError(f"share_proto '{params.get('share_proto')}' is not one of {', '.join(PROTOCOLS)}; "
                         "pick the protocol the share type's backend serves (CEPHFS for CephFS native)")
    params["share_proto"] = proto
    if params.get("size") is not None and params["size"] < 1:
        raise InputError(f"size must be at least 1 (GiB), not {params['size']}")
    for index, rule in enumerate(params.get("access_rules") or []):
        if proto == "CEPHFS" and rule.get("access_type", "cephx") != "cephx":
            raise InputError(f"access_rules[{index}] has access_type {rule['access_type']}; a CEPHFS share "
                             "takes cephx rules only (access_to: the cephx user)")


class Share:
    """The Manila calls this module makes, on python-manilaclient."""

    def __init__(self, manila, timeout: float = 1800, poll_interval: float = 5.0):
        self.m = manila
        self.timeout = timeout
        self.poll_interval = poll_interval

    def find(self, name: str) -> dict | None:
        shares = [_d(s) for s in self.m.shares.list(search_opts={"name": name})]
        shares = [s for s in shares if s.get("name") == name]
        if len(shares) > 1:
            raise CloudError(f"share name '{name}' matches {len(shares)} shares; rename or delete the duplicates "
                             "(`openstack share list --name ...`), then run again")
        if not shares and UUID_RE.match(name):
            # A share made elsewhere may be named by its ID.
            try:
                return _d(self.m.shares.get(name))
            except Exception as exc:
                if type(exc).__name__ != "NotFound" and getattr(exc, "code", None) != 404:
                    raise
        return shares[0] if shares else None

    def wait_share(self, share_id: str, what: str, done=("available",)) -> dict:
        def failed(share):
            status = share.get("status", "")
            if status.startswith("error") or status == "extending_error" or status == "shrinking_error":
                return f"the share went to {status}" + (f" ({share['status_reason']})"
                                                        if share.get("status_reason") else "")
            return False

        return wait_for(lambda: _d(self.m.shares.get(share_id)), lambda s: s.get("status") in done, failed,
                        timeout=self.timeout, poll_interval=self.poll_interval, what=what)

    def rules(self, share_id: str) -> list[dict]:
        # From microversion 2.45 the rules have their own API (with metadata); before, the share's.
        rules = getattr(self.m, "share_access_rules", None)
        try:
            return [_d(r) for r in rules.access_list(share_id)] if rules is not None else []
        except Exception as exc:
            if type(exc).__name__ != "UnsupportedVersion":
                raise
        return [_d(r) for r in self.m.shares.access_list(share_id)]

    def check_share_type(self, name: str) -> None:
        """Refuse, before anything is made, a share type this project cannot use."""
        types = [_d(t) for t in self.m.share_types.list()]
        if not any(name in (t.get("name"), t.get("id")) for t in types):
            known = ", ".join(sorted(t.get("name") or t.get("id") for t in types)) or "none"
            raise InputError(f"share_type '{name}' does not exist in this cloud (or is not available to the "
                             f"project); choose one of: {known}")

    def backend_message(self, share_id: str) -> str | None:
        """Manila's newest user message about the share (why its back end refused an access rule)."""
        try:
            messages = [_d(m) for m in self.m.messages.list(search_opts={"resource_id": share_id})]
        except Exception:  # the messages API is informative only: the caller still has its own reason
            return None
        messages.sort(key=lambda m: m.get("created_at") or "")
        return messages[-1].get("user_message") if messages else None

    def deny_refused(self, share_id: str, wanted: list[tuple[str, str]]) -> None:
        """Remove the wanted rules the back end put in error, so that a failed run leaves none behind."""
        for rule in self.rules(share_id):
            if (rule.get("access_type"), rule.get("access_to")) in wanted and \
                    (rule.get("state") or rule.get("access_state")) == "error":
                self.m.shares.deny(share_id, rule["id"])

    def wait_rules(self, share_id: str, wanted: list[tuple[str, str]], what: str) -> list[dict]:
        def state_of(rule):
            return rule.get("state") or rule.get("access_state")

        def pick(rules):
            return [r for r in rules if (r.get("access_type"), r.get("access_to")) in wanted]

        def failed(rules):
            bad = [r for r in pick(rules) if state_of(r) == "error"]
            if bad:
                # Manila keeps a user message for some refusals only (not for a cephx user that another
                # project holds, which Ceph's volumes module refuses as "already in use").
                reason = self.backend_message(share_id) or (
                    "Ceph refuses a cephx user that another project already holds, or one reserved such as "
                    "admin or the cloud's own Manila user")
                return (f"the {bad[0]['access_type']} rule for {bad[0]['access_to']} went to error; the backend "
                        f"refused it ({reason.rstrip('.')}); the refused rule was removed: choose another "
                        f"{bad[0]['access_type']} user")
            return False

        return wait_for(lambda: self.rules(share_id),
                        lambda rules: len(pick(rules)) >= len(wanted)
                        and all(state_of(r) == "active" for r in pick(rules)),
                        failed, timeout=self.timeout, poll_interval=self.poll_interval, what=what)


def _wanted_rules(params: dict) -> dict[tuple[str, str], str]:
    return {(r.get("access_type") or "cephx", r["access_to"]): r.get("access_level") or "rw"
            for r in params.get("access_rules") or [] if (r.get("state") or "present") == "present"}


def _unwanted_rules(params: dict) -> set[tuple[str, str]]:
    return {(r.get("access_type") or "cephx", r["access_to"])
            for r in params.get("access_rules") or [] if r.get("state") == "absent"}


def plan(params: dict, share: dict | None, rules: list[dict]) -> dict:
    """What to change: ``create``/``delete`` or the in-place steps (resize, metadata, rules)."""
    steps: dict[str, Any] = {"create": False, "delete": False, "resize": None, "metadata": None,
                             "allow": [], "deny": []}
    if params["state"] == "absent":
        steps["delete"] = share is not None
        return steps
    if share is None:
        if not params.get("size"):
            raise InputError(f"share '{params['name']}' does not exist and size is not given; give size (GiB) "
                             "to create it")
        steps["create"] = True
        steps["allow"] = [{"access_type": t, "access_to": to, "access_level": level}
                          for (t, to), level in _wanted_rules(params).items()]
        return steps
    fixed = []
    if share.get("share_proto", "").upper() != params["share_proto"]:
        fixed.append(f"share_proto ({share.get('share_proto')} -> {params['share_proto']})")
    if params.get("share_type") and params["share_type"] not in (share.get("share_type"),
                                                                 share.get("share_type_name")):
        fixed.append(f"share_type ({share.get('share_type_name')} -> {params['share_type']})")
    if params.get("availability_zone") and params["availability_zone"] != share.get("availability_zone"):
        fixed.append(f"availability_zone ({share.get('availability_zone')} -> {params['availability_zone']})")
    if fixed:
        raise InputError(f"share '{params['name']}' differs in what cannot change in place: {'; '.join(fixed)}; "
                         "create a share with a new name (and move the data), or delete this one first")
    if params.get("size") and params["size"] != share.get("size"):
        steps["resize"] = params["size"]
    if params.get("metadata") is not None:
        current = {k: v for k, v in (share.get("metadata") or {}).items() if not k.startswith("__")}
        wanted = {k: str(v) for k, v in params["metadata"].items()}
        if current != wanted:
            steps["metadata"] = wanted
    existing = {(r.get("access_type"), r.get("access_to")): r for r in rules}
    for (kind, to), level in _wanted_rules(params).items():
        rule = existing.get((kind, to))
        if rule is None or rule.get("access_level") != level or (rule.get("state") or rule.get("access_state")) \
                in ("error", "denying"):
            if rule is not None:
                steps["deny"].append(rule)
            steps["allow"].append({"access_type": kind, "access_to": to, "access_level": level})
    unwanted = _unwanted_rules(params)
    if params.get("purge_access_rules"):
        wanted = set(_wanted_rules(params))
        steps["deny"] += [r for key, r in existing.items() if key not in wanted]
    else:
        steps["deny"] += [r for key, r in existing.items() if key in unwanted and r not in steps["deny"]]
    return steps


def changed(steps: dict) -> bool:
    return bool(steps["create"] or steps["delete"] or steps["resize"] or steps["metadata"] is not None
                or steps["allow"] or steps["deny"])


def view(share: dict | None, rules: list[dict], locations: list[dict]) -> dict:
    if share is None:
        return {}
    metadata = share.get("metadata") or {}
    parsed = [dict(parse_export_location(loc.get("path", ""), metadata),
                   preferred=loc.get("preferred"), is_admin_only=loc.get("is_admin_only"))
              for loc in locations]
    first = parsed[0] if parsed else {}
    return {
        "id": share.get("id"), "name": share.get("name"), "status": share.get("status"), "size": share.get("size"),
        "share_proto": share.get("share_proto"), "share_type": share.get("share_type_name") or share.get("share_type"),
        "availability_zone": share.get("availability_zone"),
        "metadata": {k: v for k, v in metadata.items() if not k.startswith("__")},
        "export_locations": parsed,
        "monitors": first.get("monitors", []), "path": first.get("path"), "fs_name": first.get("fs_name"),
        "access_rules": [{"id": r.get("id"), "access_type": r.get("access_type"), "access_to": r.get("access_to"),
                          "access_level": r.get("access_level"), "state": r.get("state") or r.get("access_state"),
                          "access_key": r.get("access_key")} for r in rules],
    }


def without_keys(result: dict) -> dict:
    """The result with no rule's access_key: what every run returns unless the keys are asked for."""
    for share in (result.get("share"), *(result.get("diff") or {}).values()):
        for rule in (share or {}).get("access_rules") or []:
            if isinstance(rule, dict):
                rule.pop("access_key", None)
    return result


def ensure(api: Share, params: dict, check_mode: bool = False) -> dict:
    result = _ensure(api, params, check_mode)
    return result if params.get("include_access_keys") else without_keys(result)


def _ensure(api: Share, params: dict, check_mode: bool = False) -> dict:
    validate(params)
    name = params["name"]
    try:
        share = api.find(name)
        rules = api.rules(share["id"]) if share else []
        if params["state"] == "query":
            return {"changed": False, "share": _current(api, share, rules)}
    except CloudError:
        raise
    except Exception as exc:
        raise explain(exc, "reading", f"share '{name}'") from exc
    steps = plan(params, share, rules)
    before = view(share, rules, [])
    is_changed = changed(steps)
    if check_mode or not is_changed:
        result = _current(api, share, rules) if share and not check_mode else before
        if check_mode and is_changed:
            result = _predict(params, before, steps)
        return {"changed": is_changed, "share": result, "plan": _plan_view(steps),
                "diff": {"before": _diff_view(before), "after": _diff_view(result)}}
    try:
        if steps["delete"]:
            m = api.m
            m.shares.delete(share["id"])
            wait_for(lambda: api.find(name), lambda s: s is None,
                     lambda s: s and s.get("status") == "error_deleting" and "the share went to error_deleting",
                     timeout=api.timeout, poll_interval=api.poll_interval, what=f"share '{name}' to be deleted")
            return {"changed": True, "share": {}, "plan": _plan_view(steps),
                    "diff": {"before": _diff_view(before), "after": {}}}
        if steps["create"]:
            if params.get("share_type"):
                api.check_share_type(params["share_type"])
            created = api.m.shares.create(params["share_proto"], params["size"], name=name,
                                          description=params.get("description"),
                                          share_type=params.get("share_type"),
                                          metadata={k: str(v) for k, v in (params.get("metadata") or {}).items()},
                                          availability_zone=params.get("availability_zone"))
            share = api.wait_share(_d(created)["id"], f"share '{name}' to become available")
        if steps["resize"]:
            if steps["resize"] > share["size"]:
                api.m.shares.extend(share["id"], steps["resize"])
            else:
                api.m.shares.shrink(share["id"], steps["resize"])
            share = api.wait_share(share["id"], f"share '{name}' to be resized to {steps['resize']} GiB")
        if steps["metadata"] is not None:
            api.m.shares.update_all_metadata(share["id"], steps["metadata"])
        for rule in steps["deny"]:
            api.m.shares.deny(share["id"], rule["id"])
        if steps["deny"]:
            gone = {r["id"] for r in steps["deny"]}
            wait_for(lambda: api.rules(share["id"]), lambda rs: not gone & {r.get("id") for r in rs},
                     timeout=api.timeout, poll_interval=api.poll_interval, what=f"access rules of '{name}' to go")
        for rule in steps["allow"]:
            api.m.shares.allow(share["id"], rule["access_type"], rule["access_to"], rule["access_level"])
        if steps["allow"] and params.get("wait", True):
            allowed = [(r["access_type"], r["access_to"]) for r in steps["allow"]]
            try:
                api.wait_rules(share["id"], allowed, f"access rules of share '{name}' to become active")
            except CloudError:
                api.deny_refused(share["id"], allowed)
                raise
    except CloudError:
        raise
    except Exception as exc:
        raise explain(exc, "ensuring", f"share '{name}'") from exc
    result = _current(api, api.find(name), None)
    return {"changed": True, "share": result, "plan": _plan_view(steps),
            "diff": {"before": _diff_view(before), "after": _diff_view(result)}}


def _current(api: Share, share: dict | None, rules: list[dict] | None) -> dict:
    if share is None:
        return {}
    rules = api.rules(share["id"]) if rules is None else rules
    locations = [_d(x) for x in api.m.share_export_locations.list(share["id"])]
    return view(share, rules, locations)


def _predict(params: dict, before: dict, steps: dict) -> dict:
    if steps["delete"]:
        return {}
    after = dict(before) if before else {"name": params["name"], "share_proto": params["share_proto"],
                                         "share_type": params.get("share_type"), "status": "available",
                                         "availability_zone": params.get("availability_zone"), "access_rules": []}
    if steps["create"] or steps["resize"]:
        after["size"] = steps["resize"] or params.get("size")
    if steps["metadata"] is not None or steps["create"]:
        after["metadata"] = steps["metadata"] if steps["metadata"] is not None else dict(params.get("metadata") or {})
    denied = {r.get("id") for r in steps["deny"]}
    after["access_rules"] = [r for r in after.get("access_rules", []) if r.get("id") not in denied] + \
        [dict(r, state="active", access_key=None) for r in steps["allow"]]
    return after


def _diff_view(share: dict) -> dict:
    """The diff leaves secrets out."""
    if not share:
        return {}
    keep = {k: share.get(k) for k in ("name", "size", "share_proto", "share_type", "metadata", "status")}
    keep["access_rules"] = sorted(f"{r['access_type']}:{r['access_to']} {r['access_level']}"
                                  for r in share.get("access_rules") or [])
    return keep


def _plan_view(steps: dict) -> dict:
    return {"create": steps["create"], "delete": steps["delete"], "resize": steps["resize"],
            "metadata": steps["metadata"],
            "allow": [f"{r['access_type']}:{r['access_to']} {r['access_level']}" for r in steps["allow"]],
            "deny": [f"{r.get('access_type')}:{r.get('access_to')}" for r in steps["deny"]]}


def run(module, cloud) -> dict:
    params = dict(module.params)
    if params.get("include_access_keys") and not getattr(module, "no_log", False):
        # The module cannot hide a returned value itself: only the task's no_log keeps the keys out of
        # the output, the callback's files and -vvvv.
        raise ModuleFailure("include_access_keys returns the cephx access keys, so the task must set no_log: "
                            "true; set it (and register the result), or leave include_access_keys out")
    validate(params)
    api = Share(cloud.manila(), timeout=params.get("timeout", 1800), poll_interval=params.get("poll_interval", 5.0))
    return ensure(api, params, check_mode=module.check_mode)
