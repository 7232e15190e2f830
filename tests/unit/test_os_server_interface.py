"""os_server_interface logic, table-driven, against an in-memory cloud (no sandbox)."""

from __future__ import annotations

import itertools
import sys

import pytest
from keystoneauth1.exceptions.http import InternalServerError

from container_infra.cloud.errors import CloudError
from container_infra.server_ports import DESCRIPTION, TOOLKIT_TAG, ensure, prune

NETS = [
    {"id": "net-hte", "name": "hte", "mtu": 9000},
    {"id": "net-lln", "name": "lln", "mtu": 65520},
    {"id": "net-priv", "name": "private", "mtu": 1500},
]
SUBNETS = [
    {"id": "sub-hte", "name": "hte-subnet", "network_id": "net-hte", "cidr": "10.60.0.0/16"},
    {"id": "sub-lln", "name": "lln-subnet", "network_id": "net-lln", "cidr": "10.70.0.0/16"},
    {"id": "sub-priv", "name": "private-subnet", "network_id": "net-priv", "cidr": "10.0.0.0/24"},
]


class FakeCloud:
    """Nova + Neutron in memory, counting calls like Cloud.api_calls would."""

    def __init__(self, servers=2, fail_attach=(), keeps_post_tags=True):
        self.calls = []
        self.keeps_post_tags = keeps_post_tags
        self.servers = [{"id": f"srv-{i}", "name": f"node-{i}"} for i in range(servers)]
        self.ports = {}
        self.ids = itertools.count(1)
        self.fail_attach = set(fail_attach)
        for server in self.servers:  # a boot port on private
            self._port({"network_id": "net-priv", "name": "", "device_id": server["id"]})

    def _port(self, body):
        n = next(self.ids)
        net = body["network_id"]
        subnet = next(s for s in SUBNETS if s["network_id"] == net)
        ip = (body.get("fixed_ips") or [{}])[0].get("ip_address") or subnet["cidr"].replace("0/16", f"{n}") \
            .replace("0/24", f"{n}")
        port = {"id": f"port-{n}", "network_id": net, "name": body.get("name", ""),
                "device_id": body.get("device_id", ""),
                "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": ip}], "mac_address": f"fa:16:3e:00:00:{n:02x}",
                "status": "ACTIVE" if body.get("device_id") else "DOWN",
                "security_groups": body.get("security_groups", ["sg-default"]),
                "port_security_enabled": body.get("port_security_enabled", True),
                "binding:vnic_type": body.get("binding:vnic_type", "normal"),
                "description": body.get("description", ""), "tags": list(body.get("tags", [])),
                "device_owner": "compute:nova" if body.get("device_id") else ""}
        self.ports[port["id"]] = port
        return port

    # the Rest interface
    def list_servers(self, name_regex=None, detail=True):
        self.calls.append("GET servers")
        return [dict(s) for s in self.servers]

    def list_networks(self, names=None, ids=None):
        self.calls.append("GET networks")
        return [n for n in NETS if n["name"] in (names or []) or n["id"] in (ids or [])]

    def list_subnets(self, network_ids):
        self.calls.append("GET subnets")
        return [s for s in SUBNETS if s["network_id"] in network_ids]

    def list_security_groups(self, refs):
        self.calls.append("GET security-groups")
        return [{"id": "sg-default", "name": "default"}, {"id": "sg-hpc", "name": "hpc"}]

    def list_ports(self, device_ids=None, ids=None, tags=None, network_ids=None, description=None):
        if tags is not None or description is not None:
            # Neutron's tags= filter: every tag given; description=: equal; network_id=: any of those given
            self.calls.append("GET ports by tag" if tags is not None else "GET ports by description")
            return [dict(p) for p in self.ports.values() if set(tags or []) <= set(p["tags"])
                    and description in (None, p["description"])
                    and (not network_ids or p["network_id"] in network_ids)]
        self.calls.append("GET ports")
        if device_ids is not None:
            return [dict(p) for p in self.ports.values() if p["device_id"] in device_ids]
        return [dict(p) for p in self.ports.values() if p["id"] in (ids or [])]

    def create_port(self, body):
        self.calls.append("POST ports")
        if not self.keeps_post_tags:  # as the sandbox's Neutron does: the POST's tags are not kept
            body = {k: v for k, v in body.items() if k != "tags"}
        return dict(self._port(body))

    def update_port(self, port_id, body):
        self.calls.append("PUT port")
        self.ports[port_id].update(body)
        return dict(self.ports[port_id])

    def set_tags(self, port_id, tags):
        self.calls.append("PUT port tags")
        self.ports[port_id]["tags"] = list(tags)

    def delete_port(self, port_id):
        self.calls.append("DELETE port")
        self.ports.pop(port_id, None)

    def attach(self, server_id, port_id, tag=None):
        self.calls.append("POST os-interface")
        if server_id in self.fail_attach:
            raise InternalServerError(message=f"Failed to attach network adapter device to {server_id}")
        self.ports[port_id].update(device_id=server_id, device_owner="compute:nova", status="ACTIVE")
        return {"port_id": port_id, "port_state": "ACTIVE"}

    def detach(self, server_id, port_id):
        self.calls.append("DELETE os-interface")
        self.ports[port_id].update(device_id="", device_owner="", status="DOWN")


