#!/usr/bin/python
"""Ansible module os_container_infra: a thin shim over container_infra.modules.os_container_infra."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: os_container_infra
short_description: Create, resize, upgrade and delete a Magnum (container-infra) cluster
description:
  - Ensures a Magnum cluster, found by name, matches the parameters. It creates it from a cluster template,
    resizes it when I(node_count) differs (optionally naming I(nodes_to_remove)), upgrades it when
    I(cluster_template) names another template, and creates, resizes and deletes nodegroups to match
    I(nodegroups).
  - Differences that Magnum cannot apply in place (keypair, master_count, flavors, labels, networks,
    docker_volume_size, a nodegroup's role, flavor, image or labels) fail with the list of them and
    what to do; nothing is changed then.
  - Waits through C(*_IN_PROGRESS) with a deadline and fails on C(*_FAILED) with the status_reason and
    the faults. A cluster that ended in C(CREATE_FAILED) is deleted and created again when
    I(recreate_failed) is true, so a re-run after fixing the cause converges without a duplicate.
  - Works with Heat-era drivers (the cluster has a Heat stack) and Cluster-API-era drivers (no stack);
    I(driver_kind) in the result says which. From Magnum API 1.13 the stack reference is called
    C(cluster_id); the result carries it as both C(stack_id) and C(cluster_id).
  - Runs on the control host with the interpreter where the container_infra package is installed.
version_added: "0.1.0"
author: container-infra maintainers
extends_documentation_fragment:
  - container_infra
  - container_infra.wait
options:
  name:
    description: The cluster's name (or UUID). Names must start with a letter.
    type: str
    required: true
  state:
    description:
      - C(present) creates or updates the cluster, C(absent) deletes it (a failed one too),
        C(query) only reports it.
    type: str
    choices: [present, absent, query]
    default: present
  cluster_template:
    description: Name or UUID of the cluster template. Required to create; a different one upgrades the cluster.
    type: str
    aliases: [cluster_template_id]
  keypair:
    description: Nova keypair for the nodes (by default the template's). Fixed at creation.
    type: str
  master_count:
    description: Number of masters (default 1). Fixed at creation.
    type: int
  node_count:
    description: Number of workers in the default-worker nodegroup (default 1). A different value resizes.
    type: int
  nodes_to_remove:
    description: Server names or ids to remove first when I(node_count) shrinks the cluster.
    type: list
    elements: str
    default: []
  flavor:
    description: Flavor of the workers (by default the template's). Fixed at creation.
    type: str
    aliases: [flavor_id]
  master_flavor:
    description: Flavor of the masters (by default the template's). Fixed at creation.
    type: str
    aliases: [master_flavor_id]
  labels:
    description:
      - Magnum labels (flat key/value strings; numbers and booleans are turned into strings).
        Fixed at creation. Without I(merge_labels) they replace the template's labels.
    type: dict
  merge_labels:
    description: Merge I(labels) into the template's labels instead of replacing them.
    type: bool
    default: false
  fixed_network:
    description: Name or id of an existing tenant network for the nodes. Fixed at creation.
    type: str
  fixed_subnet:
    description: Name or id of a subnet of I(fixed_network). Fixed at creation.
    type: str
  floating_ip_enabled:
    description: Give the nodes floating IPs (by default the template's). Fixed at creation.
    type: bool
  master_lb_enabled:
    description: Put a load balancer in front of the masters (by default the template's). Fixed at creation.
    type: bool
  docker_volume_size:
    description: Size in GiB of each node's Docker volume. Fixed at creation.
    type: int
  create_timeout:
    description: Minutes Magnum allows for the creation (Magnum's unit). Used at creation only.
    type: int
    default: 60
  nodegroups:
    description:
      - The cluster's nodegroups besides the defaults. When given, nodegroups are created, resized
        (node_count), updated (min/max) and deleted to match; non-default nodegroups that are not
        listed are deleted. Omit it to leave nodegroups alone. C(default-worker) may be listed to set
        the default workers' count.
    type: list
    elements: dict
    suboptions:
      name: {description: Nodegroup name., type: str, required: true}
      role: {description: Role (worker roles only; masters are fixed at creation)., type: str, default: worker}
      flavor: {description: Flavor name or id (fixed once created)., type: str}
      image: {description: Image name or id (fixed once created)., type: str}
      node_count: {description: Number of nodes., type: int, default: 1}
      min_node_count: {description: Lower bound for resizing (updated in place)., type: int}
      max_node_count: {description: Upper bound for resizing (updated in place)., type: int}
      docker_volume_size: {description: Docker volume size in GiB (fixed once created)., type: int}
      labels: {description: Magnum labels of the nodegroup (fixed once created)., type: dict}
      merge_labels: {description: Merge I(labels) into the cluster's., type: bool, default: false}
      node_labels: {description: Kubernetes node labels (Magnum API 1.14 or later)., type: dict}
      node_taints:
        description: Kubernetes taints, each C({key, value, effect}) (Magnum API 1.14 or later).
        type: list
        elements: dict
  upgrade_max_batch_size:
    description: Nodes upgraded at a time when the template changes.
    type: int
    default: 1
  recreate_failed:
    description: Delete a cluster that ended in CREATE_FAILED and create it again (state present).
    type: bool
    default: true
  wait:
    description:
      - Wait for the last step to finish. Intermediate steps (creation before nodegroups, an upgrade
        before a resize) are always waited for.
notes:
  - Supports check mode (reports the planned actions from the same plan a real run follows) and diff mode.
  - Progress (each status change of each step, with elapsed seconds) is returned in C(events) and logged.
requirements:
  - python >= 3.10
  - container_infra (this toolkit's package), openstacksdk, python-magnumclient
"""

