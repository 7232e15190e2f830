#!/usr/bin/python
# Copyright: container-infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module container_infra_nic: bring a node's hot-plugged provider NICs to their port's settings.

Unlike the toolkit's cloud modules this one runs ON THE NODE, with the node's own python3 and nothing
but the standard library and `ip` (iproute2): a bare-metal node has no container_infra package.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_infra_nic
short_description: Configure a node's provider NICs (found by MAC) for the running system
description:
  - For each entry of O(interfaces), find the network device with that MAC address and give it the MTU,
    the IPoIB mode and the address its Neutron port has, then bring it up. Only what differs is changed.
  - This is the running state; the C(container_infra_nic) role also writes the persistent configuration
    the node's OS reads at boot (systemd-networkd, netplan or NetworkManager).
  - Runs on the node (it needs C(ip) from iproute2 and root). Supports check mode.
version_added: "0.1.0"
author: container-infra
options:
  interfaces:
    description: The NICs to configure.
    type: list
    elements: dict
    required: true
    suboptions:
      mac:
        description: The port's MAC address; the device that has it is configured.
        type: str
        required: true
      address:
        description: The address with its prefix length (C(10.70.0.5/16)); none leaves addressing alone.
        type: str
      mtu:
        description: The network's MTU.
        type: int
      ipoib_mode:
        description:
          - C(connected) or C(datagram), for IPoIB devices. A device that is not IPoIB (no C(mode) in sysfs)
            is left as it is and reported in RV(interfaces[].ipoib_mode_applied) as false.
        type: str
        choices: [connected, datagram]
      network:
        description: The network's name, for the report only.
        type: str
"""

EXAMPLES = r"""
- name: Configure the LLN NIC the cloud attached
  container_infra_nic:
    interfaces:
      - network: lln
        mac: "fa:16:3e:12:34:56"
        address: 10.70.0.5/16
        mtu: 65520
        ipoib_mode: connected
  become: true
"""

RETURN = r"""
interfaces:
  description: One entry per requested NIC.
  returned: always
  type: list
  elements: dict
  contains:
    network: {description: The network's name (as given)., type: str}
    mac: {description: The MAC address., type: str}
    device: {description: The device found (C(eth1), C(ib0), ...)., type: str}
    changes: {description: What was (or in check mode would be) changed., type: list, elements: str}
    ipoib_mode_applied: {description: Whether an IPoIB mode was set or already right., type: bool}
"""

import ipaddress  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

SYS_NET = "/sys/class/net"


def read_sys(device, name):
    try:
        with open(os.path.join(SYS_NET, device, name), encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def devices_by_mac():
    found = {}
    for device in sorted(os.listdir(SYS_NET)):
        mac = read_sys(device, "address")
        if mac:
            found.setdefault(mac.lower(), device)
    return found


def addresses_of(module, device):
    rc, out, err = module.run_command(["ip", "-j", "addr", "show", "dev", device], check_rc=False)
    if rc != 0:
        module.fail_json(msg=f"reading the addresses of {device} failed: {err.strip()}; is iproute2 installed?")
    entries = json.loads(out or "[]")
    return {f"{a['local']}/{a['prefixlen']}" for e in entries for a in e.get("addr_info", [])}


def configure(module, spec, devices):
    mac = spec["mac"].lower()
    device = devices.get(mac)
    label = spec.get("network") or mac
    if device is None:
        module.fail_json(msg=f"no network device on this node has MAC {mac} (network {label}); attach the port "
                             "first (os_server_interface) and check that the inventory is current")
    changes, commands = [], []
    ipoib_applied = False
    if spec.get("ipoib_mode"):
        mode = read_sys(device, "mode")
        if mode is not None:
            ipoib_applied = True
            if mode != spec["ipoib_mode"]:
                changes.append(f"ipoib mode {mode} -> {spec['ipoib_mode']}")
                commands.append(("sysfs-mode", spec["ipoib_mode"]))
    if spec.get("mtu"):
        current = read_sys(device, "mtu")
        if current != str(spec["mtu"]):
            changes.append(f"mtu {current} -> {spec['mtu']}")
            commands.append(["ip", "link", "set", "dev", device, "mtu", str(spec["mtu"])])
    flags = int(read_sys(device, "flags") or "0", 16)
    if not flags & 0x1:
        changes.append("up")
        commands.append(["ip", "link", "set", "dev", device, "up"])
    if spec.get("address"):
        try:
            if "/" not in spec["address"]:
                raise ValueError("no prefix length")  # a bare address would become a /32 that routes nothing
            wanted = ipaddress.ip_interface(spec["address"])
        except ValueError:
            module.fail_json(msg=f"address {spec['address']!r} of network {label} is not an address with a prefix "
                                 "length such as 10.70.0.5/16; fix the inventory's networks entry")
        if str(wanted) not in addresses_of(module, device):
            changes.append(f"address {wanted}")
            commands.append(["ip", "addr", "add", str(wanted), "dev", device])
    if not module.check_mode:
        for command in commands:
            if command[0] == "sysfs-mode":
                with open(os.path.join(SYS_NET, device, "mode"), "w", encoding="ascii") as handle:
                    handle.write(command[1])
                continue
            rc, _, err = module.run_command(command, check_rc=False)
            if rc != 0:
                module.fail_json(msg=f"`{' '.join(command)}` failed on {device} (network {label}): {err.strip()}")
    return {"network": spec.get("network"), "mac": mac, "device": device, "changes": changes,
            "ipoib_mode_applied": ipoib_applied}


def main():
    module = AnsibleModule(
        argument_spec={
            "interfaces": {
                "type": "list", "elements": "dict", "required": True,
                "options": {
                    "mac": {"type": "str", "required": True},
                    "address": {"type": "str"},
                    "mtu": {"type": "int"},
                    "ipoib_mode": {"type": "str", "choices": ["connected", "datagram"]},
                    "network": {"type": "str"},
                },
            },
        },
        supports_check_mode=True,
    )
    devices = devices_by_mac()
    results = [configure(module, spec, devices) for spec in module.params["interfaces"]]
    module.exit_json(changed=any(r["changes"] for r in results), interfaces=results)


if __name__ == "__main__":
    main()
