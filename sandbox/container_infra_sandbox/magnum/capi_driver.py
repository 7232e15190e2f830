"""Cluster-API-era Magnum driver of the sandbox (sandbox_k8s_capi).

It answers as magnum-cluster-api does: the cluster's stack_id is `kube-` and
five lowercase alphanumerics, there is no Heat stack, node_addresses and
master_addresses stay empty, and the nodes are Nova servers found by name.

Server names (each suffix five random lowercase alphanumerics):
- masters (default-master):       `<stack_id>-control-plane-<suffix>`
- workers of nodegroup <ng>:      `<stack_id>-<ng>-<suffix>`
  where <ng> is the nodegroup name lowercased, '_' and '.' turned into '-'
  (so the default workers are `<stack_id>-default-worker-<suffix>`).
Each server has one port on the fixed network, created by Nova (and deleted
with the server); masters get a floating IP (description: the server name)
once their port exists, when floating IPs are enabled. The fixed subnet is
not honoured: Nova picks the address on the fixed network.
"""

import re
import secrets
import string

from magnum.common import exception
from magnum.drivers.common import driver
from magnum.objects import fields
from openstack import exceptions as sdk_exceptions
from oslo_log import log as logging

from container_infra_sandbox.magnum import common

LOG = logging.getLogger(__name__)
S = fields.ClusterStatus
SUFFIX_CHARS = string.ascii_lowercase + string.digits
MASTER_INFIX = "control-plane"
API_PORT = 6443
COMPLETE_REASON = "The sandbox runs no Kubernetes control plane: the nodes are servers only."


def random_suffix():
    return "".join(secrets.choice(SUFFIX_CHARS) for _ in range(5))


def name_prefix(cluster, nodegroup):
    """`<stack_id>-control-plane-` for masters, `<stack_id>-<ng>-` else."""
    infix = MASTER_INFIX if nodegroup.role == "master" else re.sub(r"[_.]", "-", nodegroup.name.lower())
    return f"{cluster.stack_id}-{infix}-"


def belongs_to(server, cluster, nodegroup):
    pattern = f"^{re.escape(name_prefix(cluster, nodegroup))}[a-z0-9]{{5}}$"
    return re.match(pattern, server.name) is not None


def _is_deleting(server):
    return server.task_state == "deleting" or server.status == "DELETED"


def _fixed_ip(server):
    for addresses in (server.addresses or {}).values():
        for address in addresses:
            if address.get("OS-EXT-IPS:type", "fixed") == "fixed":
                return address["addr"]
    return None


class _Cloud:
    """The Nova and Neutron calls of one operation, with names resolved once."""

    def __init__(self, context, cluster, template):
        self.conn = common.sdk(context)
        self.cluster = cluster
        self.template = template

    def servers(self, all_projects=False):
        """The cluster's servers, newest last (creation time, then name)."""
        query = {"name": f"^{self.cluster.stack_id}-"}
        if all_projects:
            # The periodic status task runs as the Magnum service user.
            query.update(all_projects=True, project_id=self.cluster.project_id)
        servers = list(self.conn.compute.servers(details=True, **query))
        return sorted(servers, key=lambda s: (s.created_at or "", s.name))

    def floating_ips(self):
        prefix = f"{self.cluster.stack_id}-"
        return [
            ip
            for ip in self.conn.network.ips(project_id=self.cluster.project_id)
            if (ip.description or "").startswith(prefix)
        ]

    def create_servers(self, nodegroup, count, taken):
        image = self.conn.image.find_image(nodegroup.image_id, ignore_missing=False)
        flavor = self.conn.compute.find_flavor(nodegroup.flavor_id, ignore_missing=False)
        network = self.conn.network.find_network(
            common.fixed_network(self.cluster, self.template), ignore_missing=False
        )
        key = common.keypair(self.cluster, self.template)
        zone = common.availability_zone(self.cluster, self.template)
        prefix = name_prefix(self.cluster, nodegroup)
        for _ in range(count):
            name = prefix + random_suffix()
            while name in taken:
                name = prefix + random_suffix()
            taken.add(name)
            attrs = {
                "name": name,
                "image_id": image.id,
                "flavor_id": flavor.id,
                "networks": [{"uuid": network.id}],
                "availability_zone": zone,
            }
            if key:
                attrs["key_name"] = key
            LOG.info("Creating server %s for cluster %s", name, self.cluster.uuid)
            self.conn.compute.create_server(**attrs)

    def delete_servers(self, servers):
        names = {s.name for s in servers}
        for ip in self.floating_ips():
            if ip.description in names:
                self.conn.network.delete_ip(ip, ignore_missing=True)
        for server in servers:
            LOG.info("Deleting server %s", server.name)
            self.conn.compute.delete_server(server, ignore_missing=True)

    def ensure_floating_ips(self, masters):
        """Give each master a floating IP once Nova has made its port."""
        external = self.template.external_network_id
        have = {ip.description: ip for ip in self.floating_ips()}
        for server in masters:
            if server.name in have:
                continue
            ports = list(self.conn.network.ports(device_id=server.id))
            if not ports:
                continue
            network = self.conn.network.find_network(external, ignore_missing=False)
            try:
                have[server.name] = self.conn.network.create_ip(
                    floating_network_id=network.id,
                    port_id=ports[0].id,
                    project_id=self.cluster.project_id,
                    description=server.name,
                )
            except sdk_exceptions.ConflictException:
                # Two status polls of one cluster can overlap: the other one gave the port its
                # floating IP a moment ago.
                have[server.name] = next(iter(self.conn.network.ips(port_id=ports[0].id)), None)
        return {name: ip for name, ip in have.items() if ip is not None}


