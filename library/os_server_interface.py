#!/usr/bin/python
"""Ansible module os_server_interface: a thin shell over container_infra.modules.os_server_interface."""

DOCUMENTATION = r"""
---
module: os_server_interface
short_description: Ensure ports on named networks of one or many OpenStack servers
description:
  - For each server in O(servers) and each entry of O(interfaces), ensure a port on that network is
    attached (O(state=present)) or detached and deleted (O(state=absent)).
  - Idempotent by port - network and fixed IP (or subnet) - so a re-run attaches nothing twice. A port
    the module was not asked about is never detached; with O(state=absent) and several ports on the
    network, O(interfaces[].fixed_ip) or O(interfaces[].port_name) must say which one goes.
  - The module creates each new port itself (named O(interfaces[].port_name), default
    C(<server name>-<network name>), described C(created by container-infra os_server_interface),
    tagged C(container-infra) and O(port_tags) before it is attached) and attaches it through Nova's
    os-interface API; when Nova refuses the attachment, the new port is deleted again, so a re-run
    after the fault finds no stray port.
  - A run interrupted between making a port and attaching it leaves the port unattached in Neutron; the
    next run adopts it (the unattached port of that name on that network with the toolkit's
    description, found by one port listing made only when something is to be created), and tags it,
    instead of making a second one.
  - Servers are worked on concurrently by a bounded pool (O(concurrency)); each server's ports one
    after another. The attached ports are waited for until ACTIVE.
  - Bulk requests only - one server listing, one network listing, one subnet listing, one security
    group listing and one port listing for all the servers - so a run with nothing to do makes about
    five API calls whatever the number of servers.
  - Supports check mode (returns the plan) and diff mode (each server's interfaces before and after).
version_added: "0.1.0"
author: container-infra
requirements:
  - python >= 3.10
  - openstacksdk
  - container_infra (this toolkit's Python package, installed where the module runs)
extends_documentation_fragment:
  - container_infra
  - container_infra.wait
options:
  servers:
    description:
      - The servers, by name or id. A name that matches several servers fails; give the id.
    type: list
    elements: str
    required: true
    aliases: [server]
  interfaces:
    description: The ports each server must (or must not) have.
    type: list
    elements: dict
    required: true
    aliases: [networks]
    suboptions:
      network:
        description: The network, by name or id.
        type: str
        required: true
      subnet:
        description: The subnet (name or id, on that network) the port's address comes from.
        type: str
      fixed_ip:
        description:
          - The port's address; it must lie in a subnet of the network (in O(interfaces[].subnet) when given).
          - With O(servers) naming more than one server, a fixed IP fits one server only.
        type: str
      port_name:
        description:
          - The name of a port the module creates; an existing matching port is renamed to it.
          - Default C(<server name>-<network name>).
        type: str
      vnic_type:
        description:
          - The port's C(binding:vnic_type) (SR-IOV C(direct), C(baremetal), ...). It cannot change on an
            attached port; the module fails and says so.
        type: str
        choices: [normal, direct, direct-physical, macvtap, baremetal, virtio-forwarder, smart-nic,
                  remote-managed, vdpa]
      security_groups:
        description: Security groups (names or ids) of the port; updated in place on an existing port.
        type: list
        elements: str
      port_security_enabled:
        description: V(false) turns port security (and with it security groups) off on the port.
        type: bool
      tag:
        description: A device tag for the guest's metadata (Nova microversion 2.49).
        type: str
  port_tags:
    description:
      - Neutron tags put on every port the module makes or adopts, and added to a matching port the
        toolkit made earlier without them, so that M(os_port_prune) finds the ports by tag (the cluster
        role tags each cluster's provider ports C(container-infra-cluster:<name>)).
      - Each tag 1 to 60 characters, without a comma.
    type: list
    elements: str
    default: []
  state:
    description: V(present) attaches missing ports; V(absent) detaches and deletes the matching ones.
    type: str
    default: present
    choices: [present, absent]
  concurrency:
    description: How many servers are worked on at the same time.
    type: int
    default: 10
  wait:
    description: Wait until attached ports are ACTIVE and detached ones are free.
notes:
  - "The module runs on the control host (C(delegate_to: localhost)) with the interpreter where
    container_infra is installed."
"""

EXAMPLES = r"""
- name: Attach the HTE and LLN networks to every node of the cluster
  os_server_interface:
    cloud: sandbox
    servers: "{{ groups['cluster_nodes'] }}"
    interfaces:
      - network: hte
      - network: lln
        port_security_enabled: false
        vnic_type: normal
  register: attached

- name: One port with a fixed address, named, tagged
  os_server_interface:
    cloud: sandbox
    server: node-0
    interfaces:
      - network: hte
        subnet: hte-subnet
        fixed_ip: 10.10.0.50
        port_name: node-0-hte
        security_groups: [default]
        tag: hte

- name: Remove only that port (others on the same network stay)
  os_server_interface:
    cloud: sandbox
    server: node-0
    interfaces:
      - network: hte
        fixed_ip: 10.10.0.50
    state: absent
"""

RETURN = r"""
servers:
  description: Per server name, per network name, the port answering the request (absent ones left out).
  returned: always
  type: dict
  sample:
    node-0:
      hte: {port_id: 5e0c..., ip: 10.10.0.17, mac: "fa:16:3e:12:34:56", mtu: 9000, network_id: 2b1f...,
            port_name: node-0-hte, status: ACTIVE}
interfaces:
  description: One entry per server and requested interface, with what was done.
  returned: always
  type: list
  elements: dict
  contains:
    server: {description: The server's name., type: str}
    server_id: {description: The server's id., type: str}
    network: {description: The network's name., type: str}
    action: {description: "keep, create, adopt (an unattached port of the toolkit's), update or delete", type: str}
    changes: {description: The port attributes changed in place (update)., type: dict}
    port_id: {description: The port (null in check mode for a port to create)., type: str}
    ip: {description: The port's fixed IP (the requested one, else the first)., type: str}
    mac: {description: The port's MAC address., type: str}
    mtu: {description: The network's MTU., type: int}
api_calls:
  description: How many HTTP requests the run made (authentication included).
  returned: always
  type: int
  sample: 6
"""

# Ansible packs a module with the module_utils it imports; this import tells it the module is a
# new-style one (its parameters arrive through AnsibleModule), the rest comes from container_infra.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402, F401

from container_infra.cloud.module import run_module  # noqa: E402
from container_infra.modules.os_server_interface import ARGUMENT_SPEC, run  # noqa: E402


def main():
    run_module(ARGUMENT_SPEC, run, operation="ensuring interfaces of",
               resource=lambda params: f"server(s) {', '.join(params.get('servers') or [])}")


if __name__ == "__main__":
    main()
