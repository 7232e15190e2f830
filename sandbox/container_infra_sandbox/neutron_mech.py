"""ML2 mechanism driver ``sandbox_bindall``: the sandbox's switches.

A real ML2 deployment binds a port when an L2 agent (Open vSwitch, Linux bridge) on the port's host
reports it can reach the port's network segment, and the port turns ACTIVE when that agent says the
wiring is done. The sandbox has no agents, so this driver plays both parts:

* ``bind_port`` binds the first segment of any type (flat, vlan, vxlan, geneve, gre, local) on any
  host, so Nova's ``binding:host_id`` is always honoured and rebinding on a host change works;
* after the binding is committed it reports "L2 wiring done" through Neutron's provisioning blocks,
  exactly as an agent's ``update_device_up`` does, so Neutron itself moves the port to ACTIVE (and
  still waits for a DHCP agent's block if one ever exists);
* a port that loses its host or is set admin-down goes DOWN, as an agent reports on unplug;
* a floating IP turns ACTIVE when associated and DOWN when not, which is what the L3 agent reports.

Unlike the in-tree ``test`` driver, nothing here asserts on the shape of the update contexts.
"""

from neutron.db import provisioning_blocks
from neutron_lib import constants as n_const
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import events, registry, resources
from neutron_lib.db import api as db_api
from neutron_lib.plugins import constants as plugin_constants
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

# Every segment type ML2 ships; the sandbox has no fabric to refuse any of them.
BINDABLE_NETWORK_TYPES = frozenset(
    {
        n_const.TYPE_FLAT,
        n_const.TYPE_VLAN,
        n_const.TYPE_VXLAN,
        n_const.TYPE_GENEVE,
        n_const.TYPE_GRE,
        n_const.TYPE_LOCAL,
    }
)

# The VIF type a real back end would report for each VNIC type, so that Nova sees what it would see
# on a real cloud (Ironic expects "other" for bare-metal ports; SR-IOV ports are "hw_veb").
_VIF_TYPE_BY_VNIC = {
    portbindings.VNIC_BAREMETAL: portbindings.VIF_TYPE_OTHER,
    portbindings.VNIC_DIRECT: portbindings.VIF_TYPE_HW_VEB,
    portbindings.VNIC_MACVTAP: portbindings.VIF_TYPE_HW_VEB,
    portbindings.VNIC_DIRECT_PHYSICAL: portbindings.VIF_TYPE_HOSTDEV_PHY,
}

# Bound VIF types: a port with any other type (unbound, binding_failed) must not go ACTIVE.
_UNBOUND_VIF_TYPES = (portbindings.VIF_TYPE_UNBOUND, portbindings.VIF_TYPE_BINDING_FAILED)

# Ports that Neutron itself owns (router, DVR, DHCP) never get an agent status in the sandbox; the
# in-tree agent drivers skip provisioning blocks for the same list.
_SERVICE_OWNERS = (
    n_const.DEVICE_OWNER_DVR_INTERFACE,
    n_const.DEVICE_OWNER_ROUTER_HA_INTF,
    n_const.DEVICE_OWNER_HA_REPLICATED_INT,
)


