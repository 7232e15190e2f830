"""The sandbox's Magnum drivers: naming, status rules and Heat templates, without a cloud.

Runs only where Magnum and Heat import (the services' environment); the toolkit's own
environment skips it. The drivers' behaviour against real services is covered by the
integration tests that use the sandbox cloud.
"""

import json
import os
import subprocess
import sys
import types
from unittest import mock

import pytest

pytest.importorskip("magnum")
pytest.importorskip("heat")

from container_infra_sandbox.magnum import capi_driver, common, heat_driver

S = common.S


def _cluster(**kw):
    values = {
        "name": "drv-Test_cluster.one",
        "uuid": "6e0f3a6c-3a45-4b6f-9a57-1f3b1c2e4d5f",
        "stack_id": "kube-ab12c",
        "status": S.CREATE_IN_PROGRESS,
        "status_reason": None,
        "labels": {},
        "fixed_network": None,
        "fixed_subnet": None,
        "floating_ip_enabled": True,
        "keypair": "kp",
        "project_id": "p1",
        "api_address": None,
    }
    values.update(kw)
    return types.SimpleNamespace(**values)


def _template(**kw):
    values = {
        "labels": {},
        "fixed_network": None,
        "fixed_subnet": None,
        "floating_ip_enabled": True,
        "keypair_id": None,
        "external_network_id": "public",
        "coe": "kubernetes",
    }
    values.update(kw)
    return types.SimpleNamespace(**values)


def _ng(name, role="worker", status=S.CREATE_IN_PROGRESS, node_count=1, is_default=True, labels=None):
    return mock.Mock(
        name=name,
        role=role,
        status=status,
        status_reason=None,
        node_count=node_count,
        is_default=is_default,
        labels=labels or {},
        node_addresses=[],
        id=name,
        stack_id=None,
    )


def _named_ng(name, **kw):
    ng = _ng(name, **kw)
    ng.name = name
    return ng


def _server(name, status="ACTIVE", created="2026-01-01T00:00:00Z", fault=None, task_state=None):
    return types.SimpleNamespace(
        name=name,
        id=f"id-{name}",
        status=status,
        created_at=created,
        fault=fault,
        task_state=task_state,
        addresses={"private": [{"addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed"}]},
    )


# Naming


def test_heat_stack_name_follows_the_removed_driver():
    name = common.heat_stack_name(_cluster())
    base, short = name.rsplit("-", 1)
    assert base == "drv-test-cluster-one"
    assert len(short) == 12 and short == short.lower()


def test_heat_stack_name_of_a_nodegroup_truncates_both_names():
    cluster = _cluster(name="a" * 40)
    ng = _named_ng("gpu_workers_extra")
    base = common.heat_stack_name(cluster, ng).rsplit("-", 1)[0]
    assert base == "a" * 20 + "-gpu-worke"


@pytest.mark.parametrize(
    ("role", "ng_name", "server", "belongs"),
    [
        ("master", "default-master", "kube-ab12c-control-plane-x7k2p", True),
        ("worker", "default-worker", "kube-ab12c-default-worker-x7k2p", True),
        ("worker", "gpu_nodes", "kube-ab12c-gpu-nodes-0a1b2", True),
        ("worker", "default", "kube-ab12c-default-worker-x7k2p", False),
        ("worker", "default-worker", "kube-zz99z-default-worker-x7k2p", False),
        ("master", "default-master", "kube-ab12c-control-plane-X7K2P", False),
    ],
)
def test_capi_server_names(role, ng_name, server, belongs):
    ng = _named_ng(ng_name, role=role)
    assert capi_driver.belongs_to(_server(server), _cluster(), ng) is belongs


def test_capi_stack_id_shape():
    for _ in range(20):
        suffix = capi_driver.random_suffix()
        assert len(suffix) == 5 and set(suffix) <= set(capi_driver.SUFFIX_CHARS)


# Labels and network choices


def test_fail_reason_comes_from_the_cluster_then_the_template():
    template = _template(labels={"sandbox_fail_reason": "from template"})
    assert common.fail_reason(_cluster(), template) == "from template"
    cluster = _cluster(labels={"sandbox_fail_reason": "from cluster"})
    assert common.fail_reason(cluster, template) == "from cluster"
    assert common.fail_reason(_cluster(), _template()) is None


def test_fixed_network_falls_back_to_private():
    assert common.fixed_network(_cluster(), _template()) == "private"
    assert common.fixed_network(_cluster(), _template(fixed_network="net1")) == "net1"
    assert common.fixed_network(_cluster(fixed_network="net2"), _template(fixed_network="net1")) == "net2"


