"""Ports on named networks of one or many servers (module os_server_interface).

find -> plan -> apply:

1. find (a fixed number of bulk requests whatever the number of servers): one server listing, one
   network listing, one subnet listing, one security-group listing when groups are named, and ONE
   port listing for all the servers (``GET /v2.0/ports?device_id=A&device_id=B...``);
2. plan (pure, :func:`plan`): per server and wanted interface, the port that already answers it
   (same network and, when given, same fixed IP or subnet) is kept or updated in place, a missing
   one is created, and with ``state: absent`` the matching port -- only that one -- is detached and
   deleted. A missing port that lies unattached in Neutron with the name the module gives it and the
   toolkit's description (a run interrupted between making and attaching it) is adopted instead of made
   a second time; those are found, only when something is to be created, by ONE more listing (the
   toolkit's description on the wanted networks);
3. apply (:func:`apply`): servers are worked on concurrently by a bounded pool, each server's
   actions one after another (Nova serialises attachments per server anyway); a port the module
   created is deleted again when Nova refuses to attach it, so a re-run finds no stray port; the
   attached ports are then waited for, all of them in one listing per poll, until ACTIVE.

Every port the module makes carries :data:`DESCRIPTION`, :data:`TOOLKIT_TAG` and the caller's
``port_tags`` before it is attached (the tags in the POST, and set again where Neutron dropped them:
some keep no tags given at creation), so Neutron itself, not a file, records which ports the toolkit
made: :func:`prune` detaches and deletes the ports of a tag that a caller no longer wants (the cluster
role tags each cluster's ports with :func:`cluster_port_tag`); a port interrupted before its tags were
set is still found by its description, adopted and tagged by the next run.

Check mode returns the plan; diff mode shows each server's interfaces before and after."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.waiter import wait_for

VNIC_TYPES = ["normal", "direct", "direct-physical", "macvtap", "baremetal", "virtio-forwarder", "smart-nic",
              "remote-managed", "vdpa"]


DESCRIPTION = "created by container-infra os_server_interface"
#: On every port the toolkit makes, with DESCRIPTION (which an interrupted run's unattached port is found by).
TOOLKIT_TAG = "container-infra"
#: Neutron before 2023.1 takes tags of 60 characters at most.
TAG_LIMIT = 60


def cluster_port_tag(cluster: str) -> str:
    """The tag on a cluster's provider ports: the cluster's name, hashed when the tag would be too long."""
    tag = f"container-infra-cluster:{cluster}"
    if len(tag) <= TAG_LIMIT:
        return tag
    return f"container-infra-cluster:{hashlib.sha256(cluster.encode()).hexdigest()[:32]}"


class InputError(CloudError):
    """A parameter names something that does not exist or does not fit."""


# ---------------------------------------------------------------------------- data
@dataclass
class Want:
    """One wanted interface, its references resolved."""

    index: int
    network: dict
    subnet: dict | None = None
    fixed_ip: str | None = None
    port_name: str | None = None
    vnic_type: str | None = None
    security_group_ids: list[str] | None = None
    port_security_enabled: bool | None = None
    tag: str | None = None

    @property
    def network_name(self) -> str:
        return self.network.get("name") or self.network["id"]


@dataclass
class Action:
    """What to do for one (server, wanted interface): keep, create, adopt, update or delete a port."""

    kind: str  # "keep" | "create" | "adopt" | "update" | "delete"
    server: dict
    want: Want
    port: dict | None = None
    changes: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.kind != "keep"


# ---------------------------------------------------------------------------- find
def _one_sentence_list(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def resolve_servers(refs: list[str], servers: list[dict]) -> list[dict]:
    """Each reference (name or id) to exactly one server, in the order given, without duplicates."""
    by_id = {s["id"]: s for s in servers}
    by_name: dict[str, list[dict]] = {}
    for server in servers:
        by_name.setdefault(server["name"], []).append(server)
    found: dict[str, dict] = {}
    missing: list[str] = []
    for ref in refs:
        if ref in by_id:
            server = by_id[ref]
        elif len(by_name.get(ref, [])) == 1:
            server = by_name[ref][0]
        elif by_name.get(ref):
            raise InputError(f"server name '{ref}' matches {len(by_name[ref])} servers; "
                             "give the server's id in servers instead")
        else:
            missing.append(ref)
            continue
        found.setdefault(server["id"], server)
    if missing:
        raise InputError(f"server {_one_sentence_list([repr(m) for m in missing])} was not found in the project; "
                         "check servers against `openstack server list`")
    return list(found.values())


def resolve_wants(interfaces: list[dict], networks: list[dict], subnets: list[dict],
                  security_groups: list[dict]) -> list[Want]:
    nets_by_id = {n["id"]: n for n in networks}
    nets_by_name: dict[str, list[dict]] = {}
    for net in networks:
        nets_by_name.setdefault(net.get("name"), []).append(net)
    wants: list[Want] = []
    for index, spec in enumerate(interfaces):
        where = f"interfaces[{index}]"
        ref = spec["network"]
        if ref in nets_by_id:
            net = nets_by_id[ref]
        elif len(nets_by_name.get(ref, [])) == 1:
            net = nets_by_name[ref][0]
        elif nets_by_name.get(ref):
            raise InputError(f"network '{ref}' ({where}.network) matches {len(nets_by_name[ref])} networks; "
                             "give the network's id instead")
        else:
            raise InputError(f"network '{ref}' ({where}.network) was not found; "
                             "check the name against `openstack network list`")
        net_subnets = [s for s in subnets if s["network_id"] == net["id"]]
        subnet = None
        if spec.get("subnet"):
            matches = [s for s in net_subnets if spec["subnet"] in (s["id"], s.get("name"))]
            if len(matches) != 1:
                names = _one_sentence_list([s.get("name") or s["id"] for s in net_subnets]) or "none"
                raise InputError(f"subnet '{spec['subnet']}' ({where}.subnet) is not a subnet of network "
                                 f"'{net.get('name')}' (its subnets: {names})")
            subnet = matches[0]
        fixed_ip = spec.get("fixed_ip")
        if fixed_ip:
            try:
                address = ipaddress.ip_address(fixed_ip)
            except ValueError:
                raise InputError(f"fixed_ip '{fixed_ip}' ({where}.fixed_ip) is not an IP address") from None
            candidates = [subnet] if subnet else net_subnets
            inside = [s for s in candidates if address in ipaddress.ip_network(s["cidr"], strict=False)]
            if not inside:
                cidrs = _one_sentence_list([f"{s.get('name') or s['id']} {s['cidr']}" for s in candidates]) or "none"
                raise InputError(f"fixed_ip {fixed_ip} ({where}.fixed_ip) is outside every subnet of network "
                                 f"'{net.get('name')}'{' given' if subnet else ''} ({cidrs}); pick an address "
                                 "inside one of them")
            subnet = subnet or inside[0]
        sg_ids = None
        if spec.get("security_groups") is not None:
            if spec.get("port_security_enabled") is False and spec["security_groups"]:
                raise InputError(f"{where} names security_groups with port_security_enabled false; a port "
                                 "without port security takes no security groups, drop one of the two")
            sg_ids = []
            for sg_ref in spec["security_groups"]:
                matches = [g for g in security_groups if sg_ref in (g["id"], g.get("name"))]
                if len(matches) != 1:
                    what = "was not found" if not matches else f"matches {len(matches)} groups; give its id"
                    raise InputError(f"security group '{sg_ref}' ({where}.security_groups) {what}")
                sg_ids.append(matches[0]["id"])
            sg_ids.sort()
        wants.append(Want(index=index, network=net, subnet=subnet, fixed_ip=fixed_ip,
                          port_name=spec.get("port_name"), vnic_type=spec.get("vnic_type"),
                          security_group_ids=sg_ids, port_security_enabled=spec.get("port_security_enabled"),
                          tag=spec.get("tag")))
    return wants


# ---------------------------------------------------------------------------- plan
def _ips(port: dict) -> list[str]:
    return [ip["ip_address"] for ip in port.get("fixed_ips", [])]


def _answers(port: dict, want: Want) -> bool:
    if port.get("network_id") != want.network["id"]:
        return False
    if want.fixed_ip:
        return want.fixed_ip in _ips(port)
    if want.subnet:
        return any(ip.get("subnet_id") == want.subnet["id"] for ip in port.get("fixed_ips", []))
    return True


def made_here(port: dict) -> bool:
    """Whether the toolkit made the port (its tag, or its description when the tags were never set)."""
    return TOOLKIT_TAG in (port.get("tags") or []) or port.get("description") == DESCRIPTION


def port_name(server: dict, want: Want) -> str:
    """The name of the port the module makes for ``want`` on ``server``."""
    return want.port_name or f"{server['name']}-{want.network_name}"


def _port_changes(port: dict, want: Want, tags: list[str] | None = None) -> dict:
    changes: dict[str, Any] = {}
    # A port the toolkit made (before it tagged them, or for another caller) gets the caller's tags,
    # so that a later prune by tag finds it; another's port is never tagged, hence never pruned.
    mine = made_here(port)
    missing = [t for t in [TOOLKIT_TAG, *(tags or [])] if t not in (port.get("tags") or [])]
    if tags and mine and missing:
        changes["tags"] = sorted(set(port.get("tags") or []) | set(missing))
    if want.port_name is not None and port.get("name") != want.port_name:
        changes["name"] = want.port_name
    if want.port_security_enabled is not None and port.get("port_security_enabled") != want.port_security_enabled:
        changes["port_security_enabled"] = want.port_security_enabled
        if want.port_security_enabled is False:
            changes["security_groups"] = []
    if want.security_group_ids is not None and sorted(port.get("security_groups") or []) != want.security_group_ids:
        changes["security_groups"] = want.security_group_ids
    return changes


def _vnic_type(port: dict) -> str:
    return port.get("binding:vnic_type") or "normal"


def plan(servers: list[dict], wants: list[Want], ports: list[dict], state: str = "present",
         strays: list[dict] | None = None, tags: list[str] | None = None) -> list[Action]:
    """What to do, server by server, wanted interface by wanted interface (no API calls).

    ``strays`` are unattached ports: one the toolkit made (:func:`made_here`) with the name the module
    would give a port to create, that answers the wanted interface, is adopted instead."""
    actions: list[Action] = []
    adopted: set[str] = set()
    for server in servers:
        own = [p for p in ports if p.get("device_id") == server["id"]]
        used: set[str] = set()
        for want in wants:
            candidates = [p for p in own if p["id"] not in used and _answers(p, want)]
            if want.port_name:
                named = [p for p in candidates if p.get("name") == want.port_name]
                if named or state == "absent":
                    candidates = named
            if state == "absent":
                if len(candidates) > 1:
                    raise InputError(
                        f"server '{server['name']}' has {len(candidates)} ports on network '{want.network_name}' "
                        f"(interfaces[{want.index}]); give fixed_ip or port_name to say which one to remove")
                if candidates:
                    used.add(candidates[0]["id"])
                    actions.append(Action("delete", server, want, candidates[0]))
                else:
                    actions.append(Action("keep", server, want, None))
                continue
            if not candidates:
                stray = next((p for p in strays or [] if p["id"] not in adopted and not p.get("device_id")
                              and made_here(p) and p.get("name") == port_name(server, want) and _answers(p, want)
                              and _vnic_type(p) == (want.vnic_type or "normal")), None)
                if stray:
                    adopted.add(stray["id"])
                    changes = _port_changes(stray, want, tags)
                    changes.pop("name", None)
                    actions.append(Action("adopt", server, want, stray, changes))
                else:
                    actions.append(Action("create", server, want))
                continue
            port = candidates[0]
            used.add(port["id"])
            if want.vnic_type and port.get("binding:vnic_type", "normal") != want.vnic_type:
                raise InputError(
                    f"the port {port['id']} of server '{server['name']}' on network '{want.network_name}' has "
                    f"vnic_type {port.get('binding:vnic_type')}, not {want.vnic_type} (interfaces[{want.index}]); "
                    "a vnic_type cannot change while attached: remove the interface (state: absent) and add it again")
            changes = _port_changes(port, want, tags)
            actions.append(Action("update" if changes else "keep", server, want, port, changes))
    return actions


def port_body(action: Action, tags: list[str] | None = None) -> dict:
    want, server = action.want, action.server
    body: dict[str, Any] = {
        "network_id": want.network["id"],
        "name": port_name(server, want),
        "description": DESCRIPTION,
        # Tagged as it is made: a run interrupted before the attachment leaves a port the next finds.
        "tags": sorted({TOOLKIT_TAG, *(tags or [])}),
    }
    if want.fixed_ip or want.subnet:
        fixed: dict[str, str] = {}
        if want.subnet:
            fixed["subnet_id"] = want.subnet["id"]
        if want.fixed_ip:
            fixed["ip_address"] = want.fixed_ip
        body["fixed_ips"] = [fixed]
    if want.vnic_type and want.vnic_type != "normal":
        body["binding:vnic_type"] = want.vnic_type
    if want.port_security_enabled is not None:
        body["port_security_enabled"] = want.port_security_enabled
        if want.port_security_enabled is False:
            body["security_groups"] = []
    if want.security_group_ids is not None:
        body["security_groups"] = want.security_group_ids
    return body


# ---------------------------------------------------------------------------- apply
def _update(api, port: dict, changes: dict) -> dict:
    """The port's attributes changed in place; its tags through Neutron's tags API (not a port attribute)."""
    rest = {k: v for k, v in changes.items() if k != "tags"}
    if rest:
        port = api.update_port(port["id"], rest)
    if "tags" in changes:
        api.set_tags(port["id"], changes["tags"])
        port = dict(port, tags=changes["tags"])
    return port


def _create(api, body: dict) -> dict:
    """A new port, its tags set before anything else happens to it (some Neutrons drop a POST's tags)."""
    port = api.create_port(body)
    if set(body["tags"]) - set(port.get("tags") or []):
        try:
            api.set_tags(port["id"], body["tags"])
        except Exception:
            with contextlib.suppress(Exception):  # an untagged port is not left behind; the tag error is reported
                api.delete_port(port["id"])
            raise
        port = dict(port, tags=body["tags"])
    return port


def _apply_server(api, actions: list[Action], tags: list[str] | None = None) -> list[tuple[Action, dict | None]]:
    """One server's actions, one after another; returns (action, resulting port or None)."""
    done: list[tuple[Action, dict | None]] = []
    for action in actions:
        server = action.server
        what = f"network '{action.want.network_name}' on server '{server['name']}'"
        if action.kind == "keep":
            done.append((action, action.port))
        elif action.kind == "update":
            try:
                done.append((action, _update(api, action.port, action.changes)))
            except Exception as exc:
                raise explain(exc, "updating the port of", what) from exc
        elif action.kind in ("create", "adopt"):
            try:
                if action.kind == "adopt":
                    port = _update(api, action.port, action.changes)
                else:
                    port = _create(api, port_body(action, tags))
            except Exception as exc:
                verb = "updating the unattached port" if action.kind == "adopt" else "creating a port for"
                raise explain(exc, verb, what) from exc
            try:
                attachment = api.attach(server["id"], port["id"], action.want.tag)
            except Exception as exc:
                # Leave nothing half-made: the port we just created goes again.
                with contextlib.suppress(Exception):  # the attach error is the one to report
                    api.delete_port(port["id"])
                raise explain(exc, "attaching", what) from exc
            port = dict(port, device_id=server["id"])
            if attachment.get("port_state"):
                port["status"] = attachment["port_state"]
            if attachment.get("fixed_ips"):
                port["fixed_ips"] = attachment["fixed_ips"]
            done.append((action, port))
        elif action.kind == "delete":
            try:
                api.detach(server["id"], action.port["id"])
            except Exception as exc:
                raise explain(exc, "detaching", what) from exc
            done.append((action, None))
    return done


def _wait(api, port_ids: list[str], predicate, timeout: float, poll_interval: float, what: str) -> dict[str, dict]:
    """Poll all the ports in one listing per round until ``predicate(port_or_None)`` holds for each."""

    def fetch():
        return {p["id"]: p for p in api.list_ports(ids=port_ids)}

    def failed(ports):
        bad = [pid for pid in port_ids
               if not predicate(ports.get(pid)) and (ports.get(pid) or {}).get("status") == "ERROR"]
        return f"port {bad[0]} went to ERROR; look at the network service's log for it" if bad else False

    return wait_for(fetch, lambda ports: all(predicate(ports.get(pid)) for pid in port_ids), failed,
                    timeout=timeout, poll_interval=poll_interval,
                    what=f"{len(port_ids)} port(s) {what}")


def apply(api, actions: list[Action], concurrency: int = 10, wait: bool = True, timeout: float = 600,
          poll_interval: float = 5.0, tags: list[str] | None = None) -> list[tuple[Action, dict | None]]:
    by_server: dict[str, list[Action]] = {}
    for action in actions:
        by_server.setdefault(action.server["id"], []).append(action)
    results: list[tuple[Action, dict | None]] = []
    errors: list[Exception] = []
    busy = [group for group in by_server.values() if any(a.changed for a in group)]
    idle = [group for group in by_server.values() if not any(a.changed for a in group)]
    for group in idle:
        results += [(a, a.port) for a in group]
    if busy:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(busy)))) as pool:
            for future in [pool.submit(_apply_server, api, group, tags) for group in busy]:
                try:
                    results += future.result()
                except Exception as exc:
                    errors.append(exc)
    if errors:
        more = f" ({len(errors) - 1} more server(s) failed as well)" if len(errors) > 1 else ""
        message = str(errors[0]).rstrip(".")
        raise CloudError(f"{message}{more}") from errors[0]
    if wait:
        attached = [port["id"] for action, port in results
                    if action.kind in ("create", "adopt", "update") and port and port.get("status") != "ACTIVE"]
        if attached:
            fresh = _wait(api, attached, lambda p: p is not None and p.get("status") == "ACTIVE",
                          timeout, poll_interval, "to become ACTIVE")
            results = [(a, fresh.get(p["id"], p) if p else p) for a, p in results]
    detached = [a.port["id"] for a in actions if a.kind == "delete"]
    if detached:
        _wait(api, detached, lambda p: p is None or not p.get("device_id"), timeout, poll_interval,
              "to be detached")
        for port_id in detached:
            try:
                api.delete_port(port_id)
            except Exception as exc:
                raise explain(exc, "deleting the detached port", port_id) from exc
    return results


