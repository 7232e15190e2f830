"""SandboxFakeDriver, run through Nova's own virt-driver conformance tests plus its own behaviour.

Runs only where Nova and its test requirements import (the services' environment plus testtools,
oslotest, wsgi-intercept); the toolkit's own environment skips it. Works under pytest and under
``python -m testtools.run``.

Each service keeps global state (oslo.config options, the oslo.service backend), so run each of the
three plugin test files in its own process, with the services' Python plus the services' test
requirements (testtools, oslotest, webtest, ddt, wsgi-intercept), for example:
``python -m pytest tests/sandbox_plugins/test_neutron_mech.py``.
"""

import pytest

try:
    tvd = pytest.importorskip("nova.tests.unit.virt.test_virt_drivers")
except Exception as exc:  # oslo_service.backend.exceptions.BackendAlreadySelected
    # oslo.service picks one concurrency backend per process: Nova's tests want eventlet, and
    # Neutron's, if they ran first in this process, chose threading.
    pytest.skip(f"run this file in its own process ({exc})", allow_module_level=True)

from container_infra_sandbox import nova_fake
from nova import exception
from nova.compute import power_state, provider_tree
from nova.tests.unit import utils as test_utils
from nova.virt import node

NODE = "sandbox-node"
# Nova's TestCase stubs the node identity file out; keep the real functions for the restart test.
REAL_NODE_IDENTITY = {
    "read_local_node_uuid": node.read_local_node_uuid,
    "write_local_node_uuid": node.write_local_node_uuid,
}


class SandboxFakeDriverTestCase(tvd._VirtDriverTestCase, tvd.test.TestCase):
    """Every test Nova runs against FakeDriver, plus the sandbox's additions."""

    def _clear_attrs(self):
        # Nova's TestCase deletes every public instance attribute after a test to save memory;
        # pytest has put the test method there and deletes it itself afterwards, so keep them.
        pass

    def setUp(self):
        self.driver_module = "container_infra_sandbox.nova_fake.SandboxFakeDriver"
        super().setUp()
        self.connection.init_host("myhostname")

    def test_inventory_is_large_and_offers_baremetal_classes(self):
        tree = provider_tree.ProviderTree()
        tree.new_root(NODE, "00000000-0000-0000-0000-000000000001")
        self.connection.update_provider_tree(tree, NODE)
        inv = tree.data(NODE).inventory
        self.assertEqual(1000, inv["VCPU"]["total"])
        self.assertEqual(2 * 1024 * 1024, inv["MEMORY_MB"]["total"])
        self.assertEqual(100 * 1024, inv["DISK_GB"]["total"])
        for rc in nova_fake.BAREMETAL_RESOURCE_CLASSES:
            self.assertEqual(1000, inv[rc]["total"])
            self.assertEqual(1, inv[rc]["max_unit"])
        # A second pass (the periodic task) must leave the inventory as it is.
        self.connection.update_provider_tree(tree, NODE)
        self.assertEqual(inv, tree.data(NODE).inventory)

    def test_attach_fails_when_metadata_asks(self):
        instance, network_info = self._get_running_instance()
        vif = network_info[0]
        self.connection.detach_interface(self.ctxt, instance, vif)
        for value in ("true", "TRUE", "switch port is down"):
            instance.metadata = {nova_fake.FAIL_ATTACH_KEY: value}
            self.assertRaises(
                exception.InterfaceAttachFailed,
                self.connection.attach_interface,
                self.ctxt,
                instance,
                None,
                vif,
            )
        for value in ("false", "0", ""):
            instance.metadata = {nova_fake.FAIL_ATTACH_KEY: value}
            self.connection.attach_interface(self.ctxt, instance, None, vif)
            self.connection.detach_interface(self.ctxt, instance, vif)
        instance.metadata = {}
        self.connection.attach_interface(self.ctxt, instance, None, vif)

    def test_servers_are_adopted_after_a_compute_restart(self):
        instance, network_info = self._get_running_instance()
        instance.power_state = power_state.RUNNING
        # A new driver object is what a restarted nova-compute has.
        restarted = nova_fake.SandboxFakeDriver(tvd.fake.FakeVirtAPI())
        restarted.init_host("myhostname")
        self.assertRaises(exception.InstanceNotFound, restarted.get_info, instance)
        restarted.plug_vifs(instance, network_info)
        self.assertEqual(power_state.RUNNING, restarted.get_info(instance).state)
        restarted.detach_interface(self.ctxt, instance, network_info[0])
        restarted.power_off(instance)
        self.assertEqual(power_state.SHUTDOWN, restarted.get_info(instance).state)
        restarted.destroy(self.ctxt, instance, network_info)
        self.assertEqual([], restarted.list_instances())

    def test_stopped_server_is_adopted_stopped(self):
        instance = test_utils.get_test_instance(obj=True)
        instance.power_state = power_state.SHUTDOWN
        self.connection.plug_vifs(instance, [])
        self.assertEqual(power_state.SHUTDOWN, self.connection.get_info(instance).state)

    def test_node_identity_is_stable_across_restarts(self):
        # Nova refuses a second start of nova-compute if the node identity was never written.
        self.flags(state_path=self.useFixture(tvd.fixtures.TempDir()).path)
        self.useFixture(tvd.fixtures.MonkeyPatch("nova.virt.node.LOCAL_NODE_UUID", None))
        for name, function in REAL_NODE_IDENTITY.items():
            self.useFixture(tvd.fixtures.MonkeyPatch(f"nova.virt.node.{name}", function))
        first = self.connection.get_available_resource("myhostname")["uuid"]
        self.assertEqual(first, node.read_local_node_uuid())
        node.LOCAL_NODE_UUID = None  # a new process: only the file remembers
        restarted = nova_fake.SandboxFakeDriver(tvd.fake.FakeVirtAPI())
        restarted.init_host("myhostname")
        self.assertEqual({first: "myhostname"}, restarted.get_nodenames_by_uuid())
