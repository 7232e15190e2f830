#!/usr/bin/python
"""Ansible module os_container_infra_template: a thin shim over container_infra.modules.os_container_infra_template."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: os_container_infra_template
short_description: Create, update and delete a Magnum cluster template
description:
  - Ensures a Magnum cluster template, found by name, has the given fields. Only the fields given are
    compared; names and ids of images, flavors, networks and keypairs count as the same.
  - A template that clusters use cannot be changed by Magnum (except C(public) and C(hidden)); then the
    module fails saying that a new template (new name) and a cluster upgrade are the way, unless
    I(when_in_use=keep) tells it to leave the template unchanged and report it.
  - Runs on the control host with the interpreter where the container_infra package is installed.
version_added: "0.1.0"
author: container-infra maintainers
extends_documentation_fragment:
  - container_infra
  - container_infra.no_wait
options:
  name:
    description: Template name (or UUID).
    type: str
    required: true
  state:
    description: C(present) creates or updates, C(absent) deletes (refused while clusters use it).
    type: str
    choices: [present, absent]
    default: present
  coe:
    description: Container orchestration engine. Required to create.
    type: str
    choices: [kubernetes, swarm, swarm-mode, mesos, dcos]
  image:
    description: Glance image name or id (its C(os_distro) picks the Magnum driver). Required to create.
    type: str
    aliases: [image_id]
  keypair:
    description: Default Nova keypair for clusters.
    type: str
    aliases: [keypair_id]
  flavor:
    description: Default worker flavor.
    type: str
    aliases: [flavor_id]
  master_flavor:
    description: Default master flavor.
    type: str
    aliases: [master_flavor_id]
  external_network:
    description: External network name or id (floating IPs, routers). Required to create.
    type: str
    aliases: [external_network_id]
  fixed_network:
    description: Existing tenant network for the nodes.
    type: str
  fixed_subnet:
    description: Subnet of I(fixed_network).
    type: str
  network_driver:
    description: COE network driver (for example flannel or calico).
    type: str
  volume_driver:
    description: COE volume driver (for example cinder).
    type: str
  docker_storage_driver:
    description: Docker storage driver (for example overlay2).
    type: str
  docker_volume_size:
    description: Default Docker volume size in GiB.
    type: int
  server_type:
    description: C(bm) for bare metal, C(vm) for virtual machines.
    type: str
    choices: [vm, bm]
  labels:
    description: Labels (flat key/value strings) given to clusters made from the template.
    type: dict
  floating_ip_enabled:
    description: Give nodes floating IPs.
    type: bool
  master_lb_enabled:
    description: Load balancer in front of masters.
    type: bool
  tls_disabled:
    description: Disable TLS on the COE API.
    type: bool
  registry_enabled:
    description: Run a Docker registry in the cluster.
    type: bool
  insecure_registry:
    description: An insecure registry address for the nodes.
    type: str
  public:
    description: Visible to other projects (needs the admin role).
    type: bool
  hidden:
    description: Hidden from listings.
    type: bool
  dns_nameserver:
    description: DNS server for the nodes.
    type: str
  http_proxy:
    description: HTTP proxy for the nodes.
    type: str
  https_proxy:
    description: HTTPS proxy for the nodes.
    type: str
  no_proxy:
    description: Hosts the nodes reach without a proxy.
    type: str
  driver:
    description: Magnum driver name (Magnum 2024.1 and later), when the image does not pick it.
    type: str
  when_in_use:
    description:
      - What to do when the template differs but clusters use it, C(fail) (say what to do) or C(keep) (leave it).
    type: str
    choices: [fail, keep]
    default: fail
notes:
  - Supports check mode (from the same plan as a real run) and diff mode.
requirements:
  - python >= 3.10
  - container_infra (this toolkit's package), openstacksdk, python-magnumclient
"""

EXAMPLES = r"""
- name: A Kubernetes template for bare metal
  os_container_infra_template:
    cloud: sandbox
    name: k8s-bm
    coe: kubernetes
    image: fedora-coreos-sandbox
    external_network: public
    fixed_network: private
    fixed_subnet: private-subnet
    flavor: bm.standard
    master_flavor: bm.standard
    server_type: bm
    network_driver: flannel
    labels:
      kube_tag: v1.30.1

- name: Change a template only if no cluster uses it
  os_container_infra_template:
    cloud: sandbox
    name: k8s-bm
    labels: {kube_tag: v1.31.0}
    when_in_use: keep

- name: Remove it
  os_container_infra_template:
    cloud: sandbox
    name: k8s-bm
    state: absent
"""

RETURN = r"""
template:
  description: The template as Magnum shows it (empty when absent).
  returned: always
  type: dict
  contains:
    uuid: {description: Template UUID., type: str}
    name: {description: Template name., type: str, sample: k8s-bm}
    coe: {description: COE., type: str, sample: kubernetes}
    image_id: {description: Image as given., type: str}
    labels: {description: Labels., type: dict}
    driver: {description: Magnum driver chosen., type: str, sample: k8s_fedora_coreos_v1}
in_use_by:
  description: Names of the clusters that use the template (when an update or deletion was considered).
  returned: when state is present or absent
  type: list
  elements: str
skipped:
  description: With I(when_in_use=keep), why the template was left unchanged.
  returned: when a template in use was left
  type: str
magnum_microversion:
  description: The Magnum API microversion negotiated with the cloud.
  returned: always
  type: str
api_calls:
  description: HTTP requests this run made.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from container_infra.cloud.module import run_module  # noqa: E402
from container_infra.modules import os_container_infra_template  # noqa: E402


def main():
    run_module(os_container_infra_template.ARGUMENT_SPEC, os_container_infra_template.run, operation="managing",
               module_class=AnsibleModule, resource=lambda params: f"cluster template {params.get('name')}")


if __name__ == "__main__":
    main()