# ---------------------------------------------------------------------------- report
def describe(port: dict | None, network: dict, want: Want | None = None) -> dict:
    if port is None:
        return {}
    ips = port.get("fixed_ips", [])
    ip = None
    if want and want.fixed_ip and want.fixed_ip in _ips(port):
        ip = want.fixed_ip
    elif ips:
        ip = ips[0]["ip_address"]
    return {"port_id": port.get("id"), "ip": ip, "mac": port.get("mac_address"), "mtu": network.get("mtu"),
            "network_id": network["id"], "port_name": port.get("name"), "status": port.get("status")}


def predicted(action: Action) -> dict:
    """What check mode reports for a port it would create."""
    if action.kind == "adopt":
        return dict(describe(action.port, action.want.network, action.want), status=None)
    body = port_body(action)
    return {"port_id": None, "ip": action.want.fixed_ip, "mac": None, "mtu": action.want.network.get("mtu"),
            "network_id": action.want.network["id"], "port_name": body["name"], "status": None}


def _diff_view(entry: dict) -> str:
    return f"{entry.get('ip') or '(an address from the subnet)'} port {entry.get('port_name') or entry.get('port_id')}"


def report(actions: list[Action], results: list[tuple[Action, dict | None]] | None,
           ports: list[dict] | None = None) -> dict:
    """The module's result: ``servers`` (name -> network -> port), ``interfaces`` and ``diff``."""
    per_server: dict[str, dict] = {}
    interfaces: list[dict] = []
    by_action = {id(a): p for a, p in results} if results is not None else None
    # The diff shows every port of each server on the networks asked about, before and after.
    before: dict[str, dict[str, list[str]]] = {}
    after: dict[str, dict[str, list[str]]] = {}
    networks = {a.want.network["id"]: a.want for a in actions}
    for action in actions:
        name = action.server["name"]
        if name in before:
            continue
        before[name] = {}
        for port in ports or []:
            if port.get("device_id") == action.server["id"] and port.get("network_id") in networks:
                want = networks[port["network_id"]]
                before[name].setdefault(want.network_name, []).append(_diff_view(describe(port, want.network)))
        after[name] = {net: list(views) for net, views in before[name].items()}
    for action in actions:
        name, net = action.server["name"], action.want.network_name
        per_server.setdefault(name, {})
        current = describe(action.port, action.want.network, action.want) if action.port else None
        if action.kind == "delete":
            entry = None
        elif by_action is not None:
            entry = describe(by_action.get(id(action)), action.want.network, action.want)
        elif action.kind in ("create", "adopt"):
            entry = predicted(action)
        else:
            entry = dict(current or {}, **({"port_name": action.changes["name"]} if "name" in action.changes else {}))
        views = after[name].setdefault(net, [])
        if current and current.get("port_id") and action.kind in ("delete", "update"):
            old = _diff_view(describe(action.port, action.want.network))
            if old in views:
                views.remove(old)
        if entry and action.kind in ("create", "adopt", "update"):
            views.append(_diff_view(entry))
        if not views:
            del after[name][net]
        if entry:
            per_server[name].setdefault(net, entry)
        interfaces.append({"server": name, "server_id": action.server["id"], "network": net,
                           "action": action.kind, "changes": action.changes, **(entry or {})})
    return {"servers": per_server, "interfaces": interfaces, "diff": {"before": before, "after": after}}