def params(**overrides):
    base = {"servers": ["node-0", "node-1"], "interfaces": [{"network": "hte"}, {"network": "lln"}],
            "state": "present", "concurrency": 4, "wait": True, "timeout": 5, "poll_interval": 0.01}
    base.update(overrides)
    for spec in base["interfaces"]:
        for key in ("subnet", "fixed_ip", "port_name", "vnic_type", "security_groups", "port_security_enabled",
                    "tag"):
            spec.setdefault(key, None)
    return base


def test_attach_then_rerun_changes_nothing_with_four_calls():
    cloud = FakeCloud()
    first = ensure(cloud, params())
    assert first["changed"]
    assert cloud.calls.count("POST os-interface") == 4
    assert first["servers"]["node-0"]["hte"]["mtu"] == 9000
    assert first["servers"]["node-1"]["lln"]["ip"].startswith("10.70.")
    cloud.calls.clear()
    second = ensure(cloud, params())
    assert not second["changed"]
    assert cloud.calls == ["GET servers", "GET networks", "GET ports"]
    assert second["servers"] == first["servers"]


def test_check_mode_predicts_and_changes_nothing():
    cloud = FakeCloud()
    predicted = ensure(cloud, params(), check_mode=True)
    assert predicted["changed"]
    assert not [c for c in cloud.calls if not c.startswith("GET")]
    assert {(i["server"], i["network"], i["action"]) for i in predicted["interfaces"]} == {
        (s, n, "create") for s in ("node-0", "node-1") for n in ("hte", "lln")}
    assert predicted["diff"]["after"]["node-0"]["hte"] == ["(an address from the subnet) port node-0-hte"]
    real = ensure(cloud, params())
    assert [(i["server"], i["network"], i["action"]) for i in real["interfaces"]] == \
        [(i["server"], i["network"], i["action"]) for i in predicted["interfaces"]]


@pytest.mark.parametrize("interfaces,servers,message", [
    ([{"network": "nope"}], ["node-0"], "network 'nope' (interfaces[0].network) was not found"),
    ([{"network": "hte", "fixed_ip": "10.99.0.5"}], ["node-0"],
     "fixed_ip 10.99.0.5 (interfaces[0].fixed_ip) is outside"),
    ([{"network": "hte", "fixed_ip": "not-an-ip"}], ["node-0"], "is not an IP address"),
    ([{"network": "hte", "subnet": "lln-subnet"}], ["node-0"],
     "subnet 'lln-subnet' (interfaces[0].subnet) is not a subnet"),
    ([{"network": "hte", "security_groups": ["ghost"]}], ["node-0"], "security group 'ghost'"),
    ([{"network": "hte", "security_groups": ["default"], "port_security_enabled": False}], ["node-0"],
     "port_security_enabled false"),
    ([{"network": "hte"}], ["ghost-1"], "server 'ghost-1' was not found"),
])
def test_bad_input_is_one_sentence(interfaces, servers, message):
    cloud = FakeCloud()
    with pytest.raises(CloudError) as info:
        ensure(cloud, params(interfaces=interfaces, servers=servers))
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not [c for c in cloud.calls if not c.startswith("GET")]


