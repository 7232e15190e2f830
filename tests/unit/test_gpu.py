"""The GPU role's logic (container_infra.gpu): repositories and packages by OS, the Docker and Swarm wiring,
containerd's drop-in, the device plugin (validated offline against the Kubernetes schemas), the final check; and
the daemon.json module's nested merge and flag check the role relies on."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import tomllib
import yaml

from container_infra import gpu

REPO = Path(__file__).resolve().parents[2]
SANDBOX = "http://10.80.0.2:8480"
INPUTS = {"source": "nvidia", "driver_packages": [], "toolkit_packages": ["nvidia-container-toolkit"],
          "branch": "550", "cuda_repository": f"{SANDBOX}/compute/cuda/repos",
          "toolkit_repository": f"{SANDBOX}/libnvidia-container", "family": "Debian", "distribution": "Debian",
          "version": "12.7", "architecture": "x86_64", "orchestrator": "auto", "resource_kind": "gpu"}
# The site's registry or mirror (container_infra_image_registry) the role's images come from.
REGISTRY = "registry.example.org:5000/mirror"
IMAGES = {"orchestrator": "auto", "verify": True, "verify_image": f"{REGISTRY}/library/ubuntu:24.04",
          "device_plugin_image": f"{REGISTRY}/nvidia/k8s-device-plugin:v0.17.0", "image_registry": REGISTRY}
GPUS = [{"index": 0, "uuid": "GPU-a", "name": "Tesla V100-SXM2-32GB", "memory_mib": 32768},
        {"index": 1, "uuid": "GPU-b", "name": "Tesla V100-SXM2-32GB", "memory_mib": 32768}]


def library(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_nvidias_repositories_as_nvidia_documents_them_only_the_url_is_the_sandboxs():
    plan = gpu.plan(INPUTS)
    assert plan["packages"] == ["cuda-drivers", "nvidia-container-toolkit"]
    assert [r["line"] for r in plan["apt"]] == [
        f"deb [signed-by=/etc/apt/keyrings/nvidia-cuda.asc] {SANDBOX}/compute/cuda/repos/debian12/x86_64/ /",
        f"deb [signed-by=/etc/apt/keyrings/nvidia-container-toolkit.asc] {SANDBOX}/libnvidia-container/stable/deb/"
        "$(ARCH) /"]
    assert [r["key_url"] for r in plan["apt"]] == [f"{SANDBOX}/compute/cuda/repos/debian12/x86_64/3bf863cc.pub",
                                                  f"{SANDBOX}/libnvidia-container/gpgkey"]
    real = gpu.plan(INPUTS | {"cuda_repository": "https://developer.download.nvidia.com/compute/cuda/repos",
                              "toolkit_repository": "https://nvidia.github.io/libnvidia-container",
                              "distribution": "Ubuntu", "version": "22.04", "architecture": "aarch64"})
    assert real["apt"][0]["line"].endswith("/compute/cuda/repos/ubuntu2204/sbsa/ /")
    rhel = gpu.plan(INPUTS | {"family": "RedHat", "distribution": "Rocky", "version": "9.4"})
    assert rhel["apt"] == [] and [r["url"] for r in rhel["dnf"]] == [
        f"{SANDBOX}/compute/cuda/repos/rhel9/x86_64/cuda-rhel9.repo",
        f"{SANDBOX}/libnvidia-container/stable/rpm/nvidia-container-toolkit.repo"]
    assert plan["swarm_resource"] == "DOCKER_RESOURCE_GPU"


def test_distribution_packages_by_os_family():
    debian = gpu.plan(INPUTS | {"source": "distribution"})
    assert debian["packages"] == ["nvidia-driver", "firmware-misc-nonfree", "nvidia-container-toolkit"]
    assert [r["name"] for r in debian["apt"]] == ["nvidia-container-toolkit"]  # the driver from Debian's archive
    ubuntu = gpu.plan(INPUTS | {"source": "distribution", "distribution": "Ubuntu", "version": "24.04",
                                "branch": "535"})
    assert ubuntu["packages"][:2] == ["nvidia-driver-535-server", "nvidia-utils-535-server"]
    assert gpu.plan(INPUTS | {"source": "none"})["packages"] == ["nvidia-container-toolkit"]
    assert gpu.plan(INPUTS | {"driver_packages": ["nvidia-driver-open"]})["packages"][0] == "nvidia-driver-open"


@pytest.mark.parametrize(("change", "words"), [
    ({"source": "nvidiaa"}, "container_infra_gpu_driver_source 'nvidiaa' is not one of nvidia, distribution, none"),
    ({"orchestrator": "nomad"}, "container_infra_gpu_orchestrator 'nomad' is not one of"),
    ({"cuda_repository": "10.80.0.2:8480"}, "container_infra_gpu_cuda_repository '10.80.0.2:8480' is not an"),
    ({"family": "Suse", "distribution": "SLES"}, "installs on the Debian and RedHat OS families, not Suse"),
    ({"distribution": "Raspbian"}, "NVIDIA's CUDA repository has no packages for Raspbian 12.7"),
    ({"architecture": "ppc64le"}, "no packages for the architecture ppc64le"),
    ({"family": "RedHat", "distribution": "Rocky", "source": "distribution"}, "Rocky ships no NVIDIA driver"),
    ({"resource_kind": "GPU 0"}, "container_infra_gpu_resource_kind 'GPU 0' is not a resource name"),
])
def test_bad_settings_are_one_sentence(change, words):
    with pytest.raises(gpu.GpuError, match=re.escape(words)) as error:
        gpu.plan(INPUTS | change)
    assert str(error.value).count(". ") == 0 and "\n" not in str(error.value)


MISSING = ("container_infra_image_registry is not set: name the registry or mirror the nodes pull images from "
           "(host[:port][/path]), or set {} to a full image reference.")


def test_the_images_a_node_needs_are_named_with_their_registry():
    assert gpu.image_problem(IMAGES) is None
    # Named in full, an image needs no registry; one the node does not need may be left empty.
    assert gpu.image_problem({"orchestrator": "docker", "verify": True, "verify_image": "r.example.org/base:1",
                              "device_plugin_image": "", "image_registry": ""}) is None
    assert gpu.image_problem({"orchestrator": "auto", "verify": False, "verify_image": "", "device_plugin_image": "",
                              "image_registry": ""}) is None
    assert gpu.image_problem({"orchestrator": "kubernetes", "verify": True, "verify_image": "",
                              "device_plugin_image": "localhost:5000/dp:1", "image_registry": ""}) is None


@pytest.mark.parametrize(("change", "sentence"), [
    ({"verify_image": "", "image_registry": ""}, MISSING.format("container_infra_gpu_verify_image")),
    ({"orchestrator": "kubernetes", "device_plugin_image": "", "image_registry": ""},
     MISSING.format("container_infra_gpu_device_plugin_image")),
    ({"verify_image": "ubuntu:24.04"}, "container_infra_gpu_verify_image ubuntu:24.04 names no registry; give it as "
                                       "<registry host>/<repository>:<tag>, from the registry the nodes pull from."),
    ({"orchestrator": "kubernetes", "device_plugin_image": "nvidia/k8s-device-plugin:v0.17.0"},
     "container_infra_gpu_device_plugin_image nvidia/k8s-device-plugin:v0.17.0 names no registry"),
    ({"image_registry": "https://registry.example.org", "verify_image": "https://registry.example.org/library/u:1"},
     "container_infra_image_registry 'https://registry.example.org' is not a registry or mirror as host[:port][/path]"),
    ({"verify_image": "has space"}, "container_infra_gpu_verify_image 'has space' is not an image reference"),
])
def test_an_image_the_node_needs_and_cannot_name_is_one_sentence(change, sentence):
    said = gpu.image_problem(IMAGES | change)
    assert said.startswith(sentence), said
    assert said.count(". ") == 0 and said.endswith(".") and "\n" not in said


def role_default(variable: str, *extra: str) -> dict:
    """A variable of the role's defaults as Ansible templates it, with ``extra`` -e arguments."""
    from ansible_runner import BIN, host_results
    from ansible_runner import run as ansible_run

    done = ansible_run([str(BIN / "ansible"), "localhost", "-e", "@roles/container_infra_gpu/defaults/main.yml",
                        *extra, "-m", "ansible.builtin.debug", "-a", f"var={variable}"])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [result] = host_results(done.stdout)
    return result