# ---------------------------------------------------------------------------- entry points
def find(api, params: dict) -> tuple[list[dict], list[Want], list[dict]]:
    """The servers, the wanted interfaces and the servers' ports, in a fixed number of bulk requests."""
    try:
        servers = resolve_servers(params["servers"], api.list_servers(detail=False))
    except CloudError:
        raise
    except Exception as exc:
        raise explain(exc, "listing", "servers") from exc
    interfaces = params["interfaces"]
    refs = sorted({spec["network"] for spec in interfaces})
    try:
        networks = api.list_networks(names=refs)
        missing = [r for r in refs if not any(r in (n["id"], n.get("name")) for n in networks)]
        if missing:
            networks += api.list_networks(ids=missing)
        need_subnets = any(spec.get("subnet") or spec.get("fixed_ip") for spec in interfaces)
        subnets = api.list_subnets([n["id"] for n in networks]) if need_subnets else []
        sg_refs = [g for spec in interfaces for g in spec.get("security_groups") or []]
        security_groups = api.list_security_groups(sg_refs) if sg_refs else []
    except CloudError:
        raise
    except Exception as exc:
        raise explain(exc, "listing", "networks") from exc
    wants = resolve_wants(interfaces, networks, subnets, security_groups)
    try:
        ports = api.list_ports(device_ids=[s["id"] for s in servers]) if servers else []
    except Exception as exc:
        raise explain(exc, "listing the ports of", f"{len(servers)} server(s)") from exc
    return servers, wants, ports


