"""The Manila CSI driver's PersistentVolume, claim and StorageClass the storage role writes for a Kubernetes
cluster's CephFS shares, validated offline against the Kubernetes JSON schemas (kubernetes-validate, strict:
an unknown or misspelt field fails), and the role's task file writing them beside a kubeconfig.

No Kubernetes API runs here (nor in the sandbox), so applying them is not tested."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from container_infra import storage, storage_kubernetes

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
# The oldest Kubernetes a Magnum cloud still deploys here and the newest the validator knows.
VERSIONS = ("1.28", kubernetes_validate.latest_version())
SHARE_ID = "5a1c3b1e-8d8e-4a7b-9c55-0e4f1f3d2a10"
RULE_ID = "0b7e2f44-2d7c-4b1b-8a4c-61c9f2b0c0de"


def entry(**more) -> dict:
    cephfs = {"share": "scratch-share", "create": True, "size": 10, "share_type": "cephfs"}
    cephfs.update(more.pop("cephfs", {}))
    return {"name": "scratch", "kind": "cephfs", "path": "/mnt/scratch", "cephfs": cephfs} | more


def requests_of(*entries: dict, cluster: str = "k8s-a") -> list[dict]:
    return storage.manila_requests([storage.node_plan(list(entries), cluster, "worker", "default-worker")])


def manila(requests: list[dict], **share) -> dict:
    found = [{"share": {"id": SHARE_ID, "size": 10, "share_type": "cephfs", "share_proto": "CEPHFS",
                        "status": "available", "export_locations": [
                            {"path": "10.80.0.2:6789:/volumes/_nogroup/abc/def", "preferred": True}],
                        "access_rules": [{"id": RULE_ID, "access_type": "cephx", "access_to": r["user"],
                                          "access_level": r["access_level"], "state": "active",
                                          "access_key": "AQBcanarykey=="}]} | share}
             for r in requests]
    return storage.manila_facts(requests, found)


def objects(*entries: dict, **share) -> dict:
    requests = requests_of(*entries)
    return storage_kubernetes.objects(requests, manila(requests, **share))["k8s-a"]


def by_kind(items: list[dict]) -> dict[str, dict]:
    return {item["kind"]: item for item in items}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_volume_claim_and_class_are_valid_kubernetes_objects(version):
    made = objects(entry(cephfs={"kubernetes": {"storage_class": "manila-cephfs", "namespace": "science"}}))
    assert made["errors"] == []
    assert [item["kind"] for item in made["present"]] == ["StorageClass", "PersistentVolume", "PersistentVolumeClaim"]
    for item in made["present"]:
        kubernetes_validate.validate(item, version, strict=True)
    # The text the role writes holds the same objects.
    assert [doc for doc in yaml.safe_load_all(storage_kubernetes.render(made["present"])) if doc] == made["present"]


def test_the_validator_refuses_a_misspelt_field():
    """The schema check is real: a field Kubernetes does not know fails strict validation."""
    volume = by_kind(objects(entry())["present"])["PersistentVolume"]
    volume["spec"]["persistentVolumeReclaimPolicyy"] = volume["spec"].pop("persistentVolumeReclaimPolicy")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(volume, VERSIONS[-1], strict=True)
    claim = by_kind(objects(entry())["present"])["PersistentVolumeClaim"]
    claim["spec"]["resources"]["requests"] = "10Gi"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(claim, VERSIONS[-1], strict=True)


def test_the_static_volume_names_the_share_and_its_access_rule_and_keeps_the_share():
    made = by_kind(objects(entry())["present"])
    volume, claim = made["PersistentVolume"], made["PersistentVolumeClaim"]
    assert "StorageClass" not in made
    csi = volume["spec"]["csi"]
    assert csi["driver"] == "cephfs.manila.csi.openstack.org"
    assert csi["volumeAttributes"] == {"shareID": SHARE_ID, "shareAccessID": RULE_ID, "cephfs-mounter": "fuse"}
    assert csi["volumeHandle"] == SHARE_ID
    assert csi["nodeStageSecretRef"] == csi["nodePublishSecretRef"] == {"name": "csi-manila-secrets",
                                                                        "namespace": "default"}
    # Deleting the claim never deletes the share the spec owns.
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert volume["spec"]["capacity"] == {"storage": "10Gi"} == claim["spec"]["resources"]["requests"]
    assert volume["spec"]["accessModes"] == claim["spec"]["accessModes"] == ["ReadWriteMany"]
    # Bound to each other by name, with no storage class: no provisioner or other claim takes either.
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"] == "container-infra-k8s-a-scratch"
    assert volume["spec"]["claimRef"] == {"kind": "PersistentVolumeClaim", "namespace": "default",
                                          "name": "scratch"}
    assert volume["spec"]["storageClassName"] == claim["spec"]["storageClassName"] == ""
    # No key reaches Kubernetes: the driver reads it from Manila with its own credentials.
    assert "AQBcanarykey" not in storage_kubernetes.render(objects(entry())["present"])


def test_a_read_only_rule_kernel_client_and_odd_names_give_valid_objects():
    made = by_kind(objects(entry(name="Big_Data", cephfs={"access_level": "ro", "client": "kernel"}))["present"])
    volume, claim = made["PersistentVolume"], made["PersistentVolumeClaim"]
    assert volume["spec"]["accessModes"] == ["ReadOnlyMany"] and volume["spec"]["csi"]["readOnly"] is True
    assert volume["spec"]["csi"]["volumeAttributes"]["cephfs-mounter"] == "kernel"
    assert volume["metadata"]["name"] == "container-infra-k8s-a-big-data" and claim["metadata"]["name"] == "big-data"
    for item in (volume, claim):
        kubernetes_validate.validate(item, VERSIONS[-1], strict=True)


def test_the_storage_class_takes_the_share_type_from_the_spec_or_from_manila():
    made = by_kind(objects(entry(cephfs={"kubernetes": {"storage_class": "gold"}}))["present"])
    klass = made["StorageClass"]
    assert klass["provisioner"] == "cephfs.manila.csi.openstack.org" and klass["parameters"]["type"] == "cephfs"
    assert klass["parameters"]["csi.storage.k8s.io/node-stage-secret-name"] == "csi-manila-secrets"
    assert made["PersistentVolume"]["spec"]["storageClassName"] == "gold"
    assert made["PersistentVolumeClaim"]["spec"]["storageClassName"] == "gold"
    attached = entry(cephfs={"create": False, "size": None, "share_type": None,
                             "kubernetes": {"storage_class": "gold"}})
    assert by_kind(objects(attached, share_type="ceph-ssd")["present"])["StorageClass"]["parameters"]["type"] == \
        "ceph-ssd"


def test_one_class_name_for_two_share_types_is_one_sentence():
    one = entry(cephfs={"kubernetes": {"storage_class": "gold"}})
    two = entry(name="other", path="/mnt/other", cephfs={"share": "other", "share_type": "ssd",
                                                         "kubernetes": {"storage_class": "gold"}})
    made = objects(one, two)
    assert len(made["errors"]) == 1 and "storage_class gold is also another entry's" in made["errors"][0]


def test_a_share_without_its_rule_id_cannot_be_written():
    requests = requests_of(entry())
    facts = manila(requests)
    facts["k8s-a/scratch"]["access_rule_id"] = None
    made = storage_kubernetes.objects(requests, facts)["k8s-a"]
    assert made["present"] == [] and "no share ID or access rule ID" in made["errors"][0]


def test_an_absent_share_deletes_its_claim_then_its_volume():
    made = storage_kubernetes.objects(requests_of(entry(state="absent")), {})["k8s-a"]
    assert made["present"] == [] and [(o["kind"], o["metadata"]["name"]) for o in made["absent"]] == [
        ("PersistentVolumeClaim", "scratch"), ("PersistentVolume", "container-infra-k8s-a-scratch")]


@pytest.mark.parametrize(("kube", "words"), [
    ({"claim": "Not_A_Name"}, "cephfs.kubernetes.claim 'Not_A_Name' is not an object name"),
    ({"namespace": "x" * 64}, "is not a namespace name"),
    ({"storage_class": "-gold"}, "cephfs.kubernetes.storage_class '-gold' is not an object name"),
])
def test_bad_kubernetes_names_are_one_sentence(kube, words):
    errors = storage.check_spec([entry(cephfs={"kubernetes": kube})], "k8s-a")
    assert len(errors) == 1 and words in errors[0] and errors[0].count(". ") == 0, errors


def test_the_roles_task_file_writes_them_beside_the_kubeconfig_once(tmp_path):
    """tasks/kubernetes.yml alone (the Manila answers given as facts): the file is written 0600 beside the
    kubeconfig, validates, and a second run changes nothing; a cluster without a kubeconfig gets none."""
    credentials = tmp_path / "k8s-a" / "credentials"
    credentials.mkdir(parents=True)
    (credentials / "config").write_text("apiVersion: v1\nkind: Config\n")
    requests = requests_of(entry(cephfs={"kubernetes": {"storage_class": "gold"}})) + \
        requests_of(entry(), cluster="swarm-b")
    facts = manila(requests)
    inventory = credentials.parent / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}))
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"container_infra_storage_requests": requests, "container_infra_storage_manila": facts,
                 "container_infra_storage_cluster": "k8s-a"},
        "tasks": [{"name": "The role's Kubernetes tasks", "ansible.builtin.include_role": {
            "name": "container_infra_storage", "tasks_from": "kubernetes.yml"}}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")

    def play_once() -> dict:
        # The cluster's written inventory beside its credentials: the role's default finds the kubeconfig there.
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "-c", "local",
                               "-e", f"ansible_python_interpreter={BIN / 'python'}",
                               # As an operator turns it off: a string on the command line.
                               "-e", "container_infra_storage_kubernetes_apply=false", str(play)],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        report = json.loads(done.stdout[done.stdout.index("{"):])
        assert done.returncode == 0, done.stdout[-3000:]
        return report

    first = play_once()
    written = credentials / "storage-volumes.yml"
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    docs = [doc for doc in yaml.safe_load_all(written.read_text()) if doc]
    assert [doc["kind"] for doc in docs] == ["StorageClass", "PersistentVolume", "PersistentVolumeClaim"]
    for doc in docs:
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
    assert "AQBcanarykey" not in written.read_text()
    assert first["stats"]["localhost"]["changed"] >= 1
    second = play_once()
    assert second["stats"]["localhost"]["changed"] == 0
    assert sorted(p.name for p in credentials.iterdir()) == ["config", "storage-volumes.yml"]