def test_the_default_images_are_built_under_the_sites_registry_and_empty_without_one():
    registry = ["-e", f"container_infra_image_registry={REGISTRY}/"]
    assert role_default("container_infra_gpu_verify_image", *registry)["container_infra_gpu_verify_image"] == (
        f"{REGISTRY}/library/ubuntu:24.04")
    assert role_default("container_infra_gpu_device_plugin_image", *registry)[
        "container_infra_gpu_device_plugin_image"] == f"{REGISTRY}/nvidia/k8s-device-plugin:v0.17.0"
    # No registry: '' (which the role's first check turns into its sentence), not an undefined-variable error.
    assert role_default("container_infra_gpu_verify_image")["container_infra_gpu_verify_image"] == ""
    # Set in full, the image wins.
    full = role_default("container_infra_gpu_verify_image", *registry,
                        "-e", "container_infra_gpu_verify_image=r.example.org/base:1")
    assert full["container_infra_gpu_verify_image"] == "r.example.org/base:1"


def test_the_role_stops_first_with_the_sentence_when_no_registry_is_named(tmp_path):
    """The role on localhost with no image and no registry: its argument check, then the image check fails with
    the sentence alone, before any task that changes the node."""
    from ansible_runner import BIN, host_results
    from ansible_runner import run as ansible_run

    playbook = tmp_path / "gpu.yml"
    playbook.write_text(yaml.safe_dump([{"name": "GPU", "hosts": "localhost", "gather_facts": False,
                                         "roles": [{"role": "container_infra_gpu"}]}]))
    done = ansible_run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                        "-e", f"ansible_python_interpreter={sys.executable}", "-e", "ansible_os_family=Debian",
                        str(playbook)], ANSIBLE_ROLES_PATH=str(REPO / "roles"))
    assert done.returncode != 0
    results = [r for r in host_results(done.stdout) if not r.get("skipped")]
    assert results[-1]["_task"] == ("container_infra_gpu : The images this node needs are named, each with its "
                                    "registry (checked before anything changes)"), results
    assert results[-1]["msg"] == MISSING.format("container_infra_gpu_verify_image")
    assert [r["_task"] for r in results[:-1]] == [
        "container_infra_gpu : Validating arguments against arg spec 'main' - NVIDIA driver and toolkit on GPU nodes, "
        "wired into Docker, Swarm, containerd, Kubernetes"]


