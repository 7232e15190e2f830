"""os_server_interface through `ansible localhost -m` against the sandbox."""

from __future__ import annotations

import uuid

import pytest
from ansible_runner import ansible_module, assert_one_clear_sentence
from cloud_servers import boot_servers, delete_servers

from container_infra.sandbox.faults import FaultClient
from container_infra.sandbox.nodes import FAKE_ZONE
from container_infra.server_ports import DESCRIPTION, TOOLKIT_TAG


def boot(conn, name: str, count: int, metadata: dict | None = None) -> list:
    # On the fake host (zone "scale"): servers there are cheap and take ports like any other.
    return boot_servers(conn, name, count, zone=FAKE_ZONE, metadata=metadata, timeout=300)


def cleanup(conn, name: str) -> None:
    delete_servers(conn, name, timeout=120)


@pytest.fixture
def two_servers(conn, unique_name):
    servers = boot(conn, unique_name, 2)
    yield [s.name for s in servers]
    cleanup(conn, unique_name)


@pytest.fixture(scope="module")
def idle_pair(conn):
    """Two servers no test of this file attaches anything to (the bad-input cases share them)."""
    name = f"modbad-{uuid.uuid4().hex[:6]}"
    servers = boot(conn, name, 2)
    yield [s.name for s in servers]
    cleanup(conn, name)


def args(servers, interfaces, **extra):
    return {"cloud": "sandbox", "servers": servers, "interfaces": interfaces, "poll_interval": 1, **extra}


def test_lifecycle_create_rerun_check_update_delete(conn, two_servers):
    wanted = [{"network": "hte"}, {"network": "lln", "port_name": "lln0"}]
    # (fixed IPs and port security on the shared provider networks are the network owner's: Neutron's
    # policy refuses them to a project member, so the fixed-IP case below uses the project's network)
    predicted = ansible_module("os_server_interface", args(two_servers, wanted), check=True, diff=True)
    assert predicted["changed"]
    assert {i["action"] for i in predicted["interfaces"]} == {"create"}

    created = ansible_module("os_server_interface", args(two_servers, wanted), diff=True)
    assert created["changed"], created.get("msg")
    assert [(i["server"], i["network"], i["action"]) for i in created["interfaces"]] == \
        [(i["server"], i["network"], i["action"]) for i in predicted["interfaces"]]
    for name in two_servers:
        assert created["servers"][name]["hte"]["mtu"] == 9000
        assert created["servers"][name]["lln"]["mtu"] == 65520
        assert created["servers"][name]["hte"]["status"] == "ACTIVE"
        assert created["servers"][name]["hte"]["mac"].startswith("fa:16:3e")
    assert conn.network.get_port(created["servers"][two_servers[0]]["lln"]["port_id"]).name == "lln0"

    again = ansible_module("os_server_interface", args(two_servers, wanted))
    assert not again["changed"]
    assert again["servers"] == {k: {n: dict(v) for n, v in nets.items()} for k, nets in created["servers"].items()}
    assert again["api_calls"] <= 5

    # update in place: the LLN port renamed, security groups set (port security itself is the network
    # owner's to switch off on a shared provider network: Neutron's policy refuses it to a project member)
    update = [{"network": "hte"}, {"network": "lln", "port_name": "lln-renamed", "security_groups": ["default"]}]
    updated = ansible_module("os_server_interface", args(two_servers, update))
    assert updated["changed"] and {i["action"] for i in updated["interfaces"] if i["network"] == "lln"} == {"update"}
    assert not ansible_module("os_server_interface", args(two_servers, update))["changed"]

    # a second HTE port with a fixed IP, then remove only that one
    used = {ip["ip_address"] for p in conn.network.ports(network_id=conn.network.find_network("private").id)
            for ip in p.fixed_ips}
    fixed = next(f"10.0.0.{n}" for n in range(240, 100, -1) if f"10.0.0.{n}" not in used)
    extra = [{"network": "private", "fixed_ip": fixed}]
    added = ansible_module("os_server_interface", args(two_servers[:1], extra))
    assert added["changed"] and added["servers"][two_servers[0]]["private"]["ip"] == fixed, added.get("msg")
    predicted = ansible_module("os_server_interface", args(two_servers[:1], extra, state="absent"), check=True)
    assert predicted["changed"] and predicted["interfaces"][0]["action"] == "delete"
    removed = ansible_module("os_server_interface", args(two_servers[:1], extra, state="absent"))
    assert removed["changed"]
    private = [p for p in conn.network.ports(device_id=conn.compute.find_server(two_servers[0]).id)
               if p.network_id == conn.network.find_network("private").id]
    assert len(private) == 1 and fixed not in {ip["ip_address"] for ip in private[0].fixed_ips}

    # The ports as they are now (renamed above): a port is matched by what is asked of it.
    gone = ansible_module("os_server_interface", args(two_servers, update, state="absent"))
    assert gone["changed"]
    assert not ansible_module("os_server_interface", args(two_servers, update, state="absent"))["changed"]
    for name in two_servers:
        nets = {p.network_id for p in conn.network.ports(device_id=conn.compute.find_server(name).id)}
        assert nets == {conn.network.find_network("private").id}