# Status aggregation


def _status(name, status, reason=None, is_default=True):
    return common.NodegroupStatus(name, status, reason, is_default)


def test_cluster_takes_the_default_nodegroups_status_and_the_complete_sentence():
    cluster = _cluster()
    common.aggregate_status(
        cluster, [_status("m", S.CREATE_COMPLETE), _status("w", S.CREATE_COMPLETE)], "no control plane"
    )
    assert (cluster.status, cluster.status_reason) == (S.CREATE_COMPLETE, "no control plane")


def test_failed_nodegroups_give_one_reason():
    cluster = _cluster()
    statuses = [_status("m", S.CREATE_FAILED, "injected"), _status("w", S.CREATE_FAILED, "injected")]
    common.aggregate_status(cluster, statuses, "unused")
    assert (cluster.status, cluster.status_reason) == (S.CREATE_FAILED, "injected")


def test_extra_nodegroup_in_progress_makes_an_update():
    cluster = _cluster(status=S.UPDATE_IN_PROGRESS)
    statuses = [
        _status("m", S.CREATE_COMPLETE),
        _status("w", S.CREATE_COMPLETE),
        _status("gpu", S.CREATE_IN_PROGRESS, is_default=False),
    ]
    common.aggregate_status(cluster, statuses)
    assert cluster.status == S.UPDATE_IN_PROGRESS


def test_workers_still_building_keep_the_cluster_in_progress():
    # Cluster API era: the masters' nodegroup completes before the workers'.
    cluster = _cluster()
    common.aggregate_status(cluster, [_status("m", S.CREATE_COMPLETE), _status("w", S.CREATE_IN_PROGRESS)])
    assert cluster.status == S.CREATE_IN_PROGRESS
    common.aggregate_status(cluster, [_status("m", S.CREATE_COMPLETE), _status("w", S.CREATE_FAILED, "no host")])
    assert (cluster.status, cluster.status_reason) == (S.CREATE_FAILED, "no host")


def test_a_cluster_past_creation_completes_as_an_update():
    cluster = _cluster(status=S.UPDATE_IN_PROGRESS)
    common.aggregate_status(cluster, [_status("m", S.CREATE_COMPLETE), _status("w", S.CREATE_COMPLETE)])
    assert cluster.status == S.UPDATE_COMPLETE


def test_a_nodegroup_put_in_progress_after_the_poll_keeps_the_cluster_polled():
    # Magnum stores the cluster's UPDATE_IN_PROGRESS, then the nodegroup's: a poll that read the
    # nodegroups in between found them all COMPLETE.
    cluster = _cluster(status=S.UPDATE_COMPLETE, status_reason="done",
                       nodegroups=[_ng("m", status=S.UPDATE_COMPLETE),
                                   _ng("extra", status=S.DELETE_IN_PROGRESS, is_default=False)])
    common.hold_for_late_nodegroups(cluster)
    assert (cluster.status, cluster.status_reason) == (S.UPDATE_IN_PROGRESS, None)


def test_a_settled_cluster_stays_settled_and_one_in_progress_is_not_read_again():
    cluster = _cluster(status=S.UPDATE_FAILED, status_reason="quota",
                       nodegroups=[_ng("m", status=S.UPDATE_COMPLETE), _ng("w", status=S.UPDATE_FAILED)])
    common.hold_for_late_nodegroups(cluster)
    assert (cluster.status, cluster.status_reason) == (S.UPDATE_FAILED, "quota")
    busy = mock.Mock(status=S.DELETE_IN_PROGRESS)
    type(busy).nodegroups = mock.PropertyMock(side_effect=AssertionError("read again"))
    common.hold_for_late_nodegroups(busy)
    assert busy.status == S.DELETE_IN_PROGRESS


def test_capi_nodegroup_delete_stores_its_status_before_deleting_servers():
    events = []
    ng = _named_ng("extra", status=S.UPDATE_COMPLETE)
    ng.save.side_effect = lambda: events.append(("save", ng.status))
    cloud = mock.Mock()
    cloud.servers.return_value = [_server("kube-ab12c-extra-aaaaa"), _server("kube-ab12c-default-worker-bbbbb")]
    cloud.delete_servers.side_effect = lambda servers: events.append(("delete", [s.name for s in servers]))
    driver = capi_driver.ClusterAPIDriver()
    with mock.patch.object(driver, "_cloud", return_value=cloud):
        driver.delete_nodegroup(None, _cluster(), ng)
    assert events == [("save", S.DELETE_IN_PROGRESS), ("delete", ["kube-ab12c-extra-aaaaa"])]


