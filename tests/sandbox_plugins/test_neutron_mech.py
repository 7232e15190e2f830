"""The ``sandbox_bindall`` ML2 driver, driven through Neutron's own ML2 test harness.

Runs only where Neutron and its test requirements import (the services' environment plus testtools,
oslotest, webtest); the toolkit's own environment skips it.

Each service keeps global state (oslo.config options, the oslo.service backend), so run each of the
three plugin test files in its own process, with the services' Python plus the services' test
requirements (testtools, oslotest, webtest, ddt, wsgi-intercept), for example:
``python -m pytest tests/sandbox_plugins/test_neutron_mech.py``.
"""

from typing import ClassVar

import pytest

ml2_test_plugin = pytest.importorskip("neutron.tests.unit.plugins.ml2.test_plugin")

from neutron_lib import constants as n_const  # noqa: E402
from neutron_lib.api.definitions import portbindings  # noqa: E402
from neutron_lib.api.definitions import provider_net as pnet  # noqa: E402
from neutron_lib.plugins import constants as plugin_constants  # noqa: E402
from neutron_lib.plugins import directory  # noqa: E402

HOST = "sandbox-compute-1"
PROVIDER_ARGS = (pnet.NETWORK_TYPE, pnet.PHYSICAL_NETWORK, pnet.SEGMENTATION_ID)


