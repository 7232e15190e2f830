"""Nova compute driver ``SandboxFakeDriver``: Nova's FakeDriver sized like a bare-metal cloud.

Nova imports ``compute_driver`` only from inside ``nova.virt`` (it prepends ``nova.virt.``), so
the sandbox installs the shim module ``nova/virt/container_infra_sandbox.py`` that re-exports this
one, the way out-of-tree drivers (nova-powervm, nova-zvm) do, and configures
``compute_driver = container_infra_sandbox.SandboxFakeDriver``.

It is ``nova.virt.fake.FakeDriver`` (spawn, destroy, reboot, power on/off, interface and volume
attach/detach all behave as there) with three differences:

* **Inventory.** The compute node reports 1000 VCPU, 2 TiB MEMORY_MB and 100 TiB DISK_GB, plus the
  custom resource classes CUSTOM_BAREMETAL_STANDARD, CUSTOM_BAREMETAL_LARGE,
  CUSTOM_BAREMETAL_GPU_A100 and CUSTOM_BAREMETAL_GPU_V100 (1000 units each, max 1 per server, as an
  Ironic node offers one). A bare-metal flavor in the Ironic style schedules here::

      openstack flavor set bm.gpu.a100 --property resources:CUSTOM_BAREMETAL_GPU_A100=1 \\
          --property resources:VCPU=0 --property resources:MEMORY_MB=0 --property resources:DISK_GB=0

* **Interface attach faults.** When a server's metadata has ``sandbox_fail_attach`` set to ``true``
  (or to any text other than false/0/no/off, which is then logged as the reason), ``attach_interface``
  raises ``nova.exception.InterfaceAttachFailed``, which is what the libvirt driver raises when the
  hypervisor refuses a device. nova-compute then does what it does on a real cloud: it unbinds (or
  deletes, if Nova created it) the port, records an instance action error, and the API answers
  ``POST /servers/{id}/os-interface`` with HTTP 500 "Failed to attach network adapter device to
  <server id>"; the server itself stays ACTIVE. Example::

      openstack server set --property sandbox_fail_attach=true my-server

* **Restarts.** Plain FakeDriver names its compute node with a UUID made up anew in every process
  and never writes Nova's node identity file, so a second start of nova-compute refuses to run ("No
  local node identity found, but this is not our first startup on this host"). This driver is built
  on Nova's ``FakeDriverWithoutFakeNodes``, which behaves as a real single-node driver: one node
  named after ``[DEFAULT]host`` whose UUID is kept in ``<state_path>/compute_id``. FakeDriver also
  keeps its guests in memory only, so after a restart every server would be "not found by the
  driver" (power state NOSTATE, interface detach failing). When nova-compute starts it re-plugs the
  VIFs of each server it owns; this driver takes that moment to adopt the server again, with the
  power state the database records, as a hypervisor whose guests outlived the service would report.
"""

from nova import exception
from nova.compute import power_state
from nova.virt import fake
from oslo_log import log as logging

# The shim in nova/virt re-exports this module with "import *": export the driver only.
__all__ = ["SandboxFakeDriver"]

LOG = logging.getLogger(__name__)

FAIL_ATTACH_KEY = "sandbox_fail_attach"
_FALSE_WORDS = ("", "false", "0", "no", "off")

BAREMETAL_RESOURCE_CLASSES = (
    "CUSTOM_BAREMETAL_STANDARD",
    "CUSTOM_BAREMETAL_LARGE",
    "CUSTOM_BAREMETAL_GPU_A100",
    "CUSTOM_BAREMETAL_GPU_V100",
)


def fail_attach_reason(instance):
    """The reason an attach must fail for this server, or None when it must succeed."""
    value = (instance.metadata or {}).get(FAIL_ATTACH_KEY)
    if value is None or value.strip().lower() in _FALSE_WORDS:
        return None
    return f"{FAIL_ATTACH_KEY} is set" if value.strip().lower() == "true" else value


class SandboxFakeDriver(fake.FakeDriverWithoutFakeNodes):
    """FakeDriver with a large and bare-metal inventory, attach faults on demand, and restart adoption."""

    # FakeDriver reads these in __init__ (its Resources) and in update_provider_tree.
    vcpus = 1000
    memory_mb = 2 * 1024 * 1024  # 2 TiB
    local_gb = 100 * 1024  # 100 TiB
    baremetal_units = 1000

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        super().update_provider_tree(provider_tree, nodename, allocations=allocations)
        inventory = dict(provider_tree.data(nodename).inventory)
        for resource_class in BAREMETAL_RESOURCE_CLASSES:
            inventory[resource_class] = {
                "total": self.baremetal_units,
                "reserved": 0,
                "min_unit": 1,
                # One bare-metal node per server, as Ironic's driver reports (total 1, max_unit 1).
                "max_unit": 1,
                "step_size": 1,
                "allocation_ratio": 1.0,
            }
        provider_tree.update_inventory(nodename, inventory)

    def attach_interface(self, context, instance, image_meta, vif):
        reason = fail_attach_reason(instance)
        if reason:
            LOG.warning(
                "Refusing to attach port %(port)s: %(reason)s",
                {"port": vif["id"], "reason": reason},
                instance=instance,
            )
            raise exception.InterfaceAttachFailed(instance_uuid=instance.uuid)
        super().attach_interface(context, instance, image_meta, vif)

    def plug_vifs(self, instance, network_info):
        # Only nova-compute's start-up (_init_instance) calls plug_vifs on this driver; a server the
        # driver does not know then is one that outlived a restart of the service.
        if instance.uuid not in self.instances:
            running = instance.power_state == power_state.RUNNING
            state = power_state.RUNNING if running else power_state.SHUTDOWN
            self.instances[instance.uuid] = fake.FakeInstance(instance.name, state, instance.uuid)
            flavor = instance.flavor
            self.resources.claim(vcpus=flavor.vcpus, mem=flavor.memory_mb, disk=flavor.root_gb)
            for vif in network_info or []:
                self._interfaces[vif["id"]] = vif
            LOG.info("Adopted server after a nova-compute restart", instance=instance)
        super().plug_vifs(instance, network_info)
