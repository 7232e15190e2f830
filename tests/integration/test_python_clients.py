"""The Python clients the toolkit builds on, unchanged, against the sandbox."""

from __future__ import annotations

import time

import pytest
from heatclient import client as heat_client
from magnumclient import client as magnum_client
from manilaclient import client as manila_client

RANDOM_STACK = """
heat_template_version: 2021-04-16
resources:
  secret:
    type: OS::Heat::RandomString
    properties: {length: 12}
outputs:
  length:
    value: {get_attr: [secret, value]}
"""


def test_openstacksdk_sees_the_seeded_cloud(conn):
    assert {"public", "private", "hte", "lln"} <= {net.name for net in conn.network.networks()}
    flavors = {flavor.name: flavor for flavor in conn.compute.flavors()}
    assert flavors["bm.gpu.a100"].extra_specs["gpu:count"] == "4"
    image = conn.image.find_image("fedora-coreos-sandbox")
    assert image.os_admin_user == "core"  # a known Glance property: an attribute in openstacksdk
    assert conn.network.find_network("lln").mtu == 65520


@pytest.mark.parametrize("version,id_field", [("1.1", "stack_id"), ("1.12", "stack_id"), ("latest", "cluster_id")])
def test_magnumclient_negotiates_microversions(conn, version, id_field):
    magnum = magnum_client.Client("1", session=conn.session, api_version=version, region_name="RegionOne")
    assert isinstance(magnum.clusters.list(), list)
    assert isinstance(magnum.cluster_templates.list(), list)
    response = conn.session.get("/", endpoint_filter={"service_type": "container-infra"}, raise_exc=False,
                                headers={"OpenStack-API-Version": f"container-infra {version}"})
    assert "1.14" in response.headers["OpenStack-API-Maximum-Version"]


def test_magnumclient_rejects_an_unsupported_microversion(conn):
    response = conn.session.get("/v1/clusters", endpoint_filter={"service_type": "container-infra"},
                                raise_exc=False, headers={"OpenStack-API-Version": "container-infra 1.99"})
    assert response.status_code == 406


def test_heatclient_stack_lifecycle(conn, unique_name):
    heat = heat_client.Client("1", session=conn.session, region_name="RegionOne")
    created = heat.stacks.create(stack_name=unique_name, template=RANDOM_STACK)
    stack_id = created["stack"]["id"]
    try:
        for _ in range(60):
            stack = heat.stacks.get(stack_id)
            if stack.stack_status != "CREATE_IN_PROGRESS":
                break
            time.sleep(1)
        assert stack.stack_status == "CREATE_COMPLETE"
        outputs = {o["output_key"]: o["output_value"] for o in stack.outputs}
        assert len(outputs["length"]) == 12
        assert unique_name in {s.stack_name for s in heat.stacks.list()}
    finally:
        heat.stacks.delete(stack_id)


def test_manilaclient_lists_types_and_pools(admin_conn):
    manila = manila_client.Client("2.65", session=admin_conn.session, service_type="sharev2",
                                  region_name="RegionOne")
    assert "cephfs" in {t.name for t in manila.share_types.list()}
    pools = manila.pools.list(detailed=True)
    assert pools and pools[0].capabilities["storage_protocol"] == "CEPHFS"

