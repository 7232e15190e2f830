"""Each kind of fault, injected at the sandbox's public endpoints, observed by a real client, then cleared."""

from __future__ import annotations

import time

import openstack
import pytest
import requests
from keystoneauth1 import exceptions as ksa_exceptions
from magnumclient import client as magnum_client
from magnumclient import exceptions as magnum_exceptions

from container_infra.sandbox.faults import FaultClient


@pytest.fixture
def faults(sandbox):
    client = FaultClient()
    client.reset()
    yield client
    client.reset()


@pytest.fixture
def fresh_conn(sandbox):
    # A connection of its own, so no cached endpoint discovery hides the first faulted request.
    return openstack.connect(cloud="sandbox")


@pytest.mark.parametrize("status,exception", [(500, magnum_exceptions.InternalServerError),
                                              (503, magnum_exceptions.ServiceUnavailable)])
def test_status_fault_reaches_magnumclient_then_expires(faults, fresh_conn, status, exception):
    magnum = magnum_client.Client("1", session=fresh_conn.session, region_name="RegionOne")
    magnum.clusters.list()
    faults.add_fault(service="container-infra", method="GET", path="/v1/clusters*",
                     status=status, count=1)
    with pytest.raises(exception):
        magnum.clusters.list()
    assert isinstance(magnum.clusters.list(), list)


def test_conflict_on_interface_attach_is_seen_by_the_cli(faults, osc, unique_name):
    server = osc.json("server", "create", unique_name, "--image", "fedora-coreos-sandbox", "--flavor", "bm.standard",
                      "--network", "private", "--wait")
    try:
        port = osc.json("port", "create", f"{unique_name}-p", "--network", "hte")
        faults.add_fault(service="compute", method="POST", path=f"/v2.1/servers/{server['id']}/os-interface",
                         status=409, count=1)
        result = osc.run("server", "add", "port", server["id"], port["id"], check=False)
        assert result.returncode != 0 and "409" in result.stderr
        osc.run("server", "add", "port", server["id"], port["id"])
    finally:
        osc.run("server", "delete", "--wait", server["id"], check=False)
        osc.run("port", "delete", f"{unique_name}-p", check=False)


def test_connection_reset_is_seen_by_openstacksdk(faults, fresh_conn):
    list(fresh_conn.network.networks())
    # openstacksdk retries a connection failure once by itself: one reset is ridden over...
    rule = faults.add_fault(service="network", method="GET", path="/v2.0/networks*", reset=True, count=1)
    assert list(fresh_conn.network.networks())
    assert [r["hits"] for r in faults.list_faults(expired=True) if r["id"] == rule["id"]] == [1]
    # ...two in a row reach the caller.
    faults.add_fault(service="network", method="GET", path="/v2.0/networks*", reset=True, count=2)
    with pytest.raises((ksa_exceptions.ConnectFailure, openstack.exceptions.SDKException,
                        requests.exceptions.ConnectionError)):
        list(fresh_conn.network.networks())
    assert list(fresh_conn.network.networks())


def test_latency_slows_every_request_and_clears(faults, fresh_conn):
    list(fresh_conn.compute.flavors())

    def timed() -> float:
        started = time.monotonic()
        list(fresh_conn.compute.flavors())
        return time.monotonic() - started

    baseline = timed()
    faults.set_latency(300)
    assert timed() >= 0.3
    faults.set_latency(0)
    assert timed() < baseline + 0.3


def test_requests_are_counted_per_service(faults, fresh_conn):
    faults.reset_counts()
    list(fresh_conn.network.networks())
    list(fresh_conn.network.ports())
    counts = faults.counts()
    assert counts["network"]["by_method"]["GET"] >= 2
    assert counts["container-infra"]["total"] == 0


def test_cli_lists_and_clears_rules(faults, sandbox):
    from click.testing import CliRunner

    from container_infra.cli import main

    runner = CliRunner()
    added = runner.invoke(main, ["sandbox", "fault", "add", "--service", "orchestration", "--path", "/v1/*",
                                 "--status", "503", "--count", "3"])
    assert added.exit_code == 0, added.output
    assert len(faults.list_faults()) == 1
    assert runner.invoke(main, ["sandbox", "fault", "clear"]).exit_code == 0
    assert faults.list_faults() == []


def test_attach_refused_inside_nova_for_a_chosen_server(osc, unique_name):
    server = osc.json("server", "create", unique_name, "--image", "fedora-coreos-sandbox", "--flavor", "bm.standard",
                      "--network", "private", "--property", "sandbox_fail_attach=switch port down", "--wait")
    try:
        port = osc.json("port", "create", f"{unique_name}-p", "--network", "lln")
        result = osc.run("server", "add", "port", server["id"], port["id"], check=False)
        assert result.returncode != 0
        assert "Failed to attach network adapter device" in result.stderr
        assert osc.json("server", "show", server["id"])["status"] == "ACTIVE"
        assert not osc.json("port", "show", port["id"])["device_id"]
        osc.run("server", "unset", "--property", "sandbox_fail_attach", server["id"])
        osc.run("server", "add", "port", server["id"], port["id"])
        assert osc.json("port", "show", port["id"])["device_id"] == server["id"]
    finally:
        osc.run("server", "delete", "--wait", server["id"], check=False)
        osc.run("port", "delete", f"{unique_name}-p", check=False)