def test_nvidia_smis_answer_is_parsed_and_garbage_is_a_sentence():
    text = "1, GPU-b, Tesla V100-SXM2-32GB, 32768\n0, GPU-a, Tesla V100-SXM2-32GB, 32768\n"
    assert gpu.parse_gpus(text) == GPUS
    assert gpu.parse_gpus("") == []
    with pytest.raises(gpu.GpuError, match="nvidia-smi answered 'No devices were found'"):
        gpu.parse_gpus("No devices were found\n")


def test_docker_settings_swarm_resources_and_labels():
    settings = gpu.daemon_settings(GPUS, "gpu", default_runtime=True, generic_resources=True)
    assert settings == {"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}},
                        "default-runtime": "nvidia", "node-generic-resources": ["gpu=GPU-a", "gpu=GPU-b"]}
    plain = gpu.daemon_settings(GPUS, "gpu", default_runtime=False, generic_resources=False)
    assert "default-runtime" not in plain and "node-generic-resources" not in plain
    # Docker upper-cases the kind in the variable it gives a task; the runtime must look for that one.
    assert gpu.swarm_resource("nvidia-gpu") == "DOCKER_RESOURCE_NVIDIA_GPU"
    assert gpu.swarm_labels(GPUS) == {"gpu": "true", "gpu.model": "Tesla V100-SXM2-32GB", "gpu.count": "2"}


