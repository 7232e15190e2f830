"""What the sandbox's Magnum drivers share: clients, cluster facts, status rules.

Magnum 23 ships no Heat driver base and no Heat client, so this module supplies
the few pieces of the removed Heat-era machinery that the drivers need.
"""

import dataclasses
import string

from heatclient import client as heat_client
from magnum.common import clients, short_id
from magnum.conductor import utils as conductor_utils
from magnum.objects import fields
from openstack import connection as sdk_connection
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

# The label that makes a cluster fail on purpose (sandbox fault injection).
FAIL_LABEL = "sandbox_fail_reason"
# Used when neither the cluster nor its template names a fixed network.
DEFAULT_FIXED_NETWORK = "private"
# Magnum's label for the servers' Nova availability zone.
ZONE_LABEL = "availability_zone"
# Without the label, clusters' servers are machines one can log into: the
# zone of the sandbox's Docker compute host (container_infra.sandbox.nodes.DOCKER_ZONE).
# Scale tests name the fake host's zone ("scale") in the label.
DEFAULT_ZONE = "docker"

# Magnum 23 dropped [heat_client]; the drivers register it again so that a
# deployment can point Heat calls at the same interface as the other clients.
_HEAT_CLIENT_OPTS = [
    cfg.StrOpt("endpoint_type", default="internalURL", help="Catalog interface the sandbox drivers use for Heat."),
    cfg.StrOpt("region_name", help="Region of the Heat endpoint."),
]
CONF.register_opts(_HEAT_CLIENT_OPTS, group="heat_client")

S = fields.ClusterStatus
COMPLETE_STATES = (S.CREATE_COMPLETE, S.UPDATE_COMPLETE)


def interface(endpoint_type):
    """keystoneauth wants 'internal' where magnum.conf says 'internalURL'."""
    return endpoint_type[:-3] if endpoint_type.endswith("URL") else endpoint_type


def heat(context):
    """A heatclient bound to the caller's Keystone session."""
    osc = clients.OpenStackClients(context)
    endpoint = osc.url_for(
        service_type="orchestration",
        interface=interface(CONF.heat_client.endpoint_type),
        region_name=CONF.heat_client.region_name,
    )
    return heat_client.Client("1", session=osc.keystone().session, endpoint_override=endpoint)


def sdk(context):
    """An openstacksdk connection (compute, network, image) for the caller.

    Each service uses the endpoint interface that magnum.conf gives its
    Magnum client, as Magnum's own clients do.
    """
    osc = clients.OpenStackClients(context)
    overrides = {}
    for client, service_type, key in (
        ("nova", "compute", "compute"),
        ("neutron", "network", "network"),
        ("glance", "image", "image"),
    ):
        group = getattr(CONF, f"{client}_client")
        overrides[f"{key}_endpoint_override"] = osc.url_for(
            service_type=service_type, interface=interface(group.endpoint_type), region_name=group.region_name
        )
    return sdk_connection.Connection(session=osc.keystone().session, **overrides)


def cluster_template(context, cluster):
    return conductor_utils.retrieve_cluster_template(context, cluster)


def label(cluster, template, name, default=None):
    """A label from the cluster, else from its template.

    Both are read because a cluster created with its own labels and
    merge_labels false does not carry the template's labels.
    """
    for labels in (cluster.labels, template.labels):
        if labels and labels.get(name):
            return labels[name]
    return default


def fail_reason(cluster, template):
    return label(cluster, template, FAIL_LABEL)


def fixed_network(cluster, template):
    return cluster.fixed_network or template.fixed_network or DEFAULT_FIXED_NETWORK


def fixed_subnet(cluster, template):
    return cluster.fixed_subnet or template.fixed_subnet or ""


def floating_ip_enabled(cluster, template):
    # The cluster field is defaulted from the template by the API; a None
    # only happens for clusters created by very old Magnum versions.
    if cluster.floating_ip_enabled is None:
        return bool(template.floating_ip_enabled)
    return bool(cluster.floating_ip_enabled)


def availability_zone(cluster, template):
    return label(cluster, template, ZONE_LABEL, DEFAULT_ZONE)


def keypair(cluster, template):
    return cluster.keypair or template.keypair_id or ""


