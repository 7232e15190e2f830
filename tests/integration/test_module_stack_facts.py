"""os_stack_facts and node discovery against the sandbox: a Heat-era and a Cluster-API-era cluster."""

from __future__ import annotations

import re
import time

import pytest
from ansible_runner import ansible_module
from cluster_access import wait_cluster_gone

from container_infra.cloud import Cloud
from container_infra.discovery import discover

FINAL = re.compile(r"_(COMPLETE|FAILED)$")


def wait_final(magnum, name, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster = magnum.clusters.get(name).to_dict()
            if FINAL.search(cluster["status"]):
                return cluster
        except Exception:  # noqa: S110 - Magnum answers 400 early in CREATE_IN_PROGRESS
            pass
        assert time.monotonic() < deadline, f"cluster {name} not final in {timeout} s"
        time.sleep(3)


@pytest.fixture(scope="module")
def clusters(osc):
    """One small cluster per era (1 master, 2 workers), created in parallel through the CLI."""
    stem = f"tsf{int(time.time()) % 100000}"
    osc.run("keypair", "create", f"{stem}-kp")
    names = {}
    for era, image in (("heat", "fedora-coreos-sandbox"), ("capi", "ubuntu-capi-sandbox")):
        osc.run("coe", "cluster", "template", "create", f"{stem}-{era}", "--coe", "kubernetes", "--image", image,
                "--external-network", "public", "--fixed-network", "private", "--fixed-subnet", "private-subnet",
                "--flavor", "bm.standard", "--master-flavor", "bm.standard", "--server-type", "bm",
                "--keypair", f"{stem}-kp")
        osc.run("coe", "cluster", "create", f"{stem}-{era}-c", "--cluster-template", f"{stem}-{era}",
                "--master-count", "1", "--node-count", "2")
        names[era] = f"{stem}-{era}-c"
    cloud = Cloud.from_params({"cloud": "sandbox"})
    found = {era: wait_final(cloud.magnum(), name) for era, name in names.items()}
    yield cloud, found
    for name in names.values():
        osc.run("coe", "cluster", "delete", name, check=False)
    wait_cluster_gone(osc, *names.values())
    for era in names:
        osc.run("coe", "cluster", "template", "delete", f"{stem}-{era}", check=False)
    osc.run("keypair", "delete", f"{stem}-kp", check=False)


def test_stack_facts_of_a_heat_era_cluster(clusters):
    _, found = clusters
    cluster = found["heat"]
    assert cluster["status"] == "CREATE_COMPLETE", cluster["status_reason"]
    stack_id = cluster.get("cluster_id") or cluster["stack_id"]
    facts = ansible_module("os_stack_facts", {"cloud": "sandbox", "stack": stack_id, "nested_depth": 3},
                           check=True)
    assert facts["changed"] is False and facts["stack"]["status"] == "CREATE_COMPLETE"
    assert facts["api_calls"] <= 6  # token + stack (redirected) + ONE nested listing
    assert set(facts["outputs"]) >= {"kube_masters", "kube_minions", "api_address"}
    assert [(s["role"], s["group"], s["index"]) for s in facts["servers"]] == [
        ("master", "kube_masters", 0), ("worker", "kube_minions", 0), ("worker", "kube_minions", 1)]
    ports = ansible_module("os_stack_facts", {"cloud": "sandbox", "stack": facts["stack"]["name"],
                                              "resource_type": ["OS::Neutron::Port"], "resource_name": "kube_*_eth0"})
    assert len(ports["resources"]) == 3
    assert all(r["parent"] in ("0", "1") and r["depth"] == 2 for r in ports["resources"])
    missing = ansible_module("os_stack_facts", {"cloud": "sandbox", "stack": "modb-no-such-stack"})
    assert missing["failed"] and "was not found" in missing["msg"] and "\n" not in missing["msg"]


def test_discovery_gives_the_same_shape_in_both_eras(clusters):
    cloud, found = clusters
    results = {}
    for era, cluster in found.items():
        assert cluster["status"] == "CREATE_COMPLETE", cluster["status_reason"]
        cloud.api_calls.reset()
        results[era] = discover(cloud, cluster)
        assert cloud.api_calls.total <= 4, (era, cloud.api_calls)
    assert results["heat"]["era"] == "heat" and results["capi"]["era"] == "cluster_api"
    shapes = {era: {tuple(sorted(node)) for node in result["nodes"]} for era, result in results.items()}
    assert shapes["heat"] == shapes["capi"]
    for result in results.values():
        nodes = result["nodes"]
        assert [(n["role"], n["nodegroup"]) for n in nodes] == [
            ("master", "default-master"), ("worker", "default-worker"), ("worker", "default-worker")]
        assert all(n["flavor"] == "bm.standard" and n["addresses"]["private"]["fixed_ip"] for n in nodes)
        assert nodes[0]["addresses"]["private"]["floating_ip"].startswith("127.42.0.")

