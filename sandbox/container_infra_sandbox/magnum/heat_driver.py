"""Heat-era Magnum drivers of the sandbox: Kubernetes and swarm-mode.

A cluster is a real Heat stack shaped like the stacks of the Heat drivers that
Magnum removed (k8s_fedora_coreos_v1, swarm_fedora_atomic_v2): same stack and
resource names, same outputs. Servers are only servers: no control plane runs.
Non-default nodegroups get their own stack of workers.
"""

import contextlib
import dataclasses
import os
import re

from heatclient import exc as heat_exc
from magnum.common import exception
from magnum.drivers.common import driver
from magnum.objects import fields
from oslo_log import log as logging

from container_infra_sandbox.magnum import common, swarm

LOG = logging.getLogger(__name__)
S = fields.ClusterStatus
TEMPLATE_DIR = os.path.join(os.path.dirname(__file__), "templates")
# The resource that fails a stack on purpose (see the cluster templates).
FAULT_RESOURCE = "sandbox_fault"
UUID_RE = re.compile(r"^[0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12}$", re.I)


@dataclasses.dataclass(frozen=True)
class StackLayout:
    """Names that differ between the Kubernetes and the swarm-mode stacks."""

    template: str
    nested: tuple
    nodes_count_param: str
    nodes_image_param: str
    nodes_flavor_param: str
    nodes_remove_param: str
    master_outputs: tuple
    node_output: str
    complete_reason: str

    def master_count_params(self, count):
        raise NotImplementedError

    def files(self):
        """The template and the nested templates it names, as Heat wants."""
        return _read(self.template), {name: _read(name) for name in self.nested}


def _read(name):
    with open(os.path.join(TEMPLATE_DIR, name), encoding="utf-8") as f:
        return f.read()


class KubernetesLayout(StackLayout):
    def master_count_params(self, count):
        return {"number_of_masters": count}


class SwarmModeLayout(StackLayout):
    def master_count_params(self, count):
        # The primary master is a group of one; the rest are secondaries.
        return {"number_of_secondary_masters": max(count - 1, 0)}


KUBERNETES = KubernetesLayout(
    template="kubecluster.yaml",
    nested=("kubemaster.yaml", "kubeminion.yaml"),
    nodes_count_param="number_of_minions",
    nodes_image_param="minion_image",
    nodes_flavor_param="minion_flavor",
    nodes_remove_param="minions_to_remove",
    master_outputs=("kube_masters",),
    node_output="kube_minions",
    complete_reason=(
        "Stack CREATE completed successfully. The sandbox runs no Kubernetes control plane: the nodes are servers only."
    ),
)

SWARM_MODE = SwarmModeLayout(
    template="swarmcluster.yaml",
    nested=("swarmmaster.yaml", "swarmnode.yaml"),
    nodes_count_param="number_of_nodes",
    nodes_image_param="node_image",
    nodes_flavor_param="node_flavor",
    nodes_remove_param="nodes_to_remove",
    master_outputs=("swarm_primary_master", "swarm_secondary_masters"),
    node_output="swarm_nodes",
    complete_reason="Stack CREATE completed successfully.",
)


SWARM_COES = ("swarm", "swarm-mode")


