"""Ansible inventory plugin container_infra: Magnum clusters' nodes, as os_container_infra_inventory writes them."""

from __future__ import annotations

import os

DOCUMENTATION = r"""
---
name: container_infra
short_description: Magnum clusters' nodes as an inventory - groups per cluster, role, nodegroup and GPU
description:
  - Reads the nodes of the named Magnum clusters (or of every cluster of the project) from an OpenStack
    cloud, in either driver era (Heat stack, or Nova servers named after a Cluster API cluster's C(stack_id)).
  - Gives the same groups and host vars as the module C(os_container_infra_inventory) writes, built by the
    same code - groups C(cluster_<cluster>), C(masters), C(workers), C(nodegroup_<nodegroup>) and C(gpu);
    host vars C(ansible_host), C(ansible_user), C(container_infra_cluster), C(container_infra_role),
    C(container_infra_nodegroup), C(container_infra_server_id), C(container_infra_flavor),
    C(container_infra_gpu) and C(container_infra_networks).
  - Bulk requests only - one server listing for all the clusters (pages of 1,000 servers), one port listing,
    one network, one subnet and one image listing, plus the cluster listing, each cluster's nodegroups and
    each Heat-era cluster's stack (two requests).
  - A cluster that has no stack yet, or whose stack cannot be read, is left out with a warning when all
    clusters are listed, and is an error when O(clusters) names it.
  - The file's name must end in C(.container_infra.yml) or C(.container_infra.yaml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it makes the file one of this plugin's.
    required: true
    choices: [container_infra]
    type: str
  cloud:
    description: The name of the cloud in C(clouds.yaml) (without it, the C(OS_*) environment is used).
    type: str
  clusters:
    description: The clusters (names or UUIDs) to list; empty or absent - every cluster of the project.
    type: list
    elements: str
    default: []
  network:
    description: The network whose IP is C(ansible_host) for nodes with no floating IP.
    type: str
  ansible_user:
    description: The login user of every node, instead of the one the image's properties give.
    type: str
  stacks:
    description:
      - Heat stacks not made by Magnum - the toolkit's Swarm without Magnum - to list too, each as a cluster
        named after its stack. With O(stacks) and no O(clusters), no Magnum cluster is listed.
    type: list
    elements: str
    default: []
  extra_host_vars:
    description:
      - Variables added to every host (they win over the computed ones of the same name).
      - A relative C(ansible_ssh_private_key_file) is taken from this file's directory.
    type: dict
    default: {}
  jump_via_master:
    description:
      - Reach nodes without a floating IP through the first master of their cluster that has one
        (C(ansible_ssh_common_args) gains a C(ProxyCommand)), as the static inventories do.
    type: bool
    default: true
"""

EXAMPLES = r"""
# inventories/sandbox/clusters.container_infra.yml
plugin: container_infra
cloud: sandbox
clusters: [k8s-demo, swarm-demo]
network: private
keyed_groups:
  - key: container_infra_flavor
    prefix: flavor
compose:
  lln_ip: container_infra_networks.lln.ip | default(omit)
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/container-infra/inventory
cache_timeout: 300
"""

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402
from ansible.utils.display import Display  # noqa: E402
from ansible.utils.unsafe_proxy import wrap_var  # noqa: E402

try:
    from container_infra.cloud import Cloud, CloudError
    from container_infra.discovery import collect
    from container_infra.inventory import inventory_of
except ImportError as exc:
    # Ansible loads the plugin whatever the inventory; the error is raised when a file of ours is parsed.
    MISSING = exc
else:
    MISSING = None

display = Display()
SUFFIXES = (".container_infra.yml", ".container_infra.yaml")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "container_infra"

    def verify_file(self, path):
        return super().verify_file(path) and str(path).endswith(SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        self._source_dir = os.path.dirname(os.path.abspath(path))
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        refresh = self.get_option("cache") and not cache
        data = None
        if use_cache:
            try:
                data = self._cache[cache_key]
            except KeyError:
                refresh = True
        if data is None:
            data = self._fetch()
        if refresh:
            self._cache[cache_key] = data
        for warning in data.get("warnings", []):
            display.warning(warning)
        self._populate(data["inventory"])

    def _extra_host_vars(self):
        extra = dict(self.get_option("extra_host_vars") or {})
        key = extra.get("ansible_ssh_private_key_file")
        if key and not os.path.isabs(os.path.expanduser(str(key))):
            extra["ansible_ssh_private_key_file"] = os.path.join(self._source_dir, str(key))
        return extra

    def _fetch(self):
        """The inventory from the cloud: ``{"inventory": ..., "warnings": [...]}`` (what the cache keeps)."""
        if MISSING is not None:
            raise AnsibleParserError(
                f"the container_infra inventory plugin needs the container_infra package ({MISSING}); run Ansible "
                "with the interpreter where it is installed (the toolkit's .venv)")
        clusters = [c for c in self.get_option("clusters") or [] if c]
        cloud = None
        failure = None
        try:
            cloud = Cloud.from_params({"cloud": self.get_option("cloud"), "interface": "public"})
            stacks = [s for s in self.get_option("stacks") or [] if s]
            collected = collect(cloud, clusters or None, skip_unready=not clusters, stacks=stacks,
                                clusters=bool(clusters) or not stacks)
            data = {"inventory": inventory_of(collected, network=self.get_option("network"),
                                              ansible_user=self.get_option("ansible_user"),
                                              extra_host_vars=self._extra_host_vars(),
                                              jump_via_master=self.get_option("jump_via_master")),
                    "warnings": collected["warnings"]}
        except CloudError as exc:
            failure = str(exc)
        finally:
            if cloud is not None:
                cloud.close()
        if failure is not None:
            raise AnsibleParserError(failure)
        return data

    def _populate(self, built):
        strict = self.get_option("strict")
        for group, content in built["all"]["children"].items():
            self.inventory.add_group(group)
            for host, variables in (content.get("hosts") or {}).items():
                self.inventory.add_host(host, group=group)
                for key, value in (variables or {}).items():
                    # Cloud data (names, addresses, metadata): never templated.
                    self.inventory.set_variable(host, key, wrap_var(value))
        for host in self.inventory.hosts:
            hostvars = self.inventory.get_host(host).get_vars()
            if "container_infra_cluster" not in hostvars:
                continue  # another source's host in the same inventory
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
