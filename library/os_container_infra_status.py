#!/usr/bin/python
# Copyright: container-infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: one look at a Magnum cluster or a Swarm stack (status, reason, nodes ACTIVE, elapsed)."""

DOCUMENTATION = r"""
---
module: os_container_infra_status
short_description: One look at a Magnum cluster (or a Swarm stack) while waiting on it
description:
  - Reads a cluster once and reports its status and status_reason, how many of its nodes are ACTIVE,
    how many it should have, and whether it has settled (no C(*_IN_PROGRESS) status).
  - Made to be polled with C(until) so that a long wait shows progress every few seconds; the
    toolkit's C(container_infra_progress) callback prints RV(progress) on each retry.
  - With O(stack), the name is the toolkit's Heat stack of a Swarm without Magnum; a server resource Heat
    finished counts as an ACTIVE node, and an operation failed when the stack settled anywhere but a whole
    stack (C(ROLLBACK_COMPLETE) included).
  - Read-only; never changes anything.
version_added: "0.1.0"
author: container-infra
requirements:
  - python >= 3.10
  - container_infra (this toolkit's Python package, installed where the module runs)
extends_documentation_fragment:
  - container_infra
  - container_infra.no_wait
options:
  name:
    description: The cluster, by name or UUID.
    type: str
    required: true
  started:
    description: When the wait began (seconds since the epoch); RV(elapsed) counts from it.
    type: float
  absent_is_settled:
    description: Report a missing cluster as settled (waiting for a deletion) instead of failing.
    type: bool
    default: false
  stack:
    description: O(name) is a Heat stack of a Swarm without Magnum (container_infra_swarm_stack), not a Magnum cluster.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Record when the wait began
  ansible.builtin.set_fact:
    wait_started: "{{ now(utc=true).timestamp() }}"

- name: Wait for the cluster, showing progress
  os_container_infra_status:
    cloud: sandbox
    name: k8s-prod
    started: "{{ wait_started }}"
  register: cluster_status
  until: cluster_status.settled
  retries: 180
  delay: 10
"""

RETURN = r"""
found: {description: Whether the cluster exists., returned: always, type: bool}
uuid: {description: The cluster's UUID., returned: when found, type: str}
status: {description: Magnum's (or Heat's) status (null when absent)., returned: always, type: str}
status_reason: {description: Magnum's status_reason., returned: when found, type: str}
settled: {description: No operation in progress (or absent with O(absent_is_settled))., returned: always, type: bool}
operation_failed: {description: The status ends in C(_FAILED)., returned: always, type: bool}
nodes_active: {description: Nodes whose server is ACTIVE., returned: always, type: int}
nodes_expected: {description: Nodes the cluster's nodegroups ask for., returned: always, type: int}
nodes:
  description:
    - The nodes this look found (name, id, role, nodegroup, status), so that a caller attaches its
      provider networks to them without discovering them again. Empty while the stack is being made.
  returned: always
  type: list
  elements: dict
elapsed: {description: Seconds since O(started)., returned: when started is given, type: float}
driver_kind: {description: C(heat) or C(cluster_api) (C(heat-swarm) for a stack)., returned: when found, type: str}
progress: {description: One line for the operator (status, reason, nodes ACTIVE, elapsed)., returned: always, type: str}
"""

# Ansible packs a module with the module_utils it imports; this import tells it the module is a
# new-style one (its parameters arrive through AnsibleModule), the rest comes from container_infra.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from container_infra.cloud.module import run_module  # noqa: E402
from container_infra.modules.os_container_infra_status import ARGUMENT_SPEC, run  # noqa: E402


def main():
    run_module(ARGUMENT_SPEC, run, operation="reading", resource=lambda params: f"cluster {params['name']}",
               module_class=AnsibleModule)


if __name__ == "__main__":
    main()
