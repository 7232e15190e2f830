"""The Kubernetes side of a cluster's CephFS shares: the static PersistentVolume and claim of each share for
the Manila CSI driver (cloud-provider-openstack's manila-csi-plugin), and a StorageClass where an entry asks
for one.

A share the toolkit attached is handed to Kubernetes by its Manila IDs (``shareID`` and the cephx access
rule's ``shareAccessID``, the CSI driver's volume attributes for pre-provisioned shares), never by its key:
the driver's node plugin reads the key from Manila with the OpenStack credentials of its own Secret. The
volume is ``Retain``: deleting the claim or the volume never deletes the share (the spec owns it), and the
claim is bound to its volume by name (``volumeName``, the volume's ``claimRef``) so no other claim takes it.

The objects are plain dicts; ``render`` writes them as one multi-document YAML text that the storage role
writes beside the cluster's kubeconfig and applies where the cluster has a Kubernetes API. The unit tests
validate them against the Kubernetes JSON schemas (``kubernetes-validate``).
"""

from __future__ import annotations

import json
import re

import yaml

#: The CephFS instance of the driver as its Helm chart names it (``--drivername``).
CSI_DRIVER = "cephfs.manila.csi.openstack.org"
#: The Secret with the OpenStack credentials the driver's deployment reads (its examples' name).
CSI_CREDENTIALS = "csi-manila-secrets"
MANAGED_BY = {"app.kubernetes.io/managed-by": "container-infra"}
# A DNS-1123 subdomain (object names) and label (namespaces).
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def object_name(text: str, limit: int = 253) -> str:
    """``text`` as a Kubernetes object name: lower case, other characters as '-', trimmed to ``limit``."""
    name = re.sub(r"[^a-z0-9.-]+", "-", str(text).lower())[:limit]
    return name.strip("-.") or "share"


def check(entry: dict, where: str) -> list[str]:
    """The problems of a CephFS entry's ``cephfs.kubernetes`` keys, one sentence each."""
    kube = (entry.get("cephfs") or {}).get("kubernetes") or {}
    errors = []
    for key, pattern, what in (("claim", SUBDOMAIN, "an object name"), ("storage_class", SUBDOMAIN, "an object name"),
                               ("namespace", LABEL, "a namespace name")):
        value = kube.get(key)
        if value is not None and not pattern.match(str(value)):
            errors.append(f"{where}: cephfs.kubernetes.{key} {value!r} is not {what} Kubernetes takes; use lower-case "
                          "letters, digits and '-' (at most 63 for a namespace).")
    return errors


def names(request: dict, namespace: str) -> dict[str, str]:
    """A share's volume, claim and namespace names in Kubernetes."""
    kube = request.get("kubernetes") or {}
    return {"volume": object_name(f"container-infra-{request['cluster']}-{request['name']}"),
            "claim": kube.get("claim") or object_name(request["name"]),
            "namespace": kube.get("namespace") or namespace}


def _secret_params(secret: str, secret_namespace: str) -> dict[str, str]:
    out = {}
    for use in ("provisioner", "controller-expand", "node-stage", "node-publish"):
        out[f"csi.storage.k8s.io/{use}-secret-name"] = secret
        out[f"csi.storage.k8s.io/{use}-secret-namespace"] = secret_namespace
    return out


