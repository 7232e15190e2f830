"""Magnum through the official clients in both eras: the Heat-era driver (a real Heat stack) and the
Cluster-API-era driver (servers straight from Nova, no stack)."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
import yaml
from cluster_access import cluster_status, wait_cluster_gone, wait_status

from container_infra.sandbox.nodes import NODE_LABEL


def stack_ref(cluster: dict) -> str:
    """The stack id (Heat era) or cluster API name: `stack_id` before microversion 1.13, `cluster_id` after."""
    return cluster.get("cluster_id") or cluster["stack_id"]


def node_containers(server_ids) -> dict[str, list[str]]:
    """server id -> its node containers (the sandbox's Docker compute host labels them)."""
    return {
        server_id: subprocess.run(["docker", "ps", "-aq", "--filter", f"label={NODE_LABEL}={server_id}"],
                                  capture_output=True, text=True, check=True).stdout.split()
        for server_id in server_ids
    }


def wait_gone(predicate, timeout: float = 300, what: str = "deletion") -> None:
    deadline = time.monotonic() + timeout
    while predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not finished within {timeout} s")
        time.sleep(2)


@pytest.fixture(scope="module")
def keypair(osc):
    name = f"tmagnum-{int(time.time())}"
    osc.run("keypair", "create", name)
    yield name
    osc.run("keypair", "delete", name, check=False)


def make_template(osc, name, image, keypair, *extra):
    return osc.json(
        "coe", "cluster", "template", "create", name, "--coe", "kubernetes", "--image", image,
        "--external-network", "public", "--fixed-network", "private", "--fixed-subnet", "private-subnet",
        "--flavor", "bm.standard", "--master-flavor", "bm.standard", "--server-type", "bm",
        "--keypair", keypair, *extra,
    )


def test_heat_era_cluster_lifecycle(osc, keypair, unique_name, tmp_path):
    template = make_template(osc, f"{unique_name}-t1", "fedora-coreos-sandbox", keypair)
    template2 = make_template(osc, f"{unique_name}-t2", "fedora-coreos-sandbox", keypair, "--labels", "version=2")
    cluster = f"{unique_name}-c"
    servers = set()
    try:
        assert {t["name"] for t in osc.json("coe", "cluster", "template", "list")} >= {template["name"]}
        assert osc.json("coe", "cluster", "template", "show", template["uuid"])["coe"] == "kubernetes"

        osc.run("coe", "cluster", "create", cluster, "--cluster-template", template["name"],
                "--master-count", "1", "--node-count", "1")
        assert cluster in {c["name"] for c in osc.json("coe", "cluster", "list")}
        shown = wait_status(osc, cluster)
        assert shown["status"] == "CREATE_COMPLETE", shown["status_reason"]
        assert "no Kubernetes control plane" in shown["status_reason"]
        assert re.fullmatch(r"https://127\.42\.0\.\d+:6443", shown["api_address"])

        # The cluster's Heat stack, shaped like the removed Kubernetes driver's.
        stack = osc.json("stack", "show", stack_ref(shown))
        assert stack["stack_status"] == "CREATE_COMPLETE"
        resources = osc.json("stack", "resource", "list", stack_ref(shown), "--nested-depth", "2")
        names = {r["resource_name"] for r in resources}
        assert {"kube_masters", "kube_minions", "kube-master", "kube-minion"} <= names
        assert sum(r["resource_type"] == "OS::Nova::Server" for r in resources) == 2
        # Clusters' servers are machines by default (zone docker): one node container each.
        servers = {r["physical_resource_id"] for r in resources if r["resource_type"] == "OS::Nova::Server"}
        assert all(len(found) == 1 for found in node_containers(servers).values())
        minions = osc.json("stack", "output", "show", stack_ref(shown), "kube_minions")["output_value"]
        assert len(minions) == 1

        osc.run("coe", "cluster", "resize", cluster, "2")
        resized = wait_status(osc, cluster, phase="UPDATE_")
        assert resized["status"] == "UPDATE_COMPLETE", resized["status_reason"]
        assert resized["node_count"] == 2
        assert len(osc.json("stack", "output", "show", stack_ref(shown), "kube_minions")["output_value"]) == 2

        # Kubernetes credentials: a kubeconfig signed by the cluster's CA in Magnum.
        osc.run("coe", "cluster", "config", cluster, "--dir", str(tmp_path), "--force")
        kubeconfig = yaml.safe_load((tmp_path / "config").read_text())
        assert kubeconfig["clusters"][0]["cluster"]["server"] == shown["api_address"]
        assert kubeconfig["users"][0]["user"]["client-certificate-data"]

        osc.run("coe", "nodegroup", "create", cluster, "extra", "--node-count", "1", "--role", "worker")
        deadline = time.monotonic() + 300
        while (ng := osc.json("coe", "nodegroup", "show", cluster, "extra"))["status"].endswith("IN_PROGRESS"):
            assert time.monotonic() < deadline, "nodegroup creation did not finish"
            time.sleep(3)
        assert ng["status"] == "CREATE_COMPLETE", ng["status_reason"]
        assert "extra" in {n["name"] for n in osc.json("coe", "nodegroup", "list", cluster)}
        osc.run("coe", "nodegroup", "delete", cluster, "extra")
        wait_gone(lambda: "extra" in {n["name"] for n in osc.json("coe", "nodegroup", "list", cluster)},
                  what="nodegroup deletion")

        osc.run("coe", "cluster", "upgrade", cluster, template2["uuid"])
        upgraded = wait_status(osc, cluster, phase="UPDATE_")
        assert upgraded["status"] == "UPDATE_COMPLETE", upgraded["status_reason"]
        assert upgraded["cluster_template_id"] == template2["uuid"]
    finally:
        osc.run("coe", "cluster", "delete", cluster, check=False)
        wait_cluster_gone(osc, cluster)
        for name in (f"{unique_name}-t1", f"{unique_name}-t2"):
            osc.run("coe", "cluster", "template", "delete", name, check=False)
    assert not [s for s in osc.json("stack", "list") if s["Stack Name"].startswith(unique_name[:20])]
    assert servers and not any(node_containers(servers).values())


def test_cluster_api_era_cluster_has_no_stack(osc, keypair, unique_name):
    template = make_template(osc, f"{unique_name}-t", "ubuntu-capi-sandbox", keypair)
    cluster = f"{unique_name}-c"
    try:
        osc.run("coe", "cluster", "create", cluster, "--cluster-template", template["name"], "--node-count", "1")
        shown = wait_status(osc, cluster)
        assert shown["status"] == "CREATE_COMPLETE", shown["status_reason"]
        stack_id = stack_ref(shown)
        assert re.fullmatch(r"kube-[a-z0-9]{5}", stack_id)
        assert osc.run("stack", "show", stack_id, check=False).returncode != 0
        assert not shown["node_addresses"]
        servers = {s["Name"] for s in osc.json("server", "list", "--name", f"^{stack_id}-")}
        assert len(servers) == 2
        assert sum("-control-plane-" in name for name in servers) == 1
        assert sum("-default-worker-" in name for name in servers) == 1
        assert "no Kubernetes control plane" in shown["status_reason"]
        server_ids = {s["ID"] for s in osc.json("server", "list", "--name", f"^{stack_id}-")}
        assert all(len(found) == 1 for found in node_containers(server_ids).values())

        osc.run("coe", "cluster", "resize", cluster, "2")
        resized = wait_status(osc, cluster, phase="UPDATE_")
        assert resized["status"] == "UPDATE_COMPLETE", resized["status_reason"]
        assert len(osc.json("server", "list", "--name", f"^{stack_id}-")) == 3
    finally:
        osc.run("coe", "cluster", "delete", cluster, check=False)
        wait_cluster_gone(osc, cluster)
        osc.run("coe", "cluster", "template", "delete", template["name"], check=False)
    assert not osc.json("server", "list", "--name", f"^{stack_id}-")
    assert server_ids and not any(node_containers(server_ids).values())


def test_injected_create_failure_reports_reason_and_faults(osc, keypair, unique_name):
    template = make_template(osc, f"{unique_name}-t", "fedora-coreos-sandbox", keypair)
    cluster = f"{unique_name}-c"
    try:
        osc.run("coe", "cluster", "create", cluster, "--cluster-template", template["name"],
                "--labels", "sandbox_fail_reason=injected disk failure", "--merge-labels")
        shown = wait_status(osc, cluster)
        assert shown["status"] == "CREATE_FAILED"
        assert "injected disk failure" in shown["status_reason"]
        assert shown["faults"]
        assert osc.json("stack", "show", stack_ref(shown))["stack_status"] == "CREATE_FAILED"
    finally:
        osc.run("coe", "cluster", "delete", cluster, check=False)
        wait_cluster_gone(osc, cluster)
        osc.run("coe", "cluster", "template", "delete", template["name"], check=False)


def test_two_deletes_a_moment_apart_delete_a_heat_era_cluster(osc, keypair, unique_name):
    """Issue 15, finding 3: a second `coe cluster delete` 0.3 s after the first (Heat would restart the
    first and fail on the nested stacks it had removed) still ends with the cluster and its stack gone,
    never DELETE_FAILED. Servers on the fake host (zone scale): the test is about the stacks."""
    template = make_template(osc, f"{unique_name}-t", "fedora-coreos-sandbox", keypair,
                             "--labels", "availability_zone=scale")
    cluster = f"{unique_name}-c"
    try:
        osc.run("coe", "cluster", "create", cluster, "--cluster-template", template["name"],
                "--master-count", "1", "--node-count", "1")
        shown = wait_status(osc, cluster)
        assert shown["status"] == "CREATE_COMPLETE", shown["status_reason"]
        first = subprocess.Popen([osc.binary, "--os-cloud", osc.cloud, "coe", "cluster", "delete", cluster],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        osc.run("coe", "cluster", "delete", cluster, check=False)
        first.communicate(timeout=120)
        deadline = time.monotonic() + 300
        while (status := cluster_status(osc.cloud, cluster)) is not None:
            assert status != "DELETE_FAILED", osc.run("coe", "cluster", "show", cluster, "-f", "value",
                                                      "-c", "status_reason", check=False).stdout
            assert time.monotonic() < deadline, "cluster deletion did not finish"
            time.sleep(2)
        assert not [s for s in osc.json("stack", "list") if s["Stack Name"].startswith(stack_ref(shown))]
    finally:
        osc.run("coe", "cluster", "delete", cluster, check=False)
        wait_cluster_gone(osc, cluster)
        osc.run("coe", "cluster", "template", "delete", template["name"], check=False)