class BindAllTestCase(ml2_test_plugin.Ml2PluginV2TestCase):
    _mechanism_drivers: ClassVar[list[str]] = ["sandbox_bindall"]
    # The real L3 plugin: it creates floating IPs DOWN and waits for an agent, like the sandbox's.
    l3_plugin = "neutron.services.l3_router.l3_router_plugin.L3RouterPlugin"

    def get_additional_service_plugins(self):
        # The real L3 plugin's l3-flavors extension needs the flavors plugin loaded too.
        return {"flavors": "flavors"}

    def _network(self, **provider):
        res = self._make_network(self.fmt, "plg-net", True, as_admin=True, arg_list=PROVIDER_ARGS, **provider)
        net = res["network"]
        self._make_subnet(self.fmt, {"network": net}, "10.9.0.1", "10.9.0.0/24")
        return net

    def _bound_port(self, net, host=HOST, **kwargs):
        return self._make_port(
            self.fmt,
            net["id"],
            as_admin=True,
            arg_list=(portbindings.HOST_ID,),
            **{portbindings.HOST_ID: host},
            **kwargs,
        )["port"]

    def _get_port(self, port_id):
        return self._show("ports", port_id, as_admin=True)["port"]

    def _assert_bound_active(self, port_id, host=HOST, vif_type=portbindings.VIF_TYPE_OVS, mtu=1500):
        port = self._get_port(port_id)
        self.assertEqual(n_const.PORT_STATUS_ACTIVE, port["status"])
        self.assertEqual(host, port[portbindings.HOST_ID])
        self.assertEqual(vif_type, port[portbindings.VIF_TYPE])
        self.assertTrue(port[portbindings.VIF_DETAILS][portbindings.CAP_PORT_FILTER])
        self.assertEqual(mtu, port[portbindings.VIF_DETAILS]["mtu"])
        return port

    def test_binds_every_network_type_and_goes_active(self):
        cases = [
            ({pnet.NETWORK_TYPE: "flat", pnet.PHYSICAL_NETWORK: "infiniband"}, None),
            ({pnet.NETWORK_TYPE: "vlan", pnet.PHYSICAL_NETWORK: "physnet1", pnet.SEGMENTATION_ID: 42}, 42),
            ({pnet.NETWORK_TYPE: "vxlan", pnet.SEGMENTATION_ID: 4242}, None),
            ({pnet.NETWORK_TYPE: "local"}, None),
            ({}, None),  # a tenant network of the default tenant type
        ]
        for provider, vlan in cases:
            net = self._network(**provider)
            port = self._assert_bound_active(self._bound_port(net)["id"], mtu=net["mtu"])
            if vlan is not None:
                self.assertEqual(vlan, port[portbindings.VIF_DETAILS][portbindings.VIF_DETAILS_VLAN])

    def test_baremetal_vnic_is_bound_as_other(self):
        net = self._network()
        port = self._make_port(
            self.fmt,
            net["id"],
            as_admin=True,
            arg_list=(portbindings.HOST_ID, portbindings.VNIC_TYPE),
            **{portbindings.HOST_ID: HOST, portbindings.VNIC_TYPE: portbindings.VNIC_BAREMETAL},
        )["port"]
        self._assert_bound_active(port["id"], vif_type=portbindings.VIF_TYPE_OTHER)

    def test_port_created_without_host_stays_down_until_bound(self):
        net = self._network()
        port = self._make_port(self.fmt, net["id"])["port"]
        self.assertEqual(n_const.PORT_STATUS_DOWN, self._get_port(port["id"])["status"])
        self._update("ports", port["id"], {"port": {portbindings.HOST_ID: HOST}}, as_admin=True)
        self._assert_bound_active(port["id"])

    def test_survives_updates_rebinds_on_host_change_and_unbinds(self):
        net = self._network()
        port = self._bound_port(net)
        self._update("ports", port["id"], {"port": {"name": "plg-renamed"}})
        self._assert_bound_active(port["id"])
        self._update("ports", port["id"], {"port": {portbindings.HOST_ID: "sandbox-compute-2"}}, as_admin=True)
        self._assert_bound_active(port["id"], host="sandbox-compute-2")
        self._update("ports", port["id"], {"port": {"admin_state_up": False}})
        self.assertEqual(n_const.PORT_STATUS_DOWN, self._get_port(port["id"])["status"])
        self._update("ports", port["id"], {"port": {"admin_state_up": True}})
        self._assert_bound_active(port["id"], host="sandbox-compute-2")
        # Nova unbinds a port on detach: the host goes, and the port goes DOWN as an agent reports.
        self._update("ports", port["id"], {"port": {portbindings.HOST_ID: ""}}, as_admin=True)
        unbound = self._get_port(port["id"])
        self.assertEqual(n_const.PORT_STATUS_DOWN, unbound["status"])
        self.assertEqual(portbindings.VIF_TYPE_UNBOUND, unbound[portbindings.VIF_TYPE])
        self._delete("ports", port["id"])
        self._show("ports", port["id"], expected_code=404)

    def test_floating_ip_follows_association(self):
        ext = self._make_network(self.fmt, "plg-public", True, as_admin=True, **{"router:external": True})["network"]
        self._make_subnet(self.fmt, {"network": ext}, "127.42.0.1", "127.42.0.0/24", enable_dhcp=False)
        net = self._network()
        subnet_id = self._list("subnets", query_params=f"network_id={net['id']}")["subnets"][0]["id"]
        l3 = directory.get_plugin(plugin_constants.L3)
        router = l3.create_router(
            self.context,
            {
                "router": {
                    "name": "plg-router",
                    "admin_state_up": True,
                    "project_id": self._project_id,
                    "external_gateway_info": {"network_id": ext["id"]},
                }
            },
        )
        l3.add_router_interface(self.context, router["id"], {"subnet_id": subnet_id})
        port = self._bound_port(net)
        fip = l3.create_floatingip(
            self.context,
            {
                "floatingip": {
                    "floating_network_id": ext["id"],
                    "project_id": self._project_id,
                    "port_id": port["id"],
                    "subnet_id": None,
                    "floating_ip_address": None,
                }
            },
        )
        self.assertEqual(n_const.FLOATINGIP_STATUS_ACTIVE, l3.get_floatingip(self.context, fip["id"])["status"])
        l3.update_floatingip(self.context, fip["id"], {"floatingip": {"port_id": None}})
        self.assertEqual(n_const.FLOATINGIP_STATUS_DOWN, l3.get_floatingip(self.context, fip["id"])["status"])
        l3.update_floatingip(self.context, fip["id"], {"floatingip": {"port_id": port["id"]}})
        self.assertEqual(n_const.FLOATINGIP_STATUS_ACTIVE, l3.get_floatingip(self.context, fip["id"])["status"])
        # Deleting the port disassociates the floating IP inside Neutron's own transaction.
        self._delete("ports", port["id"])
        self.assertEqual(n_const.FLOATINGIP_STATUS_DOWN, l3.get_floatingip(self.context, fip["id"])["status"])
        l3.delete_floatingip(self.context, fip["id"])