def test_idempotent_by_network_and_fixed_ip():
    cloud = FakeCloud(servers=1)
    wanted = [{"network": "hte", "fixed_ip": "10.60.0.50"}, {"network": "hte", "fixed_ip": "10.60.0.51"}]
    first = ensure(cloud, params(servers=["node-0"], interfaces=wanted))
    assert [i["ip"] for i in first["interfaces"]] == ["10.60.0.50", "10.60.0.51"]
    assert not ensure(cloud, params(servers=["node-0"], interfaces=[dict(w) for w in wanted]))["changed"]


def test_absent_detaches_only_the_port_asked_for():
    cloud = FakeCloud(servers=1)
    wanted = [{"network": "hte", "fixed_ip": "10.60.0.50"}, {"network": "hte", "fixed_ip": "10.60.0.51"}]
    ensure(cloud, params(servers=["node-0"], interfaces=wanted))
    gone = ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte", "fixed_ip": "10.60.0.51"}],
                                state="absent"))
    assert gone["changed"]
    left = [p for p in cloud.ports.values() if p["device_id"] == "srv-0"]
    assert sorted(p["fixed_ips"][0]["ip_address"] for p in left) == ["10.0.0.1", "10.60.0.50"]
    again = ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte", "fixed_ip": "10.60.0.51"}],
                                 state="absent"))
    assert not again["changed"]


def test_absent_refuses_to_guess_between_ports():
    cloud = FakeCloud(servers=1)
    ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte", "fixed_ip": "10.60.0.50"},
                                                         {"network": "hte", "fixed_ip": "10.60.0.51"}]))
    with pytest.raises(CloudError, match="give fixed_ip or port_name"):
        ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte"}], state="absent"))


def test_failed_attach_leaves_no_port_and_rerun_converges():
    cloud = FakeCloud(fail_attach={"srv-1"})
    with pytest.raises(CloudError, match="node-1") as info:
        ensure(cloud, params())
    assert "Failed to attach" in str(info.value)
    assert not [p for p in cloud.ports.values() if not p["device_id"]]  # the new port went again
    cloud.fail_attach.clear()
    assert ensure(cloud, params())["changed"]
    assert not ensure(cloud, params())["changed"]
    per_server = [p for p in cloud.ports.values() if p["device_id"] == "srv-1"]
    assert sorted(p["network_id"] for p in per_server) == ["net-hte", "net-lln", "net-priv"]


def test_updates_security_settings_in_place():
    cloud = FakeCloud(servers=1)
    ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte"}]))
    result = ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte", "port_security_enabled": False}]))
    assert result["interfaces"][0]["action"] == "update"
    assert result["interfaces"][0]["changes"] == {"port_security_enabled": False, "security_groups": []}
    assert not ensure(cloud, params(servers=["node-0"],
                                    interfaces=[{"network": "hte", "port_security_enabled": False}]))["changed"]


def test_vnic_type_change_is_refused():
    cloud = FakeCloud(servers=1)
    ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte"}]))
    with pytest.raises(CloudError, match="cannot change while attached"):
        ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte", "vnic_type": "direct"}]))


def test_duplicate_server_names_ask_for_an_id():
    cloud = FakeCloud(servers=2)
    cloud.servers[1]["name"] = "node-0"
    with pytest.raises(CloudError, match="matches 2 servers"):
        ensure(cloud, params(servers=["node-0"]))


