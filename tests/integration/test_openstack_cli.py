"""The official openstack CLI, unchanged, against the sandbox: identity, compute, network, Heat, Manila."""

from __future__ import annotations

import json
import re
import time

import pytest

from container_infra.sandbox.layout import STORAGE_SERVICE_ADDRESS

HOT_NODE = """
heat_template_version: 2021-04-16
parameters:
  name: {type: string}
resources:
  port:
    type: OS::Neutron::Port
    properties: {network: private}
  server:
    type: OS::Nova::Server
    properties:
      name: {get_param: name}
      image: fedora-coreos-sandbox
      flavor: bm.standard
      networks: [{port: {get_resource: port}}]
outputs:
  ip: {value: {get_attr: [port, fixed_ips, 0, ip_address]}}
"""

HOT_SERVER_STACK = """
heat_template_version: 2021-04-16
parameters:
  name: {type: string}
resources:
  group:
    type: OS::Heat::ResourceGroup
    properties:
      count: 2
      resource_def:
        type: node.yaml
        properties:
          name: {list_join: ['-', [{get_param: name}, '%index%']]}
outputs:
  ips:
    value: {get_attr: [group, ip]}
"""


def wait_until(predicate, timeout=120, what="condition"):
    delay = 0.5
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 5)


def test_token_issue(osc):
    token = osc.json("token", "issue")
    assert token["id"] and token["project_id"]


def test_catalog_public_endpoints_go_through_the_proxy(osc_admin):
    endpoints = osc_admin.json("endpoint", "list", "--interface", "public")
    ports = {endpoint["Service Type"]: int(re.search(r":(\d+)", endpoint["URL"]).group(1)) for endpoint in endpoints}
    assert ports["identity"] == 5000
    assert ports["container-infra"] == 9511
    assert {"compute", "network", "orchestration", "sharev2", "image", "placement"} <= set(ports)


def test_server_port_and_floating_ip_lifecycle(osc, osc_admin, unique_name):
    server = osc.json("server", "create", unique_name, "--image", "fedora-coreos-sandbox", "--flavor", "bm.standard",
                      "--network", "private", "--wait")
    try:
        assert server["status"] == "ACTIVE"
        listed = {item["Name"] for item in osc.json("server", "list", "--name", unique_name)}
        assert unique_name in listed

        port = osc.json("port", "create", f"{unique_name}-hte", "--network", "hte")
        osc.run("server", "add", "port", server["id"], port["id"])
        attached = wait_until(
            lambda: (p := osc.json("port", "show", port["id"]))["status"] == "ACTIVE" and p, what="port ACTIVE"
        )
        assert attached["device_id"] == server["id"]
        # binding:host_id is an admin-only attribute in Neutron's policy.
        assert osc_admin.json("port", "show", port["id"])["binding_host_id"] == "sandbox-compute-1"
        addresses = osc.json("server", "show", server["id"])["addresses"]
        assert "hte" in addresses and "private" in addresses
        assert {p["ID"] for p in osc.json("port", "list", "--server", server["id"])} >= {port["id"]}

        primary = next(p for p in osc.json("port", "list", "--server", server["id"], "--network", "private"))
        fip = osc.json("floating", "ip", "create", "public", "--port", primary["ID"])
        assert fip["floating_ip_address"].startswith("127.42.0.")
        assert fip["port_id"] == primary["ID"]
        osc.run("floating", "ip", "delete", fip["id"])

        osc.run("server", "remove", "port", server["id"], port["id"])
        wait_until(lambda: not osc.json("port", "show", port["id"])["device_id"], what="port detached")
        osc.run("port", "delete", port["id"])
    finally:
        osc.run("server", "delete", "--wait", server["id"], check=False)
    assert not osc.json("server", "list", "--name", unique_name)


def test_heat_stack_with_nested_servers(osc, unique_name, tmp_path):
    template = tmp_path / "stack.yaml"
    template.write_text(HOT_SERVER_STACK)
    (tmp_path / "node.yaml").write_text(HOT_NODE)
    osc.json("stack", "create", unique_name, "-t", str(template), "--parameter", f"name={unique_name}")
    try:
        status = wait_until(
            lambda: (st := osc.json("stack", "show", unique_name)["stack_status"]) != "CREATE_IN_PROGRESS" and st,
            what="stack created",
        )
        assert status == "CREATE_COMPLETE"
        assert unique_name in {s["Stack Name"] for s in osc.json("stack", "list")}
        shown = osc.json("stack", "show", unique_name)
        assert shown["stack_status"] == "CREATE_COMPLETE"
        resources = osc.json("stack", "resource", "list", unique_name, "--nested-depth", "3")
        servers = [r for r in resources if r["resource_type"] == "OS::Nova::Server"]
        assert len(servers) == 2
        assert all(r["resource_status"] == "CREATE_COMPLETE" for r in servers)
        output = osc.json("stack", "output", "show", unique_name, "ips")
        ips = output["output_value"]
        ips = json.loads(ips) if isinstance(ips, str) else ips
        assert len(ips) == 2 and all(ip.startswith("10.0.0.") for ip in ips)
    finally:
        osc.run("stack", "delete", "--yes", "--wait", unique_name, check=False)
    assert unique_name not in {s["Stack Name"] for s in osc.json("stack", "list")}


def test_cephfs_share_with_cephx_access(osc, unique_name):
    types = {t["Name"] for t in osc.json("share", "type", "list")}
    assert "cephfs" in types
    osc.json("share", "create", "CEPHFS", "1", "--name", unique_name, "--share-type", "cephfs", "--wait")
    try:
        assert osc.json("share", "show", unique_name)["status"] == "available"
        osc.run("share", "access", "create", unique_name, "cephx", f"{unique_name}-user")
        rules = wait_until(
            lambda: [r for r in osc.json("share", "access", "list", unique_name) if r["State"] == "active"],
            what="access rule active",
        )
        assert rules[0]["Access To"] == f"{unique_name}-user"
        assert rules[0]["Access Key"]
        locations = osc.json("share", "export", "location", "list", unique_name)
        path = locations[0]["Path"]
        # Manila's CephFS native driver on the sandbox's Ceph: the monitor on the storage network, the
        # subvolume named after the share instance (tests/integration/test_storage.py checks it in Ceph).
        uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        assert re.fullmatch(rf"{STORAGE_SERVICE_ADDRESS}:6789:/volumes/_nogroup/{uuid}/{uuid}", path), path
    finally:
        osc.run("share", "delete", "--wait", unique_name, check=False)


def test_share_refuses_ip_access_on_cephfs(osc, unique_name):
    osc.json("share", "create", "CEPHFS", "1", "--name", unique_name, "--share-type", "cephfs", "--wait")
    try:
        result = osc.run("share", "access", "create", unique_name, "ip", "10.0.0.5", check=False)
        if result.returncode == 0:
            # Manila accepts the rule and the driver refuses it: the rule ends in error.
            state = wait_until(
                lambda: [r["State"] for r in osc.json("share", "access", "list", unique_name)
                         if r["State"] != "queued_to_apply"],
                what="access rule settled",
            )
            assert state == ["error"]
    finally:
        osc.run("share", "delete", "--wait", unique_name, check=False)


@pytest.mark.parametrize("network,mtu", [("hte", 9000), ("lln", 65520)])
def test_provider_networks(osc, network, mtu):
    shown = osc.json("network", "show", network)
    assert shown["mtu"] == mtu
    assert shown["shared"] is True
    subnet = osc.json("subnet", "show", f"{network}-subnet")
    assert subnet["enable_dhcp"] is (network == "hte")