class _HeatDriver(common.NoFederation, driver.Driver):
    """The lifecycle of a cluster as Heat stacks; subclasses give the layout."""

    layout = None

    def _layout(self, template):
        """The stack layout: the driver's own, or swarm-mode for a swarm COE.

        Magnum 23's API accepts only the `kubernetes` COE, so a sandbox
        swarm-mode cluster is a kubernetes template whose driver (image
        property magnum_driver, or the template's driver) is
        sandbox_swarm_heat. A Magnum that still accepts `swarm-mode` may load
        [drivers]default_driver for it: the COE then picks the swarm layout.
        """
        return SWARM_MODE if template.coe in SWARM_COES else self.layout

    # Stack creation and changes

    def create_cluster(self, context, cluster, cluster_create_timeout):
        template = common.cluster_template(context, cluster)
        layout = self._layout(template)
        params = self._common_params(cluster, template)
        params.update(_master_params(cluster, layout))
        params.update(_worker_params(cluster.default_ng_worker, layout))
        params["sandbox_fail_reason"] = common.fail_reason(cluster, template) or ""
        name = common.heat_stack_name(cluster)
        stack = _create_stack(context, layout, name, params, cluster_create_timeout)
        cluster.stack_id = stack["stack"]["id"]

    def create_nodegroup(self, context, cluster, nodegroup):
        template = common.cluster_template(context, cluster)
        layout = self._layout(template)
        params = self._common_params(cluster, template)
        params.update(_worker_params(nodegroup, layout))
        params["is_cluster_stack"] = False
        params["worker_role"] = nodegroup.role
        params["sandbox_fail_reason"] = (nodegroup.labels or {}).get(common.FAIL_LABEL, "")
        name = common.heat_stack_name(cluster, nodegroup)
        stack = _create_stack(context, layout, name, params, cluster.create_timeout)
        nodegroup.stack_id = stack["stack"]["id"]

    def update_cluster(self, context, cluster, scale_manager=None, rollback=False):
        # The legacy update API only ever scaled the default workers.
        worker = cluster.default_ng_worker
        layout = self._layout(common.cluster_template(context, cluster))
        params = {layout.nodes_count_param: worker.node_count}
        if layout is SWARM_MODE:
            _leave_swarm(context, cluster, worker, worker.node_count, [])
        _update_stack(context, worker.stack_id or cluster.stack_id, params, rollback)

    def resize_cluster(self, context, cluster, resize_manager, node_count, nodes_to_remove, nodegroup=None):
        nodegroup = nodegroup or cluster.default_ng_worker
        layout = self._layout(common.cluster_template(context, cluster))
        params = {layout.nodes_count_param: node_count}
        members = _group_members(context, nodes_to_remove) if nodes_to_remove else []
        if members:
            params[layout.nodes_remove_param] = ",".join(members)
        if layout is SWARM_MODE:
            _leave_swarm(context, cluster, nodegroup, node_count, members)
        _update_stack(context, nodegroup.stack_id or cluster.stack_id, params, rollback=False)

    def upgrade_cluster(
        self,
        context,
        cluster,
        cluster_template,
        max_batch_size,
        nodegroup,
        scale_manager=None,
        rollback=False,
    ):
        image = cluster_template.image_id
        params = {self._layout(cluster_template).nodes_image_param: image}
        if nodegroup.is_default:
            # Both default nodegroups live in the cluster's stack.
            params["master_image"] = image
            cluster.cluster_template_id = cluster_template.uuid
            for ng in cluster.nodegroups:
                if ng.is_default and ng.id != nodegroup.id:
                    ng.image_id = image
                    ng.status = S.UPDATE_IN_PROGRESS
                    ng.save()
        nodegroup.image_id = image
        # Nova rebuilds each server with the new image (Heat's default
        # image_update_policy), keeping names, ports and floating IPs.
        _update_stack(context, nodegroup.stack_id or cluster.stack_id, params, rollback)

    def update_nodegroup(self, context, cluster, nodegroup):
        # Only min/max node counts change here; nothing to ask of Heat.
        nodegroup.save()

    def delete_nodegroup(self, context, cluster, nodegroup):
        nodegroup.status = S.DELETE_IN_PROGRESS
        nodegroup.save()
        if nodegroup.stack_id:
            _delete_stack(common.heat(context), nodegroup.stack_id)

    def delete_cluster(self, context, cluster):
        # A second delete while the first runs (`coe cluster delete` twice, a
        # retried playbook) must not fail the cluster: stacks already being
        # deleted are left to Heat (_delete_stack), and a nodegroup the status
        # poll destroyed meanwhile is done.
        hc = common.heat(context)
        for ng in cluster.nodegroups:
            if not ng.is_default and ng.stack_id:
                _delete_stack(hc, ng.stack_id)
            # Without a stack (creation failed before Heat saw it) there is
            # nothing to wait for.
            has_stack = ng.stack_id or (ng.is_default and cluster.stack_id)
            ng.status = S.DELETE_IN_PROGRESS if has_stack else S.DELETE_COMPLETE
            try:
                ng.save()
            except exception.NodeGroupNotFound:
                LOG.info("Nodegroup %s is already gone", ng.name)
        if cluster.stack_id:
            _delete_stack(hc, cluster.stack_id)

    def _common_params(self, cluster, template):
        fip = common.floating_ip_enabled(cluster, template)
        if fip and not template.external_network_id:
            raise exception.InvalidParameterValue(
                "floating_ip_enabled needs the cluster template to name an "
                "external_network; set one or disable floating IPs."
            )
        return {
            "is_cluster_stack": True,
            "cluster_uuid": cluster.uuid,
            "ssh_key_name": common.keypair(cluster, template),
            "availability_zone": common.availability_zone(cluster, template),
            "fixed_network": common.fixed_network(cluster, template),
            "fixed_subnet": common.fixed_subnet(cluster, template),
            "external_network": template.external_network_id or "",
            "floating_ip_enabled": fip,
        }

    # Status synchronisation (the conductor's periodic task, admin context)

    def update_cluster_status(self, context, cluster, use_admin_ctx=False):
        if cluster.stack_id is None and cluster.status == S.CREATE_IN_PROGRESS:
            # The conductor has not stored the stack id yet.
            return
        template = common.cluster_template(context, cluster)
        layout = self._layout(template)
        poller = _StackPoller(common.heat(context), cluster, template, layout)
        previous = cluster.status
        statuses = [s for s in map(poller.poll, cluster.nodegroups) if s]
        common.aggregate_status(cluster, statuses, layout.complete_reason)
        common.hold_for_late_nodegroups(cluster)
        if layout is SWARM_MODE and cluster.status in common.COMPLETE_STATES and previous.endswith("_IN_PROGRESS"):
            _form_swarm(context, cluster, poller, previous)
        cluster.save()