class BindAllMechanismDriver(api.MechanismDriver):
    """Bind every port on every segment type and act as the missing L2 and L3 agents."""

    def initialize(self):
        # The L3 agent normally reports floating IP status; subscribe here because the mechanism
        # driver is loaded in every neutron-server (API and RPC) worker, whatever service plugins run.
        for event in (events.AFTER_CREATE, events.AFTER_UPDATE):
            registry.subscribe(self._floatingip_changed, resources.FLOATING_IP, event)

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    # --- binding -------------------------------------------------------------------------------

    def bind_port(self, context):
        vnic_type = context.current.get(portbindings.VNIC_TYPE, portbindings.VNIC_NORMAL)
        vif_type = _VIF_TYPE_BY_VNIC.get(vnic_type, portbindings.VIF_TYPE_OVS)
        mtu = context.network.current.get("mtu")
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] not in BINDABLE_NETWORK_TYPES:
                continue
            vif_details = {
                portbindings.CAP_PORT_FILTER: True,
                portbindings.OVS_HYBRID_PLUG: False,
                portbindings.VIF_DETAILS_CONNECTIVITY: self.connectivity,
                # Not a key Nova reads (it takes the MTU from the network), but the sandbox's compute
                # drivers use it to size the emulated NIC without another Neutron call.
                "mtu": mtu,
                "network_type": segment[api.NETWORK_TYPE],
                "physical_network": segment.get(api.PHYSICAL_NETWORK),
            }
            if segment[api.NETWORK_TYPE] == n_const.TYPE_VLAN:
                vif_details[portbindings.VIF_DETAILS_VLAN] = segment[api.SEGMENTATION_ID]
            context.set_binding(segment[api.ID], vif_type, vif_details)
            LOG.debug(
                "Bound port %(port)s on host %(host)s to segment %(seg)s (%(type)s) as %(vif)s",
                {
                    "port": context.current["id"],
                    "host": context.host,
                    "seg": segment[api.ID],
                    "type": segment[api.NETWORK_TYPE],
                    "vif": vif_type,
                },
            )
            return
        LOG.warning(
            "Port %(port)s: no bindable segment among %(segs)s",
            {"port": context.current["id"], "segs": context.segments_to_bind},
        )

    # --- port status (the L2 agent's job) ------------------------------------------------------

    def create_port_postcommit(self, context):
        # A port created with a host is bound (and reaches update_port_postcommit) right after this;
        # one created without a host stays DOWN, as on a real cloud.
        self._sync_port_status(context)

    def update_port_postcommit(self, context):
        # Called after a binding commit, a user update and a status change alike; the status change
        # we cause ourselves calls back here and finds nothing left to do.
        self._sync_port_status(context)

    def _sync_port_status(self, context):
        port = context.current
        if port["device_owner"] in _SERVICE_OWNERS:
            return
        plugin_context = context.plugin_context
        if db_api.is_session_active(plugin_context.session):
            # Status changes open their own transaction and must not run inside another; every ML2
            # postcommit call site is outside one, so this only guards against future callers.
            LOG.debug("Port %s: status left alone inside a transaction", port["id"])
            return
        bound = (
            bool(context.host)
            and context.vif_type not in _UNBOUND_VIF_TYPES
            and context.bottom_bound_segment is not None
        )
        if bound and port["admin_state_up"]:
            if port["status"] != n_const.PORT_STATUS_ACTIVE:
                # The agent's path: clears the L2 block and lets Neutron flip the port to ACTIVE
                # (and notify Nova with network-vif-plugged) once no other block remains.
                provisioning_blocks.provisioning_complete(
                    plugin_context, port["id"], resources.PORT, provisioning_blocks.L2_AGENT_ENTITY
                )
        elif port["status"] == n_const.PORT_STATUS_ACTIVE:
            # Unplugged (host cleared) or administratively down: an agent would report the device down.
            directory.get_plugin().update_port_status(
                plugin_context, port["id"], n_const.PORT_STATUS_DOWN, context.host or None
            )

    # --- floating IP status (the L3 agent's job) -----------------------------------------------

    def _floatingip_changed(self, resource, event, trigger, payload):
        fip = payload.latest_state
        if not fip or "id" not in fip:
            return
        wanted = n_const.FLOATINGIP_STATUS_ACTIVE if fip.get("port_id") else n_const.FLOATINGIP_STATUS_DOWN
        if fip.get("status") == wanted:
            return
        l3_plugin = directory.get_plugin(plugin_constants.L3)
        if l3_plugin is None:
            return
        try:
            l3_plugin.update_floatingip_status(payload.context, fip["id"], wanted)
        except Exception:
            # A status is cosmetic next to the API call that triggered it: never fail that call.
            LOG.exception("Could not set floating IP %s to %s", fip["id"], wanted)