def test_a_network_name_that_exists_twice_asks_for_its_id_and_attaches_nothing(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "NETS", [*NETS, {"id": "net-hte-2", "name": "hte", "mtu": 1500}])
    cloud = FakeCloud(servers=1)
    with pytest.raises(CloudError) as caught:
        ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte"}]))
    assert str(caught.value) == ("network 'hte' (interfaces[0].network) matches 2 networks; give the network's id "
                                 "instead")
    assert not [call for call in cloud.calls if not call.startswith("GET")]


def test_id_listings_stay_under_the_request_line_limit():
    from container_infra.cloud.rest import chunks

    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(250)]
    groups = list(chunks(ids, "device_id"))
    assert [i for g in groups for i in g] == ids
    assert all(len("&".join(f"device_id={i}" for i in g)) <= 3000 for g in groups)
    assert len(groups) == 4


# ---------------------------------------------------------------------------- Neutron as the record
def port_named(cloud, name):
    return [p for p in cloud.ports.values() if p["name"] == name]


def test_made_ports_carry_the_toolkit_tag_and_the_callers_from_their_creation():
    cloud = FakeCloud(servers=1)
    ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte"}], port_tags=["cluster:c1"]))
    (made,) = port_named(cloud, "node-0-hte")
    assert made["tags"] == sorted([TOOLKIT_TAG, "cluster:c1"]) and made["description"] == DESCRIPTION
    assert "PUT port tags" not in cloud.calls  # tagged in the POST itself where Neutron keeps them


def test_tags_a_neutron_drops_from_the_post_are_set_before_the_attachment():
    cloud = FakeCloud(servers=1, keeps_post_tags=False)
    ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte"}], port_tags=["cluster:c1"]))
    (made,) = port_named(cloud, "node-0-hte")
    assert made["tags"] == sorted([TOOLKIT_TAG, "cluster:c1"]) and made["device_id"] == "srv-0"
    assert cloud.calls.index("PUT port tags") < cloud.calls.index("POST os-interface")


def test_interrupted_runs_unattached_port_is_adopted_not_made_twice():
    cloud = FakeCloud()
    # What a run killed between POST /ports and the attachment leaves: the port, named, unattached (and
    # untagged when it was killed before the tags were set).
    stray = cloud._port({"network_id": "net-hte", "name": "node-0-hte", "description": DESCRIPTION})
    cloud.calls.clear()
    result = ensure(cloud, params(port_tags=["cluster:c1"]))
    actions = {(i["server"], i["network"]): i["action"] for i in result["interfaces"]}
    assert actions == {("node-0", "hte"): "adopt", ("node-0", "lln"): "create",
                       ("node-1", "hte"): "create", ("node-1", "lln"): "create"}
    (only,) = port_named(cloud, "node-0-hte")
    assert only["id"] == stray["id"] and only["device_id"] == "srv-0"
    assert sorted(only["tags"]) == sorted([TOOLKIT_TAG, "cluster:c1"])  # the caller's tag added
    assert result["servers"]["node-0"]["hte"]["port_id"] == stray["id"]
    assert cloud.calls.count("GET ports by description") == 1  # one listing for all servers and networks
    assert cloud.calls.count("POST ports") == 3
    assert not ensure(cloud, params(port_tags=["cluster:c1"]))["changed"]


MADE = {"tags": [TOOLKIT_TAG], "description": DESCRIPTION}


@pytest.mark.parametrize("stray", [
    {"network_id": "net-hte", "name": "node-0-hte", "tags": [], "description": "someone's"},  # not the toolkit's
    {"network_id": "net-hte", "name": "someone-else", **MADE},  # not the name it would make
    {"network_id": "net-lln", "name": "node-0-hte", **MADE},  # another network
    {"network_id": "net-hte", "name": "node-0-hte", **MADE, "device_id": "srv-other"},  # in use
    {"network_id": "net-hte", "name": "node-0-hte", **MADE, "binding:vnic_type": "direct"},  # another vnic_type
])
def test_only_the_toolkits_free_port_of_that_name_and_network_is_adopted(stray):
    cloud = FakeCloud(servers=1)
    cloud._port(stray)
    result = ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte"}]))
    assert [i["action"] for i in result["interfaces"]] == ["create"]