class _StackPoller:
    """Copies each nodegroup's stack status and outputs to Magnum's objects."""

    def __init__(self, hc, cluster, template, layout):
        self.hc = hc
        self.cluster = cluster
        self.template = template
        self.layout = layout
        self.fip = common.floating_ip_enabled(cluster, template)
        self._stacks = {}
        self._redeleted = set()  # stacks asked again in this poll (both default nodegroups share one)

    def poll(self, ng):
        stack_id = ng.stack_id or (self.cluster.stack_id if ng.is_default else None)
        if stack_id:
            stack = self._stack(stack_id)
            if stack is None:
                self._missing_stack(ng)
            elif self._finish_delete(ng, stack, stack_id):
                pass
            elif stack.stack_status == S.DELETE_COMPLETE and not ng.is_default:
                ng.destroy()
                return None
            else:
                self._copy_stack(ng, stack)
        return common.NodegroupStatus(ng.name, ng.status, ng.status_reason, ng.is_default)

    def _stack(self, stack_id):
        # Both default nodegroups share the cluster's stack: fetch it once.
        if stack_id not in self._stacks:
            try:
                stack = self.hc.stacks.get(stack_id, resolve_outputs=False)
                if stack.stack_status in common.COMPLETE_STATES:
                    # Outputs are costly for Heat: only resolve them once
                    # the stack has settled.
                    stack = self.hc.stacks.get(stack_id, resolve_outputs=True)
            except heat_exc.HTTPNotFound:
                stack = None
            self._stacks[stack_id] = stack
        return self._stacks[stack_id]

    def _finish_delete(self, ng, stack, stack_id):
        """Finish a delete Heat gave up on because part of the stack was
        already gone, as Magnum finishes a delete whose stack is gone.

        Two deletes a moment apart make Heat restart the first: the second
        then fails on a nested stack or resource the first had removed
        ("The Stack (...-kube_minions-...) could not be found", "resource
        with id N not found"). While Magnum is deleting the nodegroup, such a
        DELETE_FAILED is asked again (a few times; Heat skips what is gone)
        instead of failing the cluster; any other reason fails it as before.
        """
        if ng.status != S.DELETE_IN_PROGRESS or stack.stack_status != S.DELETE_FAILED:
            return False
        if not _GONE.search(stack.stack_status_reason or ""):
            return False
        if stack_id not in self._redeleted:
            tries = _DELETE_RETRIES.get(stack_id, 0)
            if tries >= DELETE_RETRIES:
                return False
            _DELETE_RETRIES[stack_id] = tries + 1
            self._redeleted.add(stack_id)
            LOG.info("Stack %s: delete failed on what was already gone (%s); deleting it again (%d of %d)",
                     stack_id, stack.stack_status_reason, tries + 1, DELETE_RETRIES)
            with contextlib.suppress(heat_exc.HTTPNotFound):  # gone now: the next poll completes the delete
                self.hc.stacks.delete(stack_id)
        ng.status_reason = f"Deleting again: {stack.stack_status_reason}"
        ng.save()
        return True

    def _missing_stack(self, ng):
        new = {
            S.DELETE_IN_PROGRESS: S.DELETE_COMPLETE,
            S.CREATE_IN_PROGRESS: S.CREATE_FAILED,
            S.UPDATE_IN_PROGRESS: S.UPDATE_FAILED,
        }.get(ng.status)
        if new:
            ng.status = new
            ng.status_reason = "Stack %s not found in Heat." % (ng.stack_id or self.cluster.stack_id)
            ng.save()

    def _copy_stack(self, ng, stack):
        ng.status = stack.stack_status
        ng.status_reason = _stack_reason(stack)
        if stack.stack_status in common.COMPLETE_STATES:
            self._copy_outputs(ng, _outputs(stack))
        ng.save()

    def _copy_outputs(self, ng, outputs):
        if ng.role == "master" and ng.is_default:
            keys = self.layout.master_outputs
            self.cluster.api_address = outputs.get("api_address")
        else:
            keys = (self.layout.node_output,)
        private = [ip for k in keys for ip in outputs.get(k + "_private") or []]
        public = [ip for k in keys for ip in outputs.get(k) or []]
        ng.node_addresses = [ip for ip in (public if self.fip else private) if ip]
        ng.node_count = len(private)


