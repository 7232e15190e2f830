#!/usr/bin/python
"""Ansible module os_stack_facts: a thin shell over container_infra.modules.os_stack_facts."""

DOCUMENTATION = r"""
---
module: os_stack_facts
short_description: Read a Heat stack - status, outputs, nested resources and its servers with their roles
description:
  - Reads a Heat stack by name or id - its status, its outputs as a dict and its resources down to
    O(nested_depth), each with its parent resource and its path from the top stack.
  - Two API requests whatever the depth - the stack and ONE resource listing with C(nested_depth)
    (openstacksdk drops that parameter; this module passes it).
  - Returns a C(servers) list - resource name, server id and role (C(master) or C(worker)) taken from the
    Magnum resource group above the server (C(kube_masters), C(kube_minions), C(swarm_primary_master),
    C(swarm_secondary_masters), C(swarm_nodes)) or else from the template's naming.
  - Read-only; never reports a change; check mode is supported.
version_added: "0.1.0"
author: container-infra
requirements:
  - python >= 3.10
  - python-heatclient
  - container_infra (this toolkit's Python package, installed where the module runs)
extends_documentation_fragment:
  - container_infra
  - container_infra.no_wait
options:
  stack:
    description: The stack's name or id (a Magnum cluster's C(stack_id)).
    type: str
    required: true
    aliases: [name, id]
  nested_depth:
    description: How deep into nested stacks to list resources (0 - the top stack only).
    type: int
    default: 5
  resource_type:
    description: Keep only resources of these types (glob patterns allowed, for example C(OS::Nova::*)).
    type: list
    elements: str
    aliases: [type]
  resource_name:
    description: Keep only resources whose name matches this glob (or a regular expression written C(/re/)).
    type: str
    aliases: [name_pattern]
  resource_status:
    description: Keep only resources in these statuses (for example C(CREATE_FAILED)).
    type: list
    elements: str
    aliases: [status]
  missing_ok:
    description:
      - A stack Heat says it does not have (HTTP 404) is no failure but C(found=false). Any other failure
        (a cloud name that is not in clouds.yaml, an unreachable endpoint, rejected credentials) still fails.
    type: bool
    default: false
notes:
  - "The module runs on the control host (C(delegate_to: localhost)) with the interpreter where
    container_infra is installed."
"""

EXAMPLES = r"""
- name: The cluster's stack
  os_stack_facts:
    cloud: sandbox
    stack: "{{ cluster.stack_id }}"
    nested_depth: 3
    resource_type: [OS::Nova::Server]
  register: stack

- name: Masters' server ids
  ansible.builtin.debug:
    msg: "{{ stack.servers | selectattr('role', 'eq', 'master') | map(attribute='server_id') | list }}"

- name: Failed resources anywhere in the tree
  os_stack_facts:
    cloud: sandbox
    stack: my-stack
    resource_status: [CREATE_FAILED, UPDATE_FAILED]
"""

RETURN = r"""
found:
  description: Whether the stack exists (false only with O(missing_ok)).
  returned: always
  type: bool
stack:
  description: The stack (null when not found).
  returned: always
  type: dict
  contains:
    id: {description: The stack id., type: str}
    name: {description: The stack name., type: str}
    status: {description: "The stack status, for example CREATE_COMPLETE.", type: str}
    status_reason: {description: Why., type: str}
    parameters: {description: The stack's parameters., type: dict}
outputs:
  description: The stack's outputs, output_key -> output_value.
  returned: always
  type: dict
  sample: {kube_masters: ["127.42.0.121"], api_address: "https://127.42.0.121:6443"}
resources:
  description: The resources (after the filters), each with parent and path.
  returned: always
  type: list
  elements: dict
  contains:
    resource_name: {description: The resource's name in its stack., type: str}
    physical_resource_id: {description: The id of what it made., type: str}
    resource_type: {description: The type., type: str}
    resource_status: {description: The status., type: str}
    resource_status_reason: {description: Why., type: str}
    stack_id: {description: The id of the (nested) stack the resource is in., type: str}
    parent: {description: The resource whose nested stack holds it (null at the top)., type: str}
    path: {description: Resource names from the top stack down to it., type: list, elements: str}
    depth: {description: 0 for the top stack's resources., type: int}
servers:
  description: Every OS::Nova::Server in the tree (whatever the filters).
  returned: always
  type: list
  elements: dict
  contains:
    resource_name: {description: The server resource's name (kube-master, kube-minion ...)., type: str}
    server_id: {description: The Nova server id., type: str}
    role: {description: master or worker (null when nothing tells)., type: str}
    group: {description: The Magnum resource group above it., type: str}
    index: {description: Its index in that group., type: int}
    status: {description: The resource status., type: str}
    parent: {description: The parent resource., type: str}
"""

# Ansible packs a module with the module_utils it imports; this import tells it the module is a
# new-style one (its parameters arrive through AnsibleModule), the rest comes from container_infra.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402, F401

from container_infra.cloud.module import run_module  # noqa: E402
from container_infra.modules.os_stack_facts import ARGUMENT_SPEC, run  # noqa: E402


def main():
    run_module(ARGUMENT_SPEC, run, operation="reading", resource=lambda params: f"Heat stack {params['stack']}")


if __name__ == "__main__":
    main()
