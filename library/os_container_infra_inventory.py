#!/usr/bin/python
"""Ansible module os_container_infra_inventory: a thin shell over its namesake in container_infra.modules."""

DOCUMENTATION = r"""
---
module: os_container_infra_inventory
short_description: Write a Magnum cluster's Ansible inventory - groups per cluster, role, nodegroup and GPU
description:
  - Finds the nodes of a Magnum cluster in either driver era (the Heat stack's servers, or on Cluster API
    clouds the Nova servers named after the cluster's C(stack_id)) and builds its Ansible inventory.
  - "Groups (every character outside C([A-Za-z0-9_]) becomes C(_)) - C(cluster_<cluster>) (all nodes, which
    also hold the host vars), C(masters), C(workers), C(nodegroup_<nodegroup>) and C(gpu) (nodes whose flavor
    has C(gpu:count) > 0, a C(resources:*GPU*) amount or a C(pci_passthrough:alias))."
  - "Host name - the server name. Host vars - C(ansible_host) (the floating IP, else the IP on O(network),
    else the first fixed IP), C(ansible_user) (O(ansible_user), else the image's C(os_admin_user) property,
    else the usual user of its C(os_distro)), C(container_infra_cluster), C(container_infra_role)
    (C(master) or C(worker)), C(container_infra_nodegroup), C(container_infra_server_id),
    C(container_infra_flavor), C(container_infra_gpu) and C(container_infra_networks) - network name ->
    C(ip), C(mac), C(mtu), C(cidr), C(prefix), C(gateway), C(port_id) and C(ipoib_mode) (from the network
    tag C(ipoib_mode=connected|datagram)), one entry for each network the server has a port on, the
    provider networks attached later included."
  - With O(path), writes the inventory as YAML (mode 0644, parent directories made) only when its text
    changes; the text has no timestamp, so a re-run with nothing changed reports no change.
  - "Bulk requests only - the cluster, its nodegroups, its Heat stack (two requests, Heat era), ONE server
    listing (pages of 1,000 servers), ONE port listing, one network, one subnet and one image listing (a flavor
    listing only when Nova hides the flavors' extra specs) - so the number of requests does not grow with
    the number of nodes beyond the server listing's pages."
  - Supports check mode (says whether the file would change) and diff mode (the file's text before and after).
version_added: "0.1.0"
author: container-infra
requirements:
  - python >= 3.10
  - python-magnumclient
  - python-heatclient
  - container_infra (this toolkit's Python package, installed where the module runs)
extends_documentation_fragment:
  - container_infra
  - container_infra.no_wait
options:
  cluster:
    description:
      - The Magnum cluster, by name or UUID. One of O(cluster) and O(stack) is required.
    type: str
    aliases: [name]
  stack:
    description:
      - Instead of a Magnum cluster, a Heat stack by name or id - the toolkit's Swarm without Magnum
        (role C(container_infra_swarm_stack)); its C(swarm_masters) are masters, its C(swarm_nodes) workers,
        and the cluster's name in the inventory is the stack's.
    type: str
  path:
    description:
      - The inventory file to write (YAML). Parent directories are made. Without it, the module only
        returns the inventory.
      - The file holds no secrets and is written with mode 0644.
    type: path
  network:
    description:
      - The network whose IP is C(ansible_host) for nodes with no floating IP (for example C(private)).
        A floating IP on that network is preferred over other floating IPs.
    type: str
  ansible_user:
    description: The login user of every node, instead of the one the image's properties give.
    type: str
  extra_host_vars:
    description: Variables added to every host (they win over the computed ones of the same name).
    type: dict
    default: {}
  jump_via_master:
    description:
      - Reach nodes without a floating IP (Cluster API clouds give one to masters only) through the first
        master that has one - C(ansible_ssh_common_args) gains a C(ProxyCommand) with that master's user, key
        and options, and C(container_infra_jump_host) names it.
    type: bool
    default: true
notes:
  - "The module runs on the control host (C(delegate_to: localhost)) with the interpreter where
    container_infra is installed."
  - The dynamic inventory plugin C(container_infra) (C(inventory_plugins/)) gives the same groups and host
    vars from a C(*.container_infra.yml) file.
seealso:
  - module: os_container_infra
  - module: os_server_interface
"""