@pytest.mark.parametrize("interfaces,servers,message", [
    ([{"network": "modb-no-such-net"}], None, "network 'modb-no-such-net' (interfaces[0].network) was not found"),
    ([{"network": "hte", "fixed_ip": "192.0.2.10"}], None, "fixed_ip 192.0.2.10 (interfaces[0].fixed_ip) is outside"),
    ([{"network": "hte", "subnet": "private-subnet"}], None, "is not a subnet of network 'hte'"),
    ([{"network": "hte", "vnic_type": "bogus"}], None, "vnic_type"),
    ([{"network": "hte"}], ["modb-no-such-server"], "server 'modb-no-such-server' was not found"),
])
def test_bad_input_fails_in_one_sentence(conn, idle_pair, interfaces, servers, message):
    ports_before = {p.id for p in conn.network.ports()}
    result = ansible_module("os_server_interface", args(servers or idle_pair, interfaces))
    assert_one_clear_sentence(result, message)
    # Nothing half-made: no port of these servers appeared.
    server_ids = {conn.compute.find_server(name).id for name in idle_pair}
    assert not [p for p in conn.network.ports() if p.id not in ports_before and p.device_id in server_ids]


def test_attach_refused_then_rerun_converges_without_duplicates(conn, two_servers):
    faults = FaultClient()
    wanted = [{"network": "hte"}]
    # Only this test's attach meets the fault: the path names its first server (the toolkit's User-Agent alone
    # let a neighbour test's attach, in the other worker, take the one 409).
    first = conn.compute.find_server(two_servers[0], ignore_missing=False).id
    with faults.injected(service="compute", method="POST", path=f"/v2.1/servers/{first}/os-interface", status=409,
                         agent="*container-infra*",
                         count=1):
        failed = ansible_module("os_server_interface", args(two_servers, wanted))
    assert failed.get("failed") and "409" in failed["msg"] and "\n" not in failed["msg"]
    done = ansible_module("os_server_interface", args(two_servers, wanted))
    assert done["changed"] and not done.get("failed"), done.get("msg")
    assert not ansible_module("os_server_interface", args(two_servers, wanted))["changed"]
    hte = conn.network.find_network("hte").id
    for name in two_servers:
        server = conn.compute.find_server(name)
        assert len([p for p in conn.network.ports(device_id=server.id) if p.network_id == hte]) == 1
    assert not [p for p in conn.network.ports(network_id=hte) if p.name.startswith(two_servers[0]) and not p.device_id]


def test_nova_refusing_the_device_leaves_no_port(conn, unique_name):
    try:
        servers = boot(conn, unique_name, 1, metadata={"sandbox_fail_attach": "true"})
        wanted = [{"network": "hte"}]
        failed = ansible_module("os_server_interface", args([servers[0].name], wanted))
        assert failed.get("failed") and "Failed to attach network adapter device" in failed["msg"], failed
        hte = conn.network.find_network("hte").id
        assert not [p for p in conn.network.ports(network_id=hte) if p.name.startswith(unique_name)]
        conn.compute.set_server_metadata(servers[0], sandbox_fail_attach="false")
        assert ansible_module("os_server_interface", args([servers[0].name], wanted))["changed"]
        assert not ansible_module("os_server_interface", args([servers[0].name], wanted))["changed"]
        assert len([p for p in conn.network.ports(network_id=hte) if p.name.startswith(unique_name)]) == 1
    finally:
        cleanup(conn, unique_name)



def test_a_network_out_of_the_spec_is_pruned_by_tag_with_no_local_record(conn, two_servers, unique_name):
    tag = f"container-infra-cluster:{unique_name}"
    both = ansible_module("os_server_interface", args(two_servers, [{"network": "hte"}, {"network": "lln"}],
                                                      port_tags=[tag]))
    assert both["changed"], both.get("msg")
    lln = {i["port_id"] for i in both["interfaces"] if i["network"] == "lln"}
    # The spec without LLN, and nothing of the first run kept: the tag in Neutron says what to prune.
    hte_only = ansible_module("os_server_interface", args(two_servers, [{"network": "hte"}], port_tags=[tag]))
    assert not hte_only["changed"]
    keep = [i["port_id"] for i in hte_only["interfaces"]]
    pruned = ansible_module("os_port_prune", {"cloud": "sandbox", "tags": [tag], "keep": keep, "poll_interval": 1})
    assert pruned["changed"], pruned.get("msg")
    assert {p["port_id"] for p in pruned["pruned"]} == lln
    left = {p.id: p for p in conn.network.ports(tags=tag)}
    assert set(left) == set(keep) and all(p.device_id for p in left.values())
    lln_id = conn.network.find_network("lln").id
    for name in two_servers:
        server = conn.compute.find_server(name)
        assert not [p for p in conn.network.ports(device_id=server.id) if p.network_id == lln_id]
    assert not ansible_module("os_port_prune", {"cloud": "sandbox", "tags": [tag], "keep": keep})["changed"]


def test_an_interrupted_runs_unattached_port_is_adopted_not_made_twice(conn, two_servers, unique_name):
    tag = f"container-infra-cluster:{unique_name}"
    hte = conn.network.find_network("hte")
    name = f"{two_servers[0]}-hte"
    # What a run killed between making the port and attaching it leaves behind.
    stray = conn.network.create_port(network_id=hte.id, name=name, description=DESCRIPTION)
    conn.network.set_tags(stray, [TOOLKIT_TAG])
    done = ansible_module("os_server_interface", args(two_servers, [{"network": "hte"}], port_tags=[tag]))
    assert done["changed"], done.get("msg")
    actions = {i["server"]: (i["action"], i["port_id"]) for i in done["interfaces"]}
    assert actions[two_servers[0]] == ("adopt", stray.id)
    assert actions[two_servers[1]][0] == "create"
    named = list(conn.network.ports(network_id=hte.id, name=name))
    assert [p.id for p in named] == [stray.id]
    assert named[0].device_id == conn.compute.find_server(two_servers[0]).id
    assert set(named[0].tags) == {TOOLKIT_TAG, tag}
    again = ansible_module("os_server_interface", args(two_servers, [{"network": "hte"}], port_tags=[tag]))
    assert not again["changed"]