def _create_stack(context, layout, name, params, timeout):
    template, files = layout.files()
    fields = {"stack_name": name, "template": template, "files": files, "parameters": params}
    if timeout:
        fields["timeout_mins"] = timeout
    LOG.info("Creating stack %s with %s", name, params)
    # Rollback would delete the servers of a failed stack: keep them to look at, as Magnum did.
    return common.heat(context).stacks.create(disable_rollback=True, **fields)


def _update_stack(context, stack_id, params, rollback):
    LOG.info("Updating stack %s with %s", stack_id, params)
    common.heat(context).stacks.update(stack_id, existing=True, parameters=params, disable_rollback=not rollback)


def _master_params(cluster, layout):
    master = cluster.default_ng_master
    params = {"master_image": master.image_id, "master_flavor": master.flavor_id}
    params.update(layout.master_count_params(master.node_count))
    return params


def _worker_params(nodegroup, layout):
    return {
        layout.nodes_image_param: nodegroup.image_id,
        layout.nodes_flavor_param: nodegroup.flavor_id,
        layout.nodes_count_param: nodegroup.node_count,
    }


def _outputs(stack):
    return {o["output_key"]: o.get("output_value") for o in getattr(stack, "outputs", None) or []}


def _stack_reason(stack):
    """Heat's reason, or the injected one when the fault resource failed it."""
    reason = stack.stack_status_reason
    if stack.stack_status.endswith("_FAILED") and FAULT_RESOURCE in (reason or ""):
        injected = (stack.parameters or {}).get("sandbox_fail_reason")
        return injected or reason
    return reason


#: A Heat delete that failed on something already removed (a concurrent delete's doing).
_GONE = re.compile(r"could not be found|not found", re.IGNORECASE)
#: How many times a stack's delete is asked again after such a failure, per delete the user asks (the count
#: lives as long as the conductor; a restart or the user's next delete starts it again).
DELETE_RETRIES = 3
_DELETE_RETRIES = {}


def _delete_stack(hc, stack_id):
    """Ask Heat to delete the stack, unless it is already being deleted or gone.

    Heat restarts a delete asked again while it runs, and the restarted one
    then fails on the nested stacks the first had removed."""
    try:
        stack = hc.stacks.get(stack_id, resolve_outputs=False)
    except heat_exc.HTTPNotFound:
        LOG.info("Stack %s is already gone", stack_id)
        return
    if stack.stack_status in (S.DELETE_IN_PROGRESS, S.DELETE_COMPLETE):
        LOG.info("Stack %s is already %s", stack_id, stack.stack_status)
        return
    # A delete the user asks again (the stack DELETE_FAILED) gets its own retries on what was already gone.
    _DELETE_RETRIES.pop(stack_id, None)
    try:
        hc.stacks.delete(stack_id)
    except heat_exc.HTTPNotFound:
        LOG.info("Stack %s is already gone", stack_id)


def _group_members(context, nodes):
    """ResourceGroup members for removal_policies from server ids or names.

    Each group member's reference id is its server's id (the nested
    templates' OS::stack_id output), so names are turned into ids; a bare
    member index such as '2' is passed through as Heat understands it.
    """
    compute = None
    members = []
    for node in nodes:
        if UUID_RE.match(node) or node.isdigit():
            members.append(node)
            continue
        compute = compute or common.sdk(context).compute
        server = compute.find_server(node, ignore_missing=True)
        if server is None:
            raise exception.InvalidParameterValue(f"nodes_to_remove: no server named {node} in this project.")
        members.append(server.id)
    return members