EXAMPLES = r"""
- name: Write the cluster's inventory
  os_container_infra_inventory:
    cloud: sandbox
    cluster: k8s-demo
    path: "clusters/k8s-demo/hosts.yml"
    network: private
  register: inventory

- name: Show the GPU nodes and their LLN addresses
  ansible.builtin.debug:
    msg: "{{ inventory.hosts | selectattr('gpu') | map(attribute='networks.lln.ip') | list }}"

- name: Read the inventory without writing a file, with a login user of one's own
  os_container_infra_inventory:
    cloud: sandbox
    cluster: 2b1f4d7e-6f0a-4c47-9d7e-1b2c3d4e5f60
    ansible_user: admin
    extra_host_vars:
      ansible_python_interpreter: /usr/bin/python3
"""

RETURN = r"""
inventory:
  description: The inventory, as written to O(path) (C(all.children.<group>.hosts.<host>)).
  returned: always
  type: dict
  sample:
    all:
      children:
        cluster_k8s_demo:
          hosts:
            kube-ab12c-control-plane-x7k2p:
              ansible_host: 127.42.0.57
              ansible_user: ubuntu
              container_infra_cluster: k8s-demo
              container_infra_role: master
              container_infra_nodegroup: default-master
              container_infra_server_id: 6d3c1a52-0d8f-4d5e-9a55-0f0b5b4a3c21
              container_infra_flavor: bm.standard
              container_infra_gpu: false
              container_infra_networks:
                private: {ip: 10.0.0.12, mac: "fa:16:3e:11:22:33", mtu: 1500, cidr: 10.0.0.0/24, prefix: 24,
                          gateway: 10.0.0.1, port_id: 0c1d9f0e-2b4a-4f7e-8e55-3f2a1b0c9d88, ipoib_mode: null}
        masters: {hosts: {kube-ab12c-control-plane-x7k2p: {}}}
        workers: {hosts: {}}
        nodegroup_default_master: {hosts: {kube-ab12c-control-plane-x7k2p: {}}}
        gpu: {hosts: {}}
hosts:
  description: One record per node.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: The host name (the server name)., type: str}
    ansible_host: {description: The address Ansible connects to., type: str}
    ansible_user: {description: The login user (absent when neither the image nor O(ansible_user) tells)., type: str}
    role: {description: master or worker., type: str}
    nodegroup: {description: The Magnum nodegroup., type: str}
    gpu: {description: Whether the node's flavor has GPUs., type: bool}
    networks:
      description: Network name -> ip, mac, mtu, cidr, prefix, gateway, port_id, ipoib_mode.
      type: dict
groups:
  description: Group name -> host names.
  returned: always
  type: dict
  sample: {cluster_k8s_demo: [kube-ab12c-control-plane-x7k2p], masters: [kube-ab12c-control-plane-x7k2p],
           workers: [], nodegroup_default_master: [kube-ab12c-control-plane-x7k2p], gpu: []}
hostvars:
  description: Host name -> its host vars (the role adds the hosts to the running play with them).
  returned: always
  type: dict
host_groups:
  description: Host name -> the groups it is in.
  returned: always
  type: dict
  sample: {kube-ab12c-control-plane-x7k2p: [cluster_k8s_demo, masters, nodegroup_default_master]}
path:
  description: The file written (null without O(path)).
  returned: always
  type: str
cluster:
  description: The cluster the inventory is of.
  returned: always
  type: dict
  contains:
    name: {description: Its name., type: str}
    uuid: {description: Its UUID., type: str}
    era: {description: "C(heat) or C(cluster_api): how its nodes were found.", type: str}
    stack_id: {description: Its Heat stack id or Cluster API name., type: str}
    status: {description: Its status., type: str}
api_calls:
  description: HTTP requests the run made (the token included).
  returned: always
  type: int
"""

# Ansible packs a module with the module_utils it imports; this import tells it the module is a
# new-style one (its parameters arrive through AnsibleModule), the rest comes from container_infra.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from container_infra.cloud.module import run_module  # noqa: E402
from container_infra.modules.os_container_infra_inventory import ARGUMENT_SPEC, run  # noqa: E402


def main():
    run_module(ARGUMENT_SPEC, run, operation="building the inventory of",
               resource=lambda params: f"stack {params['stack']}" if params.get("stack")
               else f"cluster {params['cluster']}", module_class=AnsibleModule,
               mutually_exclusive=[("cluster", "stack")], required_one_of=[("cluster", "stack")])


if __name__ == "__main__":
    main()