def test_the_daemon_module_merges_runtimes_by_name_and_refuses_a_key_also_given_as_a_flag():
    module = library("container_infra_docker_daemon")
    current = {"tlsverify": True, "tlscacert": "/etc/docker/ca.pem", "runtimes": {"crun": {"path": "crun"}},
               "default-runtime": "runc"}
    wanted = module.merge(current, gpu.daemon_settings(GPUS, "gpu", True, True), ("runtimes",))
    assert wanted["runtimes"] == {"crun": {"path": "crun"},
                                  "nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}}
    assert wanted["tlsverify"] is True and wanted["tlscacert"] == "/etc/docker/ca.pem"
    assert wanted["default-runtime"] == "nvidia"
    assert module.merge(wanted, gpu.daemon_settings(GPUS, "gpu", True, True), ("runtimes",)) == wanted
    argv = ["dockerd", "--storage-driver", "vfs", "--add-runtime=nvidia=/x", "-H", "fd://"]
    assert module.flag_conflicts(argv, ["runtimes", "default-runtime", "node-generic-resources"]) == ["runtimes"]
    assert module.flag_conflicts(argv, ["hosts", "storage-driver", "metrics-addr"]) == ["hosts", "storage-driver"]
    assert module.flag_conflicts(["dockerd", "--default-runtime", "runc"], ["default-runtime"]) == ["default-runtime"]


def test_containerd_gets_the_runtime_as_an_imported_drop_in():
    dropin = tomllib.loads(gpu.containerd_dropin())
    cri = dropin["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert cri["default_runtime_name"] == "nvidia"
    assert cri["runtimes"]["nvidia"] == {"privileged_without_host_devices": False,
                                         "runtime_type": "io.containerd.runc.v2",
                                         "options": {"BinaryName": "/usr/bin/nvidia-container-runtime",
                                                     "SystemdCgroup": True}}
    glob = "/etc/containerd/conf.d/*.toml"
    main = 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "pause:3.9"\n'
    imported = gpu.containerd_imports(main, glob)
    assert tomllib.loads(imported)["imports"] == [glob]
    assert tomllib.loads(imported)["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "pause:3.9"
    assert gpu.containerd_imports(imported, glob) == imported
    other = gpu.containerd_imports('imports = ["/etc/containerd/other.toml"]\nversion = 2\n', glob)
    assert tomllib.loads(other)["imports"] == ["/etc/containerd/other.toml", glob]
    assert tomllib.loads(gpu.containerd_imports("", glob)) == {"imports": [glob]}


@pytest.mark.parametrize("version", ("1.28", kubernetes_validate.latest_version()))
def test_the_device_plugin_daemonset_is_a_valid_kubernetes_object(version):
    items = gpu.device_plugin(f"{REGISTRY}/nvidia/k8s-device-plugin:v0.17.0")
    for item in items:
        kubernetes_validate.validate(item, version, strict=True)
    assert [doc for doc in yaml.safe_load_all(gpu.render(items)) if doc] == items
    pod = items[0]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == "/var/lib/kubelet/device-plugins"


def test_the_final_check_names_what_the_container_saw():
    assert gpu.verify("n1", GPUS, "GPU-b\nGPU-a\n") is None
    assert gpu.verify("n1", GPUS, "GPU-a\n") == ("a container on n1 sees the GPUs GPU-a, not the node's GPU-a, GPU-b; "
                                                 "check the nvidia runtime (docker info) and its config.toml")
    assert "sees the GPUs none" in gpu.verify("n1", GPUS, "")


def test_the_filters_are_the_packages_functions_and_raise_sentences():
    spec = importlib.util.spec_from_file_location("gpu_filters", REPO / "filter_plugins" / "container_infra_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    filters = module.FilterModule().filters()
    assert filters["container_infra_gpu_plan"](INPUTS)["packages"] == ["cuda-drivers", "nvidia-container-toolkit"]
    assert filters["container_infra_gpu_verify"](GPUS, "n1", "GPU-a\nGPU-b\n") == ""
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="container_infra_gpu_orchestrator 'x' is not one of"):
        filters["container_infra_gpu_plan"](INPUTS | {"orchestrator": "x"})
    assert filters["container_infra_gpu_image_problem"](IMAGES) == ""
    assert filters["container_infra_gpu_image_problem"](IMAGES | {"verify_image": ""}) == MISSING.format(
        "container_infra_gpu_verify_image")