class KubernetesHeatDriver(_HeatDriver):
    """sandbox_k8s_heat: Kubernetes on Fedora CoreOS, as a Heat stack."""

    layout = KUBERNETES

    @property
    def provides(self):
        return [
            {"server_type": server_type, "os": "fedora-coreos", "coe": "kubernetes"} for server_type in ("vm", "bm")
        ]


class SwarmModeHeatDriver(_HeatDriver):
    """sandbox_swarm_heat: swarm-mode on Fedora CoreOS, as a Heat stack."""

    layout = SWARM_MODE

    @property
    def provides(self):
        return [
            {"server_type": server_type, "os": "fedora-coreos", "coe": "swarm-mode"} for server_type in ("vm", "bm")
        ]


# Swarm-mode: the Swarm in the nodes (what the nodes' boot scripts did; see swarm.py)


def _swarm_nodes(outputs, group):
    """The group's servers from the stack's outputs (ids, fixed and floating IPs, in member order)."""
    ids = outputs.get(f"{group}_ids")
    if ids is None:
        raise swarm.SwarmError(f"the stack has no {group}_ids output (it predates the Swarm); create the cluster again")
    private = outputs.get(f"{group}_private") or []
    public = outputs.get(group) or []
    return [
        swarm.Node(server_id, fixed, public[i] if i < len(public) else None)
        for i, (server_id, fixed) in enumerate(zip(ids, private, strict=False))
        if server_id and fixed
    ]


def _swarm_managers(outputs):
    return _swarm_nodes(outputs, "swarm_primary_master") + _swarm_nodes(outputs, "swarm_secondary_masters")


def _form_swarm(context, cluster, poller, previous):
    """Form the Swarm before the cluster reports complete; a failure fails the operation."""
    action = previous.split("_", 1)[0]
    managers, workers = [], []
    try:
        for ng in cluster.nodegroups:
            stack_id = ng.stack_id or (cluster.stack_id if ng.is_default else None)
            stack = poller._stack(stack_id) if stack_id else None
            if stack is None or stack.stack_status not in common.COMPLETE_STATES:
                continue
            outputs = _outputs(stack)
            if ng.role == "master" and ng.is_default:
                managers = _swarm_managers(outputs)
            else:
                workers += _swarm_nodes(outputs, "swarm_nodes")
        formed = swarm.form(cluster, context, managers, workers)
    except swarm.Busy:
        # Another status poll is forming it; that one reports the outcome.
        cluster.status = previous
        return
    except Exception as error:
        LOG.exception("Forming the Docker Swarm of cluster %s failed", cluster.uuid)
        cluster.status = common.status_for(action if action in ("CREATE", "UPDATE") else "UPDATE", "FAILED")
        cluster.status_reason = f"Forming the Docker Swarm failed: {error}"
        return
    cluster.status_reason = (
        f"Stack {action} completed successfully. Docker Swarm formed: {formed[0]} manager(s), {formed[1]} "
        f"worker(s); its API is {cluster.api_address} (TLS, certificates from the cluster's CA)."
    )


def _leave_swarm(context, cluster, nodegroup, node_count, members):
    """Drain and remove from the Swarm the workers a resize is about to delete.

    Heat removes the members named in removal_policies first, then the highest ones; a failure
    here is logged only: the next formation removes nodes whose servers are gone.
    """
    try:
        hc = common.heat(context)
        outputs = _outputs(hc.stacks.get(nodegroup.stack_id or cluster.stack_id, resolve_outputs=True))
        workers = _swarm_nodes(outputs, "swarm_nodes")
        doomed = [w for w in workers if w.server_id in members]
        kept = [w for w in workers if w not in doomed]
        while len(kept) > node_count:
            doomed.append(kept.pop())
        if not doomed:
            return
        cluster_outputs = outputs
        if nodegroup.stack_id and nodegroup.stack_id != cluster.stack_id:
            cluster_outputs = _outputs(hc.stacks.get(cluster.stack_id, resolve_outputs=True))
        swarm.remove(cluster, context, _swarm_managers(cluster_outputs), doomed)
    except Exception:
        LOG.exception("Could not take the removed nodes of cluster %s out of its Swarm first", cluster.uuid)