# Heat stack reading


def test_injected_fault_replaces_heats_reason():
    stack = types.SimpleNamespace(
        stack_status=S.CREATE_FAILED,
        stack_status_reason="Resource CREATE failed: ValueError: resources.sandbox_fault: Test Resource failed",
        parameters={"sandbox_fail_reason": "disk on fire"},
    )
    assert heat_driver._stack_reason(stack) == "disk on fire"
    stack.stack_status_reason = "Resource CREATE failed: quota"
    assert heat_driver._stack_reason(stack) == "Resource CREATE failed: quota"


def test_outputs_fill_addresses_and_counts():
    cluster = _cluster()
    outputs = {
        "api_address": "https://127.42.0.10:6443",
        "kube_masters": ["127.42.0.10"],
        "kube_masters_private": ["10.0.0.3"],
        "kube_minions": ["127.42.0.11", "127.42.0.12"],
        "kube_minions_private": ["10.0.0.4", "10.0.0.5"],
    }
    poller = heat_driver._StackPoller(None, cluster, _template(), heat_driver.KUBERNETES)
    master, worker = _ng("default-master", role="master"), _ng("default-worker")
    poller._copy_outputs(master, outputs)
    poller._copy_outputs(worker, outputs)
    assert cluster.api_address == "https://127.42.0.10:6443"
    assert master.node_addresses == ["127.42.0.10"] and master.node_count == 1
    assert worker.node_addresses == ["127.42.0.11", "127.42.0.12"] and worker.node_count == 2
    poller.fip = False
    poller._copy_outputs(worker, outputs)
    assert worker.node_addresses == ["10.0.0.4", "10.0.0.5"]


def test_create_cluster_sends_the_stack_shape_to_heat():
    cluster = _cluster(stack_id=None)
    master = _ng("default-master", role="master", node_count=3)
    master.image_id, master.flavor_id = "fedora-coreos-sandbox", "bm.standard"
    worker = _ng("default-worker", node_count=2)
    worker.image_id, worker.flavor_id = "fedora-coreos-sandbox", "bm.large"
    cluster.default_ng_master, cluster.default_ng_worker = master, worker
    hc = mock.Mock()
    hc.stacks.create.return_value = {"stack": {"id": "sid"}}
    with (
        mock.patch.object(common, "heat", return_value=hc),
        mock.patch.object(
            common, "cluster_template", return_value=_template(coe="swarm-mode", labels={"sandbox_fail_reason": "boom"})
        ),
    ):
        # The template's COE chooses the layout, whichever Heat driver Magnum loaded.
        heat_driver.KubernetesHeatDriver().create_cluster(None, cluster, 30)
    kwargs = hc.stacks.create.call_args.kwargs
    assert cluster.stack_id == "sid"
    assert kwargs["stack_name"].startswith("drv-test-cluster-one-")
    assert set(kwargs["files"]) == {"swarmmaster.yaml", "swarmnode.yaml"}
    params = kwargs["parameters"]
    assert params["number_of_secondary_masters"] == 2 and params["number_of_nodes"] == 2
    assert params["node_flavor"] == "bm.large" and params["sandbox_fail_reason"] == "boom"
    assert params["fixed_network"] == "private" and params["floating_ip_enabled"] is True


# Cluster API status from Nova


def _observe(ng, servers, cluster=None, template=None):
    cloud = types.SimpleNamespace(
        cluster=cluster or _cluster(), template=template or _template(floating_ip_enabled=False)
    )
    cloud.cluster.floating_ip_enabled = False
    return capi_driver.ClusterAPIDriver()._observe(cloud, ng, servers)


def test_capi_nodegroup_completes_when_all_servers_are_active():
    ng = _named_ng("default-master", role="master", node_count=1)
    cluster = _cluster()
    status, _ = _observe(ng, [_server("kube-ab12c-control-plane-aaaaa")], cluster=cluster)
    assert status == S.CREATE_COMPLETE
    assert cluster.api_address == "https://10.0.0.5:6443"


def test_capi_nodegroup_waits_for_missing_or_building_servers():
    ng = _named_ng("default-worker", node_count=2)
    status, _ = _observe(ng, [_server("a"), _server("b", status="BUILD")])
    assert status == S.CREATE_IN_PROGRESS
    status, _ = _observe(ng, [_server("a")])
    assert status == S.CREATE_IN_PROGRESS