class ClusterAPIDriver(common.NoFederation, driver.Driver):
    """Servers straight from Nova, named as Cluster API machines are."""

    @property
    def provides(self):
        return [{"server_type": server_type, "os": "ubuntu", "coe": "kubernetes"} for server_type in ("vm", "bm")]

    # Operations (user's context, called by the conductor)

    def create_cluster(self, context, cluster, cluster_create_timeout):
        cluster.stack_id = "kube-" + random_suffix()
        template = common.cluster_template(context, cluster)
        _check_floating_ips(cluster, template)
        if common.fail_reason(cluster, template):
            # The status poll fails the cluster; nothing is booted.
            return
        cloud = _Cloud(context, cluster, template)
        taken = set()
        for ng in cluster.nodegroups:
            if ng.is_default:
                cloud.create_servers(ng, ng.node_count, taken)

    def create_nodegroup(self, context, cluster, nodegroup):
        nodegroup.stack_id = cluster.stack_id
        if (nodegroup.labels or {}).get(common.FAIL_LABEL):
            return
        cloud = self._cloud(context, cluster)
        taken = {s.name for s in cloud.servers()}
        cloud.create_servers(nodegroup, nodegroup.node_count, taken)

    def update_cluster(self, context, cluster, scale_manager=None, rollback=False):
        worker = cluster.default_ng_worker
        self._resize(context, cluster, worker, worker.node_count, [])

    def resize_cluster(self, context, cluster, resize_manager, node_count, nodes_to_remove, nodegroup=None):
        nodegroup = nodegroup or cluster.default_ng_worker
        self._resize(context, cluster, nodegroup, node_count, nodes_to_remove or [])

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
        cloud = self._cloud(context, cluster)
        image = cloud.conn.image.find_image(cluster_template.image_id, ignore_missing=False)
        # Upgrading a default nodegroup upgrades the control plane with it,
        # as the cluster's template changes for both.
        targets = [ng for ng in cluster.nodegroups if ng.id == nodegroup.id or (nodegroup.is_default and ng.is_default)]
        servers = cloud.servers()
        for ng in targets:
            for server in (s for s in servers if belongs_to(s, cluster, ng)):
                LOG.info("Rebuilding server %s with image %s", server.name, image.id)
                cloud.conn.compute.rebuild_server(server, image=image.id)
            ng.image_id = cluster_template.image_id
            if ng.id != nodegroup.id:
                ng.status = S.UPDATE_IN_PROGRESS
                ng.save()
        nodegroup.image_id = cluster_template.image_id
        if nodegroup.is_default:
            cluster.cluster_template_id = cluster_template.uuid

    def update_nodegroup(self, context, cluster, nodegroup):
        # Only min/max node counts change here; the servers stay as they are.
        nodegroup.save()

    def delete_nodegroup(self, context, cluster, nodegroup):
        # Stored before the slow part, so that a status poll running now
        # sees the delete (see common.hold_for_late_nodegroups).
        nodegroup.status = S.DELETE_IN_PROGRESS
        nodegroup.save()
        cloud = self._cloud(context, cluster)
        cloud.delete_servers([s for s in cloud.servers() if belongs_to(s, cluster, nodegroup)])

    def delete_cluster(self, context, cluster):
        for ng in cluster.nodegroups:
            ng.status = S.DELETE_IN_PROGRESS
            ng.save()
        if cluster.stack_id:
            cloud = self._cloud(context, cluster)
            cloud.delete_servers(cloud.servers())

    def _cloud(self, context, cluster):
        return _Cloud(context, cluster, common.cluster_template(context, cluster))

    def _resize(self, context, cluster, nodegroup, node_count, nodes_to_remove):
        cloud = self._cloud(context, cluster)
        servers = cloud.servers()
        mine = [s for s in servers if belongs_to(s, cluster, nodegroup) and not _is_deleting(s)]
        doomed = _named(mine, nodes_to_remove)
        kept = [s for s in mine if s not in doomed]
        # Beyond the named ones, the newest servers go first.
        while len(kept) > node_count:
            doomed.append(kept.pop())
        cloud.delete_servers(doomed)
        missing = node_count - len(kept)
        if missing > 0:
            cloud.create_servers(nodegroup, missing, {s.name for s in servers})

    # Status synchronisation (the conductor's periodic task, admin context)

    def update_cluster_status(self, context, cluster, use_admin_ctx=False):
        if cluster.stack_id is None:
            return
        template = common.cluster_template(context, cluster)
        cloud = _Cloud(context, cluster, template)
        servers = cloud.servers(all_projects=True)
        statuses = []
        for ng in cluster.nodegroups:
            status = self._poll_nodegroup(cloud, ng, [s for s in servers if belongs_to(s, cluster, ng)])
            if status:
                statuses.append(status)
        if cluster.status == S.DELETE_IN_PROGRESS and not servers:
            _delete_leftover_ips(cloud)
        common.aggregate_status(cluster, statuses, COMPLETE_REASON)
        common.hold_for_late_nodegroups(cluster)
        cluster.save()

    def _poll_nodegroup(self, cloud, ng, servers):
        if ng.status.endswith("_IN_PROGRESS"):
            status, reason = self._observe(cloud, ng, servers)
            if status == S.DELETE_COMPLETE and not ng.is_default:
                ng.destroy()
                return None
            ng.status, ng.status_reason = status, reason
            ng.save()
        return common.NodegroupStatus(ng.name, ng.status, ng.status_reason, ng.is_default)

    def _observe(self, cloud, ng, servers):
        """The nodegroup's status and reason from what Nova shows now."""
        action = common.current_action(ng)
        injected = _injected_fault(cloud, ng)
        if action == "CREATE" and injected:
            return S.CREATE_FAILED, injected
        if action == "DELETE":
            if servers:
                return S.DELETE_IN_PROGRESS, None
            return S.DELETE_COMPLETE, None
        failed = [s for s in servers if s.status == "ERROR"]
        if failed:
            return common.status_for(action, "FAILED"), _server_faults(failed)
        live = [s for s in servers if not _is_deleting(s)]
        ready = len(servers) == ng.node_count and all(s.status == "ACTIVE" for s in live)
        if ready and ng.role == "master":
            self._publish_api_address(cloud, live)
        if ready:
            return common.status_for(action, "COMPLETE"), None
        return common.status_for(action, "IN_PROGRESS"), None

    def _publish_api_address(self, cloud, masters):
        host = _fixed_ip(masters[0]) if masters else None
        if masters and common.floating_ip_enabled(cloud.cluster, cloud.template):
            ips = cloud.ensure_floating_ips(masters)
            first = ips.get(masters[0].name)
            host = first.floating_ip_address if first else host
        if host:
            cloud.cluster.api_address = f"https://{host}:{API_PORT}"