def objects(requests: list[dict], manila: dict[str, dict] | None, driver: str = CSI_DRIVER,
            credentials: str = CSI_CREDENTIALS, credentials_namespace: str = "default",
            namespace: str = "default") -> dict[str, dict]:
    """Per cluster: ``present`` (the StorageClasses, volumes and claims of its present CephFS shares, in the
    order to apply them), ``absent`` (the claims and volumes of its absent ones, in the order to delete them)
    and ``errors`` (one sentence each)."""
    manila = manila or {}
    out: dict[str, dict] = {}
    for request in requests or []:
        cluster = out.setdefault(request["cluster"], {"present": [], "absent": [], "errors": [], "classes": {}})
        name = names(request, namespace)
        if request["state"] == "absent":
            cluster["absent"] += [
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": name["claim"], "namespace": name["namespace"]}},
                {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name["volume"]}}]
            continue
        share = manila.get(request["key"]) or {}
        where = f"storage[{request['name']}] of cluster {request['cluster']}"
        if not share.get("id") or not share.get("access_rule_id"):
            cluster["errors"].append(f"{where}: Manila gave no share ID or access rule ID for share "
                                     f"{request['share']}, so its Kubernetes volume cannot be written; run again "
                                     "once the share and its cephx rule are available.")
            continue
        kube = request.get("kubernetes") or {}
        access = "ReadOnlyMany" if request.get("access_level") == "ro" else "ReadWriteMany"
        storage = f"{share.get('size') or request.get('size') or 1}Gi"
        klass = kube.get("storage_class") or ""
        mounter = request.get("client") or "fuse"
        if klass:
            share_type = request.get("share_type") or share.get("share_type") or "default"
            storage_class = {
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": klass, "labels": dict(MANAGED_BY)},
                "provisioner": driver,
                "parameters": {"type": share_type, "cephfs-mounter": mounter,
                               **_secret_params(credentials, credentials_namespace)},
                "reclaimPolicy": "Delete", "allowVolumeExpansion": True, "volumeBindingMode": "Immediate"}
            seen = cluster["classes"].get(klass)
            if seen is None:
                cluster["classes"][klass] = storage_class
                cluster["present"].append(storage_class)
            elif seen != storage_class:
                cluster["errors"].append(
                    f"{where}: cephfs.kubernetes.storage_class {klass} is also another entry's with another share "
                    "type or client; give each share type its own storage class name.")
                continue
        ref = {"name": credentials, "namespace": credentials_namespace}
        cluster["present"].append({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name["volume"], "labels": dict(MANAGED_BY),
                         "annotations": {"container-infra/share": request["share"],
                                         "container-infra/cluster": request["cluster"]}},
            "spec": {
                "accessModes": [access], "capacity": {"storage": storage},
                # The spec owns the share: a deleted claim or volume never deletes it.
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": klass, "volumeMode": "Filesystem",
                "claimRef": {"kind": "PersistentVolumeClaim", "namespace": name["namespace"], "name": name["claim"]},
                "csi": {"driver": driver, "volumeHandle": share["id"], "readOnly": access == "ReadOnlyMany",
                        "nodeStageSecretRef": ref, "nodePublishSecretRef": dict(ref),
                        "volumeAttributes": {"shareID": share["id"], "shareAccessID": share["access_rule_id"],
                                             "cephfs-mounter": mounter}}}})
        cluster["present"].append({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name["claim"], "namespace": name["namespace"], "labels": dict(MANAGED_BY)},
            "spec": {"accessModes": [access], "resources": {"requests": {"storage": storage}},
                     "storageClassName": klass, "volumeMode": "Filesystem", "volumeName": name["volume"]}})
    for cluster in out.values():
        cluster.pop("classes")
    return out


def render(items: list[dict]) -> str:
    """Objects as one multi-document YAML text (stable: the same objects give the same text)."""
    header = ("# Written by container-infra (the storage role) from the cluster's storage spec: the Manila CSI\n"
              "# driver's volumes and claims of its CephFS shares. Changes here are overwritten.\n")
    # Plain types first: Ansible hands its own (tagged) dicts and strings, which safe_dump refuses.
    plain = json.loads(json.dumps(list(items or [])))
    return header + "".join("---\n" + yaml.safe_dump(item, default_flow_style=False, sort_keys=True)
                            for item in plain)


def clusters(nodes: list[dict]) -> list[dict]:
    """The play's clusters with a kubeconfig path, once each (``nodes``: each node's cluster and kubeconfig)."""
    seen: dict[str, dict] = {}
    for node in nodes or []:
        if node and node.get("kubeconfig") and node.get("cluster") not in seen:
            seen[node["cluster"]] = {"cluster": node["cluster"], "kubeconfig": node["kubeconfig"]}
    return list(seen.values())