def test_capi_nodegroup_fails_on_a_server_in_error():
    ng = _named_ng("default-worker", status=S.UPDATE_IN_PROGRESS, node_count=1)
    status, reason = _observe(ng, [_server("a", status="ERROR", fault={"message": "No valid host"})])
    assert status == S.UPDATE_FAILED and "No valid host" in reason


def test_capi_injected_fault():
    ng = _named_ng("default-worker")
    cluster = _cluster(labels={"sandbox_fail_reason": "injected"})
    assert _observe(ng, [], cluster=cluster) == (S.CREATE_FAILED, "injected")


def test_capi_nodes_to_remove_by_id_or_name():
    servers = [_server("kube-ab12c-default-worker-aaaaa"), _server("kube-ab12c-default-worker-bbbbb")]
    found = capi_driver._named(servers, ["id-kube-ab12c-default-worker-aaaaa", "kube-ab12c-default-worker-bbbbb"])
    assert found == servers
    with pytest.raises(Exception, match="not a server"):
        capi_driver._named(servers, ["nope"])


# HOT templates


_VALIDATE = """
import json, sys
from unittest import mock
from heat.common import context, template_format
from heat.engine import environment, resources, stack, template

files, cases = json.load(sys.stdin)
resources.initialise()
# Only the templates' own structure is checked: no service is asked about names.
with mock.patch("heat.engine.resource.Resource._validate_service_availability"), mock.patch(
    "heat.engine.constraints.BaseCustomConstraint.validate", return_value=True
):
    for name, params in cases.items():
        env = environment.Environment({"parameters": params})
        tmpl = template.Template(template_format.parse(files[name]), files=files, env=env)
        stack.Stack(context.get_admin_context(), "drv-validate", tmpl).validate(validate_res_tmpl_only=True)
"""