def _named(servers, nodes_to_remove):
    """The servers that nodes_to_remove names, by id or by name."""
    wanted = set(nodes_to_remove)
    found = [s for s in servers if s.id in wanted or s.name in wanted]
    unknown = wanted - {s.id for s in found} - {s.name for s in found}
    if unknown:
        raise exception.InvalidParameterValue(
            "nodes_to_remove: {} is not a server of this nodegroup.".format(", ".join(sorted(unknown)))
        )
    return found


def _injected_fault(cloud, ng):
    if ng.is_default:
        return common.fail_reason(cloud.cluster, cloud.template)
    return (ng.labels or {}).get(common.FAIL_LABEL)


def _server_faults(servers):
    return "; ".join(
        "Server {} is in ERROR: {}".format(s.name, (s.fault or {}).get("message", "no fault recorded")) for s in servers
    )


def _check_floating_ips(cluster, template):
    if common.floating_ip_enabled(cluster, template) and not template.external_network_id:
        raise exception.InvalidParameterValue(
            "floating_ip_enabled needs the cluster template to name an "
            "external_network; set one or disable floating IPs."
        )


def _delete_leftover_ips(cloud):
    # A floating IP made by a status poll racing a delete would outlive
    # the servers: remove whatever still carries the cluster's prefix.
    for ip in cloud.floating_ips():
        cloud.conn.network.delete_ip(ip, ignore_missing=True)