def port_tags(tags: list[str] | None) -> list[str]:
    """The caller's tags, checked: Neutron refuses commas (its tag filters split on them) and long tags."""
    for tag in tags or []:
        if not tag or "," in tag or len(tag) > TAG_LIMIT:
            raise InputError(f"port tag '{tag}' must be 1 to {TAG_LIMIT} characters without a comma; "
                             "shorten it or split it into two tags")
    return sorted(set(tags or []))


def ensure(api, params: dict, check_mode: bool = False) -> dict:
    """The whole module run over an API object (see :class:`container_infra.cloud.rest.Rest`)."""
    if params.get("concurrency", 10) < 1:
        raise InputError(f"concurrency must be 1 or more, not {params['concurrency']}")
    tags = port_tags(params.get("port_tags"))
    servers, wants, ports = find(api, params)
    state = params.get("state", "present")
    actions = plan(servers, wants, ports, state, tags=tags)
    creates = [a for a in actions if a.kind == "create"]
    if creates:
        # Only when something is to be made: the toolkit's ports on those networks, in one listing (by the
        # description: a port interrupted before its tags were set has it too).
        network_ids = sorted({a.want.network["id"] for a in creates})
        try:
            strays = api.list_ports(description=DESCRIPTION, network_ids=network_ids)
        except Exception as exc:
            raise explain(exc, "listing the toolkit's unattached ports on", f"{len(network_ids)} network(s)") from exc
        actions = plan(servers, wants, ports, state, strays=strays, tags=tags)
    changed = any(a.changed for a in actions)
    results = None
    if changed and not check_mode:
        results = apply(api, actions, concurrency=params.get("concurrency", 10), wait=params.get("wait", True),
                        timeout=params.get("timeout", 600), poll_interval=params.get("poll_interval", 5.0),
                        tags=tags)
    elif not changed:
        results = [(a, a.port) for a in actions]
    out = report(actions, results, ports)
    out["changed"] = changed
    return out




