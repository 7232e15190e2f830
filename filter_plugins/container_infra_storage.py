"""Jinja filters of the container_infra_storage role (thin: the logic is container_infra.storage)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from container_infra import beegfs, gluster, storage, storage_kubernetes


def storage_plan(entries, cluster, role, nodegroup):
    """This node's file systems, the spec checked first (one sentence per problem)."""
    try:
        return storage.node_plan(entries or [], cluster or "", role or "worker", nodegroup or "")
    except storage.StorageError as exc:
        raise AnsibleFilterError(str(exc)) from None


def storage_node_mounts(plan, manila, networks, host="", with_secrets=False, gluster_layout=None):
    return storage.node_mounts(plan, manila, networks, host, with_secrets, gluster_layout)


class FilterModule:
    def filters(self):
        return {
            "container_infra_storage_plan": storage_plan,
            "container_infra_storage_manila_requests": storage.manila_requests,
            "container_infra_storage_share_errors": storage.share_errors,
            "container_infra_storage_needs_ensure": storage.needs_ensure,
            "container_infra_storage_manila_errors": storage.manila_errors,
            "container_infra_storage_manila_facts": storage.manila_facts,
            "container_infra_storage_node_mounts": storage_node_mounts,
            "container_infra_storage_summary": storage.summary,
            "container_infra_storage_gluster_serving": gluster.node_serving,
            "container_infra_storage_gluster_layout": gluster.layout,
            "container_infra_storage_gluster_outside": gluster.outside_hosts,
            "container_infra_storage_gluster_bricks": gluster.node_bricks,
            "container_infra_storage_glusterd": gluster.glusterd_workload,
            "container_infra_storage_gluster_volumes": gluster.volume_calls,
            "container_infra_storage_kubernetes_clusters": storage_kubernetes.clusters,
            "container_infra_storage_kubernetes_objects": storage_kubernetes.objects,
            "container_infra_storage_kubernetes_render": storage_kubernetes.render,
            "container_infra_storage_beegfs_files": beegfs.node_files,
            "container_infra_storage_beegfs_names": beegfs.names,
            "container_infra_storage_beegfs_packages": beegfs.packages,
            "container_infra_storage_beegfs_services": beegfs.services,
        }