def test_check_mode_predicts_the_adoption():
    cloud = FakeCloud(servers=1)
    stray = cloud._port({"network_id": "net-hte", "name": "node-0-hte", **MADE})
    predicted = ensure(cloud, params(servers=["node-0"], interfaces=[{"network": "hte"}]), check_mode=True)
    assert [(i["action"], i["port_id"]) for i in predicted["interfaces"]] == [("adopt", stray["id"])]
    assert not [c for c in cloud.calls if not c.startswith("GET")]


def test_a_run_with_nothing_to_make_lists_no_unattached_ports():
    cloud = FakeCloud()
    ensure(cloud, params())
    cloud.calls.clear()
    ensure(cloud, params())
    assert not [c for c in cloud.calls if c.startswith("GET ports by")]


def test_toolkit_ports_made_before_tagging_get_the_callers_tag_others_never():
    cloud = FakeCloud(servers=1)
    old = cloud._port({"network_id": "net-hte", "name": "node-0-hte", "description": DESCRIPTION,
                       "device_id": "srv-0"})
    foreign = cloud._port({"network_id": "net-lln", "name": "magnum-made", "device_id": "srv-0"})
    result = ensure(cloud, params(servers=["node-0"], port_tags=["cluster:c1"]))
    assert {i["network"]: i["action"] for i in result["interfaces"]} == {"hte": "update", "lln": "keep"}
    assert sorted(cloud.ports[old["id"]]["tags"]) == sorted([TOOLKIT_TAG, "cluster:c1"])
    assert cloud.ports[foreign["id"]]["tags"] == []
    assert not ensure(cloud, params(servers=["node-0"], port_tags=["cluster:c1"]))["changed"]


def test_a_port_tag_with_a_comma_is_refused():
    with pytest.raises(CloudError, match="without a comma"):
        ensure(FakeCloud(), params(port_tags=["a,b"]))


def test_prune_detaches_and_deletes_the_tags_ports_not_kept_in_one_listing():
    cloud = FakeCloud()
    ensure(cloud, params(port_tags=["cluster:c1"]))
    other = {"network": "hte", "fixed_ip": "10.60.0.77", "port_name": "other"}
    ensure(cloud, params(servers=["node-0"], interfaces=[other], port_tags=["cluster:c2"]))
    kept = [p["id"] for p in cloud.ports.values() if p["network_id"] == "net-hte" and "cluster:c1" in p["tags"]]
    orphan = cloud._port({"network_id": "net-lln", "name": "node-9-lln", "tags": [TOOLKIT_TAG, "cluster:c1"]})
    cloud.calls.clear()
    predicted = prune(cloud, ["cluster:c1"], kept, check_mode=True, poll_interval=0.01)
    assert predicted["changed"] and len(predicted["pruned"]) == 3
    assert cloud.calls == ["GET ports by tag"]
    cloud.calls.clear()
    done = prune(cloud, ["cluster:c1"], kept, poll_interval=0.01, timeout=5)
    assert sorted(p["port_id"] for p in done["pruned"]) == sorted(p["port_id"] for p in predicted["pruned"])
    assert orphan["id"] not in cloud.ports
    assert cloud.calls.count("GET ports by tag") == 1 and cloud.calls.count("DELETE os-interface") == 2
    left = {p["network_id"] for p in cloud.ports.values() if "cluster:c1" in p["tags"]}
    assert left == {"net-hte"}
    assert [p["name"] for p in cloud.ports.values() if "cluster:c2" in p["tags"]] == ["other"]
    assert not prune(cloud, ["cluster:c1"], kept)["changed"]


def test_prune_refuses_no_tag():
    with pytest.raises(CloudError, match="tags is empty"):
        prune(FakeCloud(), [], [])