# ---------------------------------------------------------------------------- prune by tag
def prune(api, tags: list[str], keep: list[str], check_mode: bool = False, wait: bool = True,
          timeout: float = 600, poll_interval: float = 5.0) -> dict:
    """Detach (where attached) and delete every port carrying all ``tags`` except those in ``keep``.

    ONE port listing finds them, whatever the number of servers: Neutron is the record of the ports
    the toolkit made, so a lost or stale inventory file changes nothing here."""
    tags = port_tags(tags)
    if not tags:
        raise InputError("tags is empty; give the tag(s) the ports to prune carry (a prune of every port "
                         "is never meant)")
    try:
        found = api.list_ports(tags=tags)
    except Exception as exc:
        raise explain(exc, "listing the ports tagged", ", ".join(tags)) from exc
    kept = set(keep or [])
    gone = sorted((p for p in found if p["id"] not in kept), key=lambda p: (p.get("name") or "", p["id"]))
    out = [{"port_id": p["id"], "port_name": p.get("name"), "network_id": p.get("network_id"),
            "server_id": p.get("device_id") or None} for p in gone]
    if check_mode or not gone:
        return {"changed": bool(gone), "pruned": out}
    attached = [p for p in gone if p.get("device_id") and (p.get("device_owner") or "").startswith("compute:")]
    for port in attached:
        try:
            api.detach(port["device_id"], port["id"])
        except Exception as exc:
            raise explain(exc, "detaching the port", f"{port.get('name') or port['id']} "
                                                     f"from server {port['device_id']}") from exc
    if attached and wait:
        _wait(api, [p["id"] for p in attached], lambda p: p is None or not p.get("device_id"), timeout,
              poll_interval, "to be detached")
    for port in gone:
        try:
            api.delete_port(port["id"])
        except Exception as exc:
            raise explain(exc, "deleting the port", port.get("name") or port["id"]) from exc
    return {"changed": True, "pruned": out}