def test_templates_validate_with_heats_parser():
    files = {}
    for name in os.listdir(heat_driver.TEMPLATE_DIR):
        with open(os.path.join(heat_driver.TEMPLATE_DIR, name)) as f:
            files[name] = f.read()
    base = {"fixed_network": "private", "external_network": "public"}
    cases = {
        "kubecluster.yaml": {
            **base,
            "master_image": "i",
            "minion_image": "i",
            "master_flavor": "f",
            "minion_flavor": "f",
            "sandbox_fail_reason": "boom",
        },
        "swarmcluster.yaml": {
            **base,
            "master_image": "i",
            "node_image": "i",
            "master_flavor": "f",
            "node_flavor": "f",
            "is_cluster_stack": False,
        },
    }
    for layout in (heat_driver.KUBERNETES, heat_driver.SWARM_MODE):
        for name in layout.nested:
            cases[name] = {**base, "name": "n", "server_image": "i", "server_flavor": "f"}
    # Heat and Magnum register clashing options: Heat runs in its own process.
    subprocess.run(
        [sys.executable, "-c", _VALIDATE],
        input=json.dumps([files, cases]),
        text=True,
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_swarm_driver_builds_a_swarm_stack_for_a_kubernetes_template():
    # Magnum 23 accepts only the kubernetes COE: the driver name decides.
    layout = heat_driver.SwarmModeHeatDriver()._layout(_template(coe="kubernetes"))
    assert layout is heat_driver.SWARM_MODE
    assert heat_driver.KubernetesHeatDriver()._layout(_template()) is heat_driver.KUBERNETES


# Two deletes a moment apart (issue 15, finding 3)


class _Heat:
    """Heat's stacks API as the driver uses it: get (by id) and delete, each recorded."""

    def __init__(self, stacks):
        self.stacks_by_id = stacks
        self.deleted = []
        self.stacks = self

    def get(self, stack_id, resolve_outputs=False):
        from heatclient import exc as heat_exc

        if stack_id not in self.stacks_by_id:
            raise heat_exc.HTTPNotFound()
        return self.stacks_by_id[stack_id]

    def delete(self, stack_id):
        self.deleted.append(stack_id)


def _stack(status, reason=""):
    return types.SimpleNamespace(stack_status=status, stack_status_reason=reason, parameters={}, outputs=[])


def test_a_stack_already_being_deleted_is_not_deleted_again():
    heat = _Heat({"a": _stack(S.DELETE_IN_PROGRESS), "b": _stack(S.CREATE_COMPLETE), "c": _stack(S.DELETE_FAILED)})
    for stack_id in ("a", "b", "c", "gone"):
        heat_driver._delete_stack(heat, stack_id)
    assert heat.deleted == ["b", "c"]


def test_a_delete_the_user_asks_again_gets_its_retries_again():
    heat_driver._DELETE_RETRIES.clear()
    heat_driver._DELETE_RETRIES["kube-ab12c"] = heat_driver.DELETE_RETRIES  # spent by the last delete
    cluster = _cluster(status=S.DELETE_IN_PROGRESS)
    heat = _Heat({"kube-ab12c": _stack(S.DELETE_FAILED, "The Stack (x) could not be found.")})
    heat_driver._delete_stack(heat, "kube-ab12c")
    assert heat.deleted == ["kube-ab12c"] and "kube-ab12c" not in heat_driver._DELETE_RETRIES
    poller = heat_driver._StackPoller(heat, cluster, _template(), heat_driver.KUBERNETES)
    assert poller.poll(_ng("default-worker", status=S.DELETE_IN_PROGRESS)).status == S.DELETE_IN_PROGRESS
    assert heat.deleted == ["kube-ab12c"] * 2


def test_a_second_cluster_delete_leaves_the_first_to_finish():
    from magnum.common import exception

    cluster = _cluster(status=S.DELETE_IN_PROGRESS)
    master, worker = _ng("default-master", role="master", status=S.DELETE_IN_PROGRESS), _ng("default-worker")
    gpu = _ng("gpu", is_default=False, status=S.DELETE_IN_PROGRESS)
    gpu.stack_id = "kube-ab12c-gpu"
    gpu.save.side_effect = exception.NodeGroupNotFound(nodegroup="gpu")  # the poll destroyed it meanwhile
    cluster.nodegroups = [master, worker, gpu]
    heat = _Heat({"kube-ab12c": _stack(S.DELETE_IN_PROGRESS)})
    with mock.patch.object(common, "heat", return_value=heat):
        heat_driver.KubernetesHeatDriver().delete_cluster(None, cluster)
    assert heat.deleted == []
    assert master.status == worker.status == S.DELETE_IN_PROGRESS


@pytest.mark.parametrize("reason", [
    "Resource DELETE failed: NotFound: resources.kube_minions: The Stack (kube-ab12c-kube_minions-x7) could not "
    "be found.",
    "Resource DELETE failed: resource with id 42 not found",
])
def test_a_delete_failed_on_what_was_already_gone_is_finished(reason):
    heat_driver._DELETE_RETRIES.clear()
    cluster = _cluster(status=S.DELETE_IN_PROGRESS)
    heat = _Heat({"kube-ab12c": _stack(S.DELETE_FAILED, reason)})
    for attempt in range(heat_driver.DELETE_RETRIES):
        poller = heat_driver._StackPoller(heat, cluster, _template(), heat_driver.KUBERNETES)
        master = _ng("default-master", role="master", status=S.DELETE_IN_PROGRESS)
        worker = _ng("default-worker", status=S.DELETE_IN_PROGRESS)
        statuses = [poller.poll(master), poller.poll(worker)]
        assert [s.status for s in statuses] == [S.DELETE_IN_PROGRESS] * 2
        assert heat.deleted == ["kube-ab12c"] * (attempt + 1)  # once per poll, not once per nodegroup
    common.aggregate_status(cluster, statuses)
    assert cluster.status == S.DELETE_IN_PROGRESS

    # Heat finishes: the next poll completes the delete (the stack gone).
    del heat.stacks_by_id["kube-ab12c"]
    poller = heat_driver._StackPoller(heat, cluster, _template(), heat_driver.KUBERNETES)
    master = _ng("default-master", role="master", status=S.DELETE_IN_PROGRESS)
    assert poller.poll(master).status == S.DELETE_COMPLETE


def test_a_delete_that_keeps_failing_or_fails_otherwise_fails_the_cluster():
    heat_driver._DELETE_RETRIES.clear()
    cluster = _cluster(status=S.DELETE_IN_PROGRESS)
    heat = _Heat({"kube-ab12c": _stack(S.DELETE_FAILED, "Resource DELETE failed: Forbidden: not yours")})
    poller = heat_driver._StackPoller(heat, cluster, _template(), heat_driver.KUBERNETES)
    assert poller.poll(_ng("default-worker", status=S.DELETE_IN_PROGRESS)).status == S.DELETE_FAILED
    assert heat.deleted == []
    heat.stacks_by_id["kube-ab12c"] = _stack(S.DELETE_FAILED, "The Stack (x) could not be found.")
    heat_driver._DELETE_RETRIES["kube-ab12c"] = heat_driver.DELETE_RETRIES
    poller = heat_driver._StackPoller(heat, cluster, _template(), heat_driver.KUBERNETES)
    assert poller.poll(_ng("default-worker", status=S.DELETE_IN_PROGRESS)).status == S.DELETE_FAILED
