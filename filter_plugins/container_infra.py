"""Jinja filters of the container-infra roles: names for functions of the container_infra package."""

from __future__ import annotations

from container_infra import credentials, inventory, magnum, server_ports, swarm_spec


class FilterModule:
    def filters(self):
        return {
            "container_infra_host_groups": inventory.host_groups,
            "container_infra_cluster_group": inventory.cluster_group,
            "container_infra_hostvars": inventory.hostvars_of,
            "container_infra_select_nodes": inventory.select_nodes,
            "container_infra_port_tag": server_ports.cluster_port_tag,
            "container_infra_nic_interfaces": inventory.nic_interfaces,
            "container_infra_leaving_workers": swarm_spec.leaving_workers,
            "container_infra_swarm_spec_problems": swarm_spec.swarm_spec_problems,
            "container_infra_swarm_networks": swarm_spec.swarm_networks,
            "container_infra_swarm_stack_nodegroups": swarm_spec.swarm_stack_nodegroups,
            "container_infra_heat_resource_name": swarm_spec.heat_resource_name,
            "container_infra_swarm_stack_plan": swarm_spec.swarm_stack_plan,
            "container_infra_swarm_stack_problem": swarm_spec.swarm_stack_problem,
            "container_infra_default_nodegroup": magnum.default_nodegroup,
            "container_infra_node_count": magnum.node_count,
            "container_infra_network_problems": magnum.network_problems,
            "container_infra_cluster_name_problem": magnum.cluster_name_problem,
            "container_infra_ssh_fingerprint": credentials.ssh_fingerprint,
        }
