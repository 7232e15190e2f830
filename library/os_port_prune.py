#!/usr/bin/python
"""Ansible module os_port_prune: a thin shell over container_infra.modules.os_port_prune."""

DOCUMENTATION = r"""
---
module: os_port_prune
short_description: Detach and delete the ports of a Neutron tag that are no longer wanted
description:
  - Finds every port carrying all of O(tags) in ONE port listing, whatever the number of servers, and
    detaches (where attached to a server) and deletes each one whose id is not in O(keep).
  - Neutron is the record - not a file written by an earlier run - so a fresh checkout, a second
    operator or a lost inventory directory prunes the same ports.
  - The cluster role keeps the provider ports its O(keep) list names (those M(os_server_interface)
    returned for the spec's networks) and prunes the rest of the cluster's tag - ports on a network
    taken out of the spec, ports of nodes that left, unattached ports of an interrupted run.
  - Supports check mode (returns the ports it would prune).
version_added: "0.1.0"
author: container-infra
requirements:
  - python >= 3.10
  - container_infra (this toolkit's Python package, installed where the module runs)
extends_documentation_fragment:
  - container_infra
  - container_infra.wait
options:
  tags:
    description:
      - The tags a port must carry, all of them, to be pruned (never empty). Each 1 to 60 characters,
        without a comma.
    type: list
    elements: str
    required: true
  keep:
    description: Ids of ports carrying the tags that stay.
    type: list
    elements: str
    default: []
  wait:
    description: Wait until the detached ports are free before deleting them.
notes:
  - "The module runs on the control host (C(delegate_to: localhost)) with the interpreter where
    container_infra is installed."
"""

EXAMPLES = r"""
- name: Attach the spec's provider networks, tagged with the cluster
  os_server_interface:
    cloud: sandbox
    servers: "{{ node_ids }}"
    interfaces:
      - network: hte
    port_tags: ["container-infra-cluster:demo"]
  register: attached

- name: Every other port of the cluster's tag goes
  os_port_prune:
    cloud: sandbox
    tags: ["container-infra-cluster:demo"]
    keep: "{{ attached.interfaces | map(attribute='port_id') | list }}"
"""

RETURN = r"""
pruned:
  description: The ports detached and deleted (in check mode, those that would be).
  returned: always
  type: list
  elements: dict
  contains:
    port_id: {description: The port's id., type: str}
    port_name: {description: The port's name., type: str}
    network_id: {description: The port's network., type: str}
    server_id: {description: The server it was attached to (null when unattached)., type: str}
api_calls:
  description: How many HTTP requests the run made (authentication included).
  returned: always
  type: int
  sample: 3
"""

# Ansible packs a module with the module_utils it imports; this import tells it the module is a
# new-style one (its parameters arrive through AnsibleModule), the rest comes from container_infra.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402, F401

from container_infra.cloud.module import run_module  # noqa: E402
from container_infra.modules.os_port_prune import ARGUMENT_SPEC, run  # noqa: E402


def main():
    run_module(ARGUMENT_SPEC, run, operation="pruning the ports tagged",
               resource=lambda params: ", ".join(params.get("tags") or []))


if __name__ == "__main__":
    main()