EXAMPLES = r"""
- name: Ensure the cluster exists with 3 workers and a GPU nodegroup
  os_container_infra:
    cloud: sandbox
    name: science-k8s
    cluster_template: k8s-bm
    keypair: operator
    master_count: 1
    node_count: 3
    labels:
      kube_tag: v1.30.1
    merge_labels: true
    nodegroups:
      - name: gpu
        flavor: bm.gpu.a100
        node_count: 2
        min_node_count: 1
        max_node_count: 4
  register: cluster

- name: Shrink to 2 workers, removing a given node first
  os_container_infra:
    cloud: sandbox
    name: science-k8s
    node_count: 2
    nodes_to_remove: [science-k8s-abc-node-2]

- name: Upgrade to a new template
  os_container_infra:
    cloud: sandbox
    name: science-k8s
    cluster_template: k8s-bm-v2

- name: Only look
  os_container_infra:
    cloud: sandbox
    name: science-k8s
    state: query
  register: found

- name: Delete it (a failed one too)
  os_container_infra:
    cloud: sandbox
    name: science-k8s
    state: absent
"""

RETURN = r"""
cluster:
  description: The cluster as Magnum shows it (detail), with its nodegroups; empty when absent.
  returned: always
  type: dict
  contains:
    uuid: {description: Cluster UUID., type: str, sample: 5b0ad1b5-7d8b-4d1b-9cdb-2a7b2b8e6c1e}
    name: {description: Cluster name., type: str, sample: science-k8s}
    status: {description: Magnum status., type: str, sample: CREATE_COMPLETE}
    status_reason: {description: Why the cluster is in its status., type: str}
    stack_id: {description: Heat stack id (Heat era) or Cluster API name (= cluster_id)., type: str, sample: kube-ab12c}
    cluster_id: {description: Same as stack_id (the name Magnum uses from API 1.13)., type: str}
    api_address: {description: The COE API endpoint., type: str, sample: "https://127.42.0.12:6443"}
    master_addresses: {description: Master IPs (empty on Cluster API drivers)., type: list, elements: str}
    node_addresses: {description: Worker IPs (empty on Cluster API drivers)., type: list, elements: str}
    node_count: {description: Default workers., type: int, sample: 3}
    master_count: {description: Masters., type: int, sample: 1}
    cluster_template_id: {description: Template UUID., type: str}
    labels: {description: The cluster's labels., type: dict}
    faults: {description: Per nodegroup reasons of a failure (only on *_FAILED)., type: dict}
    health_status: {description: HEALTHY, UNHEALTHY or UNKNOWN (null when not monitored)., type: str}
    driver_kind: {description: heat or cluster_api., type: str}
    nodegroups:
      description: The cluster's nodegroups (name, role, node_count, min/max, flavor_id, image_id, status, ...).
      type: list
      elements: dict
driver_kind:
  description: Which kind of Magnum driver runs the cluster (C(heat) has a Heat stack; C(cluster_api) has none).
  returned: when state is present or query and the cluster exists
  type: str
  sample: heat
found:
  description: Whether the cluster exists (state query).
  returned: when state is query
  type: bool
actions:
  description: The steps planned (check mode) or taken, in order.
  returned: when state is present or absent
  type: list
  elements: str
  sample: ["resize nodegroup default-worker from 3 to 5 nodes"]
events:
  description: Progress while waiting, one entry per status change of each step.
  returned: when something was done
  type: list
  elements: dict
  sample: [{elapsed: 2.1, step: "create cluster demo", status: CREATE_IN_PROGRESS}]
differences:
  description: On a refusal, the differences that cannot be applied in place.
  returned: on failure
  type: list
  elements: str
magnum_microversion:
  description: The Magnum API microversion negotiated with the cloud.
  returned: always
  type: str
  sample: "1.14"
api_calls:
  description: HTTP requests this run made.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from container_infra.cloud.module import run_module  # noqa: E402
from container_infra.modules import os_container_infra  # noqa: E402


def main():
    run_module(os_container_infra.ARGUMENT_SPEC, os_container_infra.run, operation="managing",
               module_class=AnsibleModule, resource=lambda params: f"cluster {params.get('name')}")


if __name__ == "__main__":
    main()
