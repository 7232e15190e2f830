"""The roles' filters (functions of container_infra.inventory and container_infra.swarm_spec), the progress
callback, the container_infra_nic module and os_container_infra_status's pure parts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from container_infra import inventory, magnum, magnum_cluster, server_ports, swarm_spec

REPO = Path(__file__).resolve().parents[2]


def load(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem.replace("-", "_"), REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_filter_plugin_names_package_functions():
    filters = load("filter_plugins/container_infra.py").FilterModule().filters()
    assert filters["container_infra_hostvars"] is inventory.hostvars_of
    assert filters["container_infra_swarm_spec_problems"] is swarm_spec.swarm_spec_problems
    assert {f.__module__ for f in filters.values()} == {"container_infra.inventory", "container_infra.magnum",
                                                        "container_infra.swarm_spec", "container_infra.credentials",
                                                        "container_infra.server_ports"}

INVENTORY = {
    "all": {
        "children": {
            "cluster_c1": {"hosts": {
                "m0": {"container_infra_role": "master", "container_infra_nodegroup": "default-master",
                       "container_infra_server_id": "id-m0",
                       "container_infra_networks": {"hte": {"port_id": "p-m0-hte", "mac": "fa:16:3e:00:00:01"},
                                                    "private": {"port_id": "p-m0-priv"}}},
                "w0": {"container_infra_role": "worker", "container_infra_nodegroup": "default-worker",
                       "container_infra_server_id": "id-w0",
                       "container_infra_networks": {"hte": {"port_id": "p-w0-hte"}, "lln": {"port_id": "p-w0-lln"}}},
                "g0": {"container_infra_role": "worker", "container_infra_nodegroup": "gpu",
                       "container_infra_server_id": "id-g0",
                       "container_infra_networks": {"lln": {"port_id": "p-g0-lln"}}},
            }},
            "masters": {"hosts": {"m0": {}}},
            "workers": {"hosts": {"w0": {}, "g0": {}}},
            "nodegroup_gpu": {"hosts": {"g0": {}}},
            "gpu": {"hosts": {"g0": {}}},
        }
    }
}


def test_host_groups_lists_every_group_of_each_host():
    groups = inventory.host_groups(INVENTORY)
    assert groups == {"g0": ["cluster_c1", "gpu", "nodegroup_gpu", "workers"],
                      "m0": ["cluster_c1", "masters"], "w0": ["cluster_c1", "workers"]}


def test_hostvars_merge_a_host_listed_in_several_groups():
    hostvars = inventory.hostvars_of(INVENTORY)
    assert hostvars["g0"]["container_infra_nodegroup"] == "gpu"
    assert set(hostvars) == {"m0", "w0", "g0"}


NODES = [{"name": "m0", "id": "id-m0", "role": "master", "nodegroup": "default-master"},
         {"name": "w0", "id": "id-w0", "role": "worker", "nodegroup": "default-worker"},
         {"name": "g0", "id": "id-g0", "role": "worker", "nodegroup": "gpu"}]


@pytest.mark.parametrize(("roles", "nodegroups", "expected"), [
    (None, None, ["id-g0", "id-m0", "id-w0"]),
    (["worker"], None, ["id-g0", "id-w0"]),
    (["master", "worker"], ["gpu"], ["id-g0"]),
    (["master"], ["gpu"], []),
])
def test_select_nodes_by_role_and_nodegroup(roles, nodegroups, expected):
    assert inventory.select_nodes(NODES, roles, nodegroups) == expected
    assert inventory.select_nodes([], roles, nodegroups) == []


def test_node_count_has_one_default():
    assert magnum.node_count({}) == magnum.node_count(None) == magnum.DEFAULT_NODE_COUNT == 1
    assert magnum.node_count({"node_count": 0}) == 0
    assert swarm_spec.swarm_stack_nodegroups({"nodegroups": [{"name": "g", "flavor": "f"}]})[0]["node_count"] == 1


def test_cluster_port_tag_fits_neutron():
    assert server_ports.cluster_port_tag("demo") == "container-infra-cluster:demo"
    long = server_ports.cluster_port_tag("c" * 80)
    assert len(long) <= server_ports.TAG_LIMIT and long != server_ports.cluster_port_tag("c" * 81)


def test_nic_interfaces_leave_out_what_is_unset():
    networks = {
        "hte": {"ip": "10.60.0.5", "prefix": 16, "mac": "fa:16:3e:00:00:05", "mtu": 9000, "ipoib_mode": None},
        "lln": {"ip": "10.70.0.5", "prefix": 16, "mac": "fa:16:3e:00:00:06", "mtu": 65520, "ipoib_mode": "connected"},
        "private": {"ip": "10.0.0.5", "prefix": 24, "mac": "fa:16:3e:00:00:07", "mtu": 1450},
    }
    out = inventory.nic_interfaces(networks, ["lln", "hte", "ib-missing"])
    assert out == [
        {"network": "hte", "mac": "fa:16:3e:00:00:05", "mtu": 9000, "address": "10.60.0.5/16"},
        {"network": "lln", "mac": "fa:16:3e:00:00:06", "mtu": 65520, "ipoib_mode": "connected",
         "address": "10.70.0.5/16"},
    ]


def test_progress_callback_prints_the_progress_line_on_retry():
    callback = load("callback_plugins/container_infra_progress.py").CallbackModule()
    shown = []
    callback._display = SimpleNamespace(display=lambda message, color=None: shown.append(message))
    host = SimpleNamespace(get_name=lambda: "localhost")
    callback.v2_runner_retry(SimpleNamespace(_result={"progress": "cluster c: CREATE_IN_PROGRESS"}, _host=host))
    callback.v2_runner_retry(SimpleNamespace(_result={"attempts": 2}, _host=host))
    assert shown == ["  [localhost] cluster c: CREATE_IN_PROGRESS"]


def test_progress_callback_prints_the_last_poll_of_a_wait_but_not_a_single_look():
    callback = load("callback_plugins/container_infra_progress.py").CallbackModule()
    shown = []
    callback._display = SimpleNamespace(display=lambda message, color=None: shown.append(message))
    host = SimpleNamespace(get_name=lambda: "localhost")
    # A wait that found the cluster settled at its first look (attempts 1) still prints what it found.
    callback.v2_runner_on_ok(SimpleNamespace(_result={"progress": "cluster c: CREATE_COMPLETE", "attempts": 1},
                                             _host=host))
    callback.v2_runner_on_ok(SimpleNamespace(_result={"progress": "cluster c: CREATE_COMPLETE"}, _host=host))
    assert shown == ["  [localhost] cluster c: CREATE_COMPLETE"]


@pytest.mark.parametrize(("value", "settled"), [
    ("CREATE_IN_PROGRESS", False), ("UPDATE_IN_PROGRESS", False), ("CREATE_COMPLETE", True),
    ("UPDATE_FAILED", True), (None, False), ("", False),
])
def test_settled_means_no_operation_in_progress(value, settled):
    assert magnum_cluster.settled(value) is settled


def test_progress_line_has_status_reason_nodes_and_time():
    line = magnum_cluster.progress_line("c1", "CREATE_IN_PROGRESS", "Stack CREATE started", 2, 5, 61.7)
    assert line == "cluster c1: CREATE_IN_PROGRESS - Stack CREATE started - 2/5 nodes ACTIVE - 61 s"
    long_reason = "x" * 300
    assert len(magnum_cluster.progress_line("c1", "CREATE_FAILED", long_reason, 0, 1, None)) < 200


# ------------------------------------------------------------------------------ container_infra_nic
nic = load("library/container_infra_nic.py")


class FakeNode:
    """A module stand-in over a fake /sys/class/net: records the commands it would run."""

    class Failed(Exception):
        pass

    def __init__(self, addresses: dict[str, list[str]], check_mode: bool = False):
        self.check_mode = check_mode
        self.commands: list[list[str]] = []
        self.addresses = addresses

    def run_command(self, command, check_rc=False):
        if command[:3] == ["ip", "-j", "addr"]:
            device = command[-1]
            info = [{"local": a.split("/")[0], "prefixlen": int(a.split("/")[1])} for a in self.addresses[device]]
            import json
            return 0, json.dumps([{"addr_info": info}]), ""
        self.commands.append(command)
        return 0, "", ""

    def fail_json(self, msg, **_):
        raise self.Failed(msg)


@pytest.fixture
def sysfs(tmp_path, monkeypatch):
    def device(name, mac, mtu, flags, mode=None):
        path = tmp_path / name
        path.mkdir()
        (path / "address").write_text(mac + "\n")
        (path / "mtu").write_text(f"{mtu}\n")
        (path / "flags").write_text(flags + "\n")
        if mode:
            (path / "mode").write_text(mode + "\n")
    device("eth1", "fa:16:3e:00:00:01", 1500, "0x1002")
    device("ib0", "fa:16:3e:00:00:02", 2044, "0x1003", mode="datagram")
    monkeypatch.setattr(nic, "SYS_NET", str(tmp_path))
    return tmp_path


def test_nic_brings_a_fresh_device_to_its_port(sysfs):
    node = FakeNode({"eth1": []})
    result = nic.configure(node, {"mac": "FA:16:3E:00:00:01", "mtu": 9000, "address": "10.60.0.5/16",
                                  "network": "hte"}, nic.devices_by_mac())
    assert result["device"] == "eth1"
    assert node.commands == [["ip", "link", "set", "dev", "eth1", "mtu", "9000"],
                             ["ip", "link", "set", "dev", "eth1", "up"],
                             ["ip", "addr", "add", "10.60.0.5/16", "dev", "eth1"]]


def test_nic_in_its_state_changes_nothing(sysfs):
    (sysfs / "eth1" / "mtu").write_text("9000\n")
    (sysfs / "eth1" / "flags").write_text("0x1003\n")
    node = FakeNode({"eth1": ["10.60.0.5/16"]})
    result = nic.configure(node, {"mac": "fa:16:3e:00:00:01", "mtu": 9000, "address": "10.60.0.5/16"},
                           nic.devices_by_mac())
    assert result["changes"] == [] and node.commands == []


def test_nic_check_mode_reports_without_acting(sysfs):
    node = FakeNode({"ib0": []}, check_mode=True)
    result = nic.configure(node, {"mac": "fa:16:3e:00:00:02", "mtu": 65520, "ipoib_mode": "connected"},
                           nic.devices_by_mac())
    assert result["changes"] == ["ipoib mode datagram -> connected", "mtu 2044 -> 65520"]
    assert node.commands == [] and (sysfs / "ib0" / "mode").read_text().strip() == "datagram"


def test_nic_sets_ipoib_mode_through_sysfs(sysfs):
    node = FakeNode({"ib0": []})
    result = nic.configure(node, {"mac": "fa:16:3e:00:00:02", "ipoib_mode": "connected"}, nic.devices_by_mac())
    assert result["ipoib_mode_applied"] is True
    assert (sysfs / "ib0" / "mode").read_text() == "connected"


def test_nic_on_ethernet_ignores_ipoib_mode(sysfs):
    node = FakeNode({"eth1": []})
    result = nic.configure(node, {"mac": "fa:16:3e:00:00:01", "ipoib_mode": "connected"}, nic.devices_by_mac())
    assert result["ipoib_mode_applied"] is False


@pytest.mark.parametrize(("spec", "words"), [
    ({"mac": "fa:16:3e:99:99:99", "network": "lln"}, "no network device on this node has MAC fa:16:3e:99:99:99"),
    ({"mac": "fa:16:3e:00:00:01", "address": "10.60.0.5"}, "is not an address with a prefix length"),
])
def test_nic_bad_input_is_one_sentence(sysfs, spec, words):
    with pytest.raises(FakeNode.Failed, match=words):
        nic.configure(FakeNode({"eth1": []}), spec, nic.devices_by_mac())


def test_leaving_workers_are_the_highest_indexes():
    hostvars = {f"s-worker-{i}": {"container_infra_role": "worker"} for i in (0, 1, 2, 10)}
    hostvars["s-manager-0"] = {"container_infra_role": "master"}
    hostvars["other-worker-5"] = {"container_infra_role": "worker"}
    assert swarm_spec.leaving_workers(hostvars, "s", 2) == ["s-worker-10", "s-worker-2"]
    assert swarm_spec.leaving_workers(hostvars, "s", 11) == []


def test_leaving_workers_per_nodegroup_and_whole_removed_nodegroups():
    worker = {"container_infra_role": "worker", "container_infra_nodegroup": "default-worker"}
    hostvars = {"s-worker-0": worker, "s-worker-1": worker,
                "s-manager-0": {"container_infra_role": "master", "container_infra_nodegroup": "default-master"}}
    hostvars |= {f"s-gpu-{i}": {"container_infra_role": "worker", "container_infra_nodegroup": "gpu"} for i in range(3)}
    hostvars |= {"s-io-0": {"container_infra_role": "worker", "container_infra_nodegroup": "io"}}
    kept = [{"name": "gpu", "node_count": 1}, {"name": "io", "node_count": 1}]
    assert swarm_spec.leaving_workers(hostvars, "s", 2, kept) == ["s-gpu-1", "s-gpu-2"]
    assert swarm_spec.leaving_workers(hostvars, "s", 1, [{"name": "gpu", "node_count": 3}]) == ["s-io-0", "s-worker-1"]
    assert swarm_spec.leaving_workers(hostvars, "s", 2, []) == ["s-gpu-0", "s-gpu-1", "s-gpu-2", "s-io-0"]


SWARM_SPEC = {"name": "hs", "driver": "heat-swarm", "image": "img", "flavor": "bm.standard", "node_count": 2,
              "nodegroups": [{"name": "gpu-a", "flavor": "bm.gpu", "node_count": 1},
                             {"name": "io", "flavor": "bm.io", "image": "img-io", "node_count": 0}],
              "networks": [{"network": "hte"}, {"network": "lln", "roles": ["worker"]},
                           {"network": "mgmt", "roles": ["master"]}, {"network": "ib", "nodegroups": ["gpu-a"]}]}


def test_swarm_networks_follow_roles_and_nodegroups():
    networks = SWARM_SPEC["networks"]
    assert swarm_spec.swarm_networks(networks, "master", "default-master") == ["hte", "mgmt"]
    assert swarm_spec.swarm_networks(networks, "worker", "default-worker") == ["hte", "lln"]
    assert swarm_spec.swarm_networks(networks, "worker", "gpu-a") == ["hte", "lln", "ib"]
    # Without a nodegroup: the role's default one.
    assert swarm_spec.swarm_networks(networks, "master") == ["hte", "mgmt"]
    assert swarm_spec.swarm_networks(networks, "worker") == ["hte", "lln"]
    assert swarm_spec.swarm_spec_problems(SWARM_SPEC) == []
    assert swarm_spec.swarm_stack_nodegroups(SWARM_SPEC) == [
        {"name": "gpu-a", "flavor": "bm.gpu", "image": "img", "node_count": 1, "networks": ["hte", "lln", "ib"]},
        {"name": "io", "flavor": "bm.io", "image": "img-io", "node_count": 0, "networks": ["hte", "lln"]}]
    assert swarm_spec.heat_resource_name("gpu-a") == "swarm_nodegroup_gpu_a"


@pytest.mark.parametrize(("change", "words"), [
    ({"master_count": 0}, "master_count is 0; give a whole number of 1 or more"),
    ({"node_count": -1}, "node_count is -1; give a whole number of 0 or more"),
    ({"nodegroups": [{"name": "GPU", "flavor": "f"}]}, "nodegroups[GPU]: name 'GPU' must be 1 to 32 lowercase"),
    ({"nodegroups": [{"name": "worker", "flavor": "f"}]}, "nodegroups[worker]: worker is the name of a default"),
    ({"nodegroups": [{"name": "a", "flavor": "f"}, {"name": "a", "flavor": "f"}]}, "nodegroups[a] is listed twice"),
    ({"nodegroups": [{"name": "a", "flavor": "f", "role": "master"}]}, "extra nodegroups of workers only"),
    ({"nodegroups": [{"name": "a"}]}, "nodegroups[a] has no flavor"),
    ({"nodegroups": [{"name": "a", "flavor": "f", "node_count": "two"}]}, "nodegroups[a].node_count is 'two'"),
    ({"nodegroups": [{"name": "a", "flavor": "f", "labels": {}}]}, "does not read labels (Magnum's keys)"),
    ({"networks": [{"network": "lln", "roles": ["minion"]}]}, "networks[lln].roles: minion is not a role"),
    ({"networks": [{"network": "lln", "nodegroups": ["gpu"]}]},
     "networks[lln].nodegroups: gpu is not a nodegroup of cluster hs "
     "(it has default-master, default-worker, gpu-a, io)"),
    ({"networks": [{"network": "lln", "roles": ["master"], "nodegroups": ["gpu-a"]}]},
     "networks[lln]: no node is in both its roles and its nodegroups"),
    ({"networks": [{"roles": ["master"]}]}, r"networks\[0\] has no network"),
    ({"networks": [{"network": "lln", "vnic_type": "direct"}]}, "networks[lln]: a Swarm without Magnum does not "
     "read vnic_type (Nova makes its ports at boot from the network alone)"),
])
def test_swarm_spec_problems_are_one_sentence_each(change, words):
    # A spec with other nodegroups places no network on SWARM_SPEC's nodegroups.
    spec = SWARM_SPEC | ({"networks": []} if "nodegroups" in change else {}) | change
    problems = swarm_spec.swarm_spec_problems(spec)
    assert len(problems) == 1, problems
    assert words.replace("\\", "") in problems[0]


# ------------------------------------------------------------------------------------------ the Heat stack
def heat_stack(status, tags=("container-infra", "spec-1"), reason=""):
    return {"status": status, "status_reason": reason, "tags": None if tags is None else list(tags)}


@pytest.mark.parametrize(("stack", "action"), [
    (None, "create"),
    (heat_stack("CREATE_COMPLETE"), "none"),
    (heat_stack("UPDATE_COMPLETE"), "none"),
    (heat_stack("CHECK_COMPLETE"), "none"),
    (heat_stack("UPDATE_COMPLETE", tags=("container-infra", "spec-0")), "update"),
    (heat_stack("UPDATE_COMPLETE", tags=None), "update"),
    # Issue 15, finding 6: the spec's digest on a stack Heat did not finish whole is no "nothing to do".
    (heat_stack("CREATE_FAILED"), "update"),
    (heat_stack("UPDATE_FAILED"), "update"),
    (heat_stack("ROLLBACK_COMPLETE"), "update"),
    (heat_stack("UPDATE_ROLLBACK_COMPLETE"), "update"),
    (heat_stack("ROLLBACK_FAILED"), "update"),
])
def test_the_stack_plan_trusts_the_digest_only_on_a_whole_stack(stack, action):
    assert swarm_spec.swarm_stack_plan(stack, "spec-1", "s") == {"action": action, "problem": "", "in_progress": False}


@pytest.mark.parametrize(("status", "words"), [
    ("CREATE_IN_PROGRESS", "stack s is CREATE_IN_PROGRESS (r): another run or an operator is changing it now"),
    ("UPDATE_IN_PROGRESS", "stack s is UPDATE_IN_PROGRESS (r): another run or an operator is changing it now"),
    ("DELETE_IN_PROGRESS", "stack s is DELETE_IN_PROGRESS (r): another run or an operator is changing it now"),
    ("DELETE_FAILED", "stack s is DELETE_FAILED (r): Heat cannot update a stack that was being deleted"),
    ("SUSPEND_COMPLETE", "stack s is SUSPEND_COMPLETE (r): its servers are suspended; resume it"),
])
def test_a_stack_no_run_can_act_on_is_one_sentence(status, words):
    plan = swarm_spec.swarm_stack_plan(heat_stack(status, reason="r."), "spec-1", "s")
    assert plan["action"] == "none" and plan["problem"].startswith(words), plan
    # A change under way is waited for by the waiting pass, and left alone by the pass that does not wait.
    assert plan["in_progress"] is status.endswith("_IN_PROGRESS")
    assert plan["problem"].count(". ") == 0 and plan["problem"].endswith("then run again.")


@pytest.mark.parametrize(("stack", "problem"), [
    (heat_stack("CREATE_COMPLETE"), ""),
    (heat_stack("UPDATE_COMPLETE"), ""),
    (heat_stack("UPDATE_FAILED", reason="Resource UPDATE failed: No valid host was found."),
     "stack s is UPDATE_FAILED (Resource UPDATE failed: No valid host was found) after this run's create or "
     "update: fix what Heat names"),
    (heat_stack("CREATE_FAILED"), "stack s is CREATE_FAILED after this run's create or update"),
    (None, "stack s is in no known state after this run's create or update"),
])
def test_only_a_whole_stack_goes_on_to_the_inventory(stack, problem):
    said = swarm_spec.swarm_stack_problem(stack, "s")
    assert said.startswith(problem) and (said == "") == (problem == ""), said


@pytest.mark.parametrize("role, variable", [
    ("container_infra_gpu", "container_infra_gpu_cluster_group"),
    ("container_infra_monitoring", "container_infra_monitoring_cluster_group"),
    ("container_infra_swarm", "container_infra_swarm_cluster_group"),
])
def test_each_role_finds_its_cluster_by_the_group_name_the_inventories_write(role, variable):
    """A cluster named with dashes (swarm-heat-sandbox) is the group cluster_swarm_heat_sandbox in every written
    inventory; a role that looked for cluster_swarm-heat-sandbox found no group and fell back on the first master
    of the whole play (another cluster's, seen in the demo)."""
    from ansible_runner import BIN, host_results
    from ansible_runner import run as ansible_run

    done = ansible_run([str(BIN / "ansible"), "localhost", "-e", f"@roles/{role}/defaults/main.yml",
                        "-e", "container_infra_cluster=swarm-heat-sandbox", "-m", "ansible.builtin.debug",
                        "-a", f"var={variable}"])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [result] = host_results(done.stdout)
    assert result[variable] == inventory.cluster_group("swarm-heat-sandbox") == "cluster_swarm_heat_sandbox"
