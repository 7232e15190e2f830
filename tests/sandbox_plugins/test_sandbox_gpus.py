"""Emulated GPUs of the Docker-backed nodes: the flavor's extra specs -> the node's /etc/sandbox/gpus.tsv, with
stable per-node UUIDs, carried by the compute driver's config drive. Runs with the services' interpreter."""

import types

import pytest

pytest.importorskip("nova")

from container_infra_sandbox import gpus, nova_docker
from nova import exception

NODE = "7f1c2d3e-0000-4000-8000-000000000001"
V100 = {"gpu:vendor": "nvidia", "gpu:model": "V100", "gpu:count": "2", "resources:VCPU": "0"}


def test_a_gpu_flavor_gives_its_count_of_gpus_with_uuids_stable_per_node_and_index():
    first = gpus.node_gpus(NODE, V100)
    assert [g["index"] for g in first] == [0, 1]
    assert {g["name"] for g in first} == {"Tesla V100-SXM2-32GB"} and first[0]["memory_mib"] == 32768
    assert all(g["uuid"].startswith("GPU-") and len(g["uuid"]) == 40 for g in first)
    assert len({g["uuid"] for g in first}) == 2
    assert gpus.node_gpus(NODE, V100) == first  # a node built again has the same GPUs
    other = gpus.node_gpus(NODE.replace("1", "2"), V100)
    assert not {g["uuid"] for g in other} & {g["uuid"] for g in first}
    assert gpus.parse(gpus.render(first)) == first
    assert gpus.node_gpus(NODE, {"gpu:count": "1", "gpu:model": "B200"})[0]["name"] == "NVIDIA B200"


def test_flavors_without_nvidia_gpus_get_none_and_bad_counts_are_one_sentence():
    assert gpus.node_files(NODE, {"resources:VCPU": "0"}) == {}
    assert gpus.node_files(NODE, None) == {}
    assert gpus.node_files(NODE, {"gpu:vendor": "amd", "gpu:count": "4"}) == {}
    with pytest.raises(gpus.GpuSpecError, match=r"gpu:count='two' is not a whole number; set it"):
        gpus.gpu_count({"gpu:count": "two"})
    with pytest.raises(gpus.GpuSpecError, match=r"outside 0\.\.16"):
        gpus.gpu_count({"gpu:count": "17"})


def test_the_driver_writes_the_gpus_into_the_config_drive_unless_emulation_is_off(monkeypatch):
    instance = types.SimpleNamespace(uuid=NODE, flavor=types.SimpleNamespace(extra_specs=V100))
    files = nova_docker.gpu_files(instance)
    assert list(files) == ["/etc/sandbox/gpus.tsv"]
    assert [g["uuid"] for g in gpus.parse(files["/etc/sandbox/gpus.tsv"])] == [
        g["uuid"] for g in gpus.node_gpus(NODE, V100)]
    monkeypatch.setattr(nova_docker.CONF.sandbox_docker, "emulate_gpus", False)
    assert nova_docker.gpu_files(instance) == {}
    monkeypatch.setattr(nova_docker.CONF.sandbox_docker, "emulate_gpus", True)
    bad = types.SimpleNamespace(uuid=NODE, flavor=types.SimpleNamespace(extra_specs={"gpu:count": "x"}))
    with pytest.raises(exception.InstanceDeployFailure, match="gpu:count='x' is not a whole number"):
        nova_docker.gpu_files(bad)