def heat_stack_name(cluster, nodegroup=None):
    """The removed Heat driver's stack name: a valid, unique host name prefix.

    `<cluster name[:30]>-<short id>` for a cluster, `<name[:20]>-<ng[:9]>-<id>`
    for a non-default nodegroup; '_' and '.' become '-', anything else that is
    not a letter, digit or '-' is dropped, and the whole is lowercase.
    """
    name = cluster.name or cluster.uuid
    base = name[:30] if nodegroup is None else f"{name[:20]}-{nodegroup.name[:9]}"
    base = base.replace("_", "-").replace(".", "-")
    allowed = set(string.ascii_letters + string.digits + "-")
    base = "".join(c for c in base if c in allowed)
    return (f"{base}-{short_id.generate_id()}").lower()


@dataclasses.dataclass
class NodegroupStatus:
    name: str
    status: str
    reason: str
    is_default: bool


def _action(status):
    return status.split("_", 1)[0]


def aggregate_status(cluster, ng_statuses, complete_reason=None):
    """Set the cluster's status from its nodegroups', as Magnum's HeatPoller did.

    IN_PROGRESS wins over FAILED, FAILED over COMPLETE. With only the default
    nodegroups the cluster takes their status; with more, any operation other
    than a delete is reported as an UPDATE. A cluster that was already past
    creation never goes back to CREATE_COMPLETE.
    """
    previous = cluster.status
    default_status = next((n.status for n in ng_statuses if n.is_default), cluster.status)
    extra = any(not n.is_default for n in ng_statuses)
    action = "DELETE" if default_status.startswith("DELETE") else "UPDATE"
    for state in ("_IN_PROGRESS", "_FAILED", "_COMPLETE"):
        matching = [n.status for n in ng_statuses if n.status.endswith(state)]
        if matching:
            # Only the default nodegroups: the cluster takes the status of the
            # one that wins (the workers still building while the masters are
            # done keep a cluster CREATE_IN_PROGRESS).
            cluster.status = getattr(S, action + state) if extra else matching[0]
            break
    if cluster.status == S.CREATE_COMPLETE and previous not in (S.CREATE_COMPLETE, S.CREATE_IN_PROGRESS):
        cluster.status = S.UPDATE_COMPLETE
    cluster.status_reason = _cluster_reason(cluster.status, ng_statuses, complete_reason)


def hold_for_late_nodegroups(cluster):
    """Keep the cluster UPDATE_IN_PROGRESS when a nodegroup, as stored now, is in progress.

    Magnum's nodegroup handlers store the cluster's UPDATE_IN_PROGRESS before
    the nodegroup's own status. A status poll that read the nodegroups in
    between would store the cluster COMPLETE, and the periodic sync, which
    polls only clusters in progress, would never see that nodegroup finish
    (a nodegroup delete then waits forever). The nodegroups are read again
    just before the cluster is saved.
    """
    if cluster.status.endswith("_IN_PROGRESS"):
        return
    if any(ng.status.endswith("_IN_PROGRESS") for ng in cluster.nodegroups):
        cluster.status = S.UPDATE_IN_PROGRESS
        cluster.status_reason = None


def _cluster_reason(status, ng_statuses, complete_reason):
    if status.endswith("_FAILED"):
        # One reason for all failed nodegroups reads best when they share it
        # (a cluster stack fails both default nodegroups at once).
        reasons = []
        for ng in ng_statuses:
            if ng.status.endswith("_FAILED") and ng.reason not in reasons:
                reasons.append(ng.reason or f"{ng.name} failed")
        return "; ".join(reasons)
    if status.endswith("_COMPLETE") and not status.startswith("DELETE"):
        return complete_reason
    return None


def status_for(action, state):
    """The ClusterStatus for an action such as 'CREATE' and a state suffix."""
    return getattr(S, f"{action}_{state}")


def current_action(nodegroup):
    return _action(nodegroup.status or S.CREATE_IN_PROGRESS)


class NoFederation:
    """Federations were never more than an API stub; the sandbox has none."""

    def create_federation(self, context, federation):
        raise NotImplementedError("The sandbox drivers have no federations.")

    def update_federation(self, context, federation):
        raise NotImplementedError("The sandbox drivers have no federations.")

    def delete_federation(self, context, federation):
        raise NotImplementedError("The sandbox drivers have no federations.")
