"""GPU nodes: where the NVIDIA driver and container toolkit come from, and how Docker, containerd, Swarm and
Kubernetes are wired to them (the logic of the ``container_infra_gpu`` role).

* **Packages.** The driver from NVIDIA's CUDA repository (``source: nvidia``, the default: the same packages on
  every OS family) or from the distribution (``source: distribution``: Debian's non-free ``nvidia-driver``,
  Ubuntu's ``nvidia-driver-<branch>-server``; RHEL has none); the toolkit from NVIDIA's libnvidia-container
  repository. Repositories are added as NVIDIA documents them (a flat apt repository signed by the key NVIDIA
  publishes beside it; dnf ``.repo`` files), so a mirror or the sandbox's repository changes only the URL.
* **Docker.** The ``nvidia`` runtime, merged into daemon.json key by key (``runtimes`` merged by runtime name);
  ``default-runtime: nvidia`` where Swarm needs it (a service cannot choose a runtime); the node's GPUs as
  Swarm generic resources (``node-generic-resources: ["<kind>=<uuid>", ...]``) and the runtime's
  ``swarm-resource`` set to the variable Swarm gives a task for that kind (``DOCKER_RESOURCE_<KIND>``): without
  the match a task is scheduled on a GPU but sees none (or all).
* **containerd** (Kubernetes nodes): a drop-in with the ``nvidia`` runtime (runc v2 with the NVIDIA runtime as
  its binary), imported by the main config.
* **Kubernetes**: NVIDIA's device plugin DaemonSet on the nodes labelled as GPU nodes.
"""

from __future__ import annotations

import csv
import io
import re

import yaml

from container_infra import image_reference

SOURCES = ("nvidia", "distribution", "none")
ORCHESTRATORS = ("auto", "swarm", "docker", "kubernetes")
RUNTIME = "nvidia"
RUNTIME_PATH = "/usr/bin/nvidia-container-runtime"
DEFAULT_DISTRIBUTION_BRANCH = "550"
KIND = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
MANAGED_BY = {"app.kubernetes.io/managed-by": "container-infra"}
# The CUDA repository's name for a machine architecture.
CUDA_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "sbsa", "arm64": "sbsa"}


class GpuError(ValueError):
    """A setting or a node's answer the role cannot use; the message is one sentence saying what to do."""


def cuda_distro(family: str, distribution: str, version: str) -> str:
    """The CUDA repository's directory for this OS (debian12, ubuntu2204, rhel9)."""
    name = str(distribution).lower()
    major = str(version).split(".")[0]
    if name == "debian":
        return f"debian{major}"
    if name == "ubuntu":
        return "ubuntu" + "".join(str(version).split(".")[:2])
    if family == "RedHat":
        return f"rhel{major}"
    raise GpuError(f"NVIDIA's CUDA repository has no packages for {distribution} {version}; set "
                   "container_infra_gpu_driver_source to distribution or none (driver installed by the image)")


def driver_packages(source: str, family: str, distribution: str, branch: str = DEFAULT_DISTRIBUTION_BRANCH) -> list:
    """The driver's packages for this source and OS."""
    if source not in SOURCES:
        raise GpuError(f"container_infra_gpu_driver_source {source!r} is not one of {', '.join(SOURCES)}")
    if source == "none":
        return []
    if source == "nvidia":
        return ["cuda-drivers"]
    name = str(distribution).lower()
    if name == "debian":
        return ["nvidia-driver", "firmware-misc-nonfree"]
    if name == "ubuntu":
        return [f"nvidia-driver-{branch}-server", f"nvidia-utils-{branch}-server"]
    raise GpuError(f"{distribution} ships no NVIDIA driver package; set container_infra_gpu_driver_source to "
                   "nvidia (NVIDIA's CUDA repository)")


def apt_repositories(source: str, cuda_url: str, toolkit_url: str, distro: str, arch: str) -> list[dict]:
    """The apt repositories to add: name, the sources.list line, the key's URL and where it goes."""
    repositories = []
    if source == "nvidia":
        cuda_arch = CUDA_ARCHES.get(str(arch))
        if cuda_arch is None:
            raise GpuError(f"NVIDIA's CUDA repository has no packages for the architecture {arch}; set "
                           "container_infra_gpu_driver_source to distribution or none")
        base = f"{cuda_url.rstrip('/')}/{distro}/{cuda_arch}"
        repositories.append({"name": "nvidia-cuda", "key_url": f"{base}/3bf863cc.pub",
                             "key": "/etc/apt/keyrings/nvidia-cuda.asc",
                             "line": f"deb [signed-by=/etc/apt/keyrings/nvidia-cuda.asc] {base}/ /"})
    toolkit = toolkit_url.rstrip("/")
    repositories.append({"name": "nvidia-container-toolkit", "key_url": f"{toolkit}/gpgkey",
                         "key": "/etc/apt/keyrings/nvidia-container-toolkit.asc",
                         "line": "deb [signed-by=/etc/apt/keyrings/nvidia-container-toolkit.asc] "
                                 f"{toolkit}/stable/deb/$(ARCH) /"})
    return repositories


def dnf_repositories(source: str, cuda_url: str, toolkit_url: str, distro: str, arch: str) -> list[dict]:
    """The .repo files NVIDIA publishes (name, URL), for dnf."""
    repositories = []
    if source == "nvidia":
        cuda_arch = CUDA_ARCHES.get(str(arch), str(arch))
        repositories.append({"name": "cuda", "url": f"{cuda_url.rstrip('/')}/{distro}/{cuda_arch}/cuda-{distro}.repo"})
    repositories.append({"name": "nvidia-container-toolkit",
                         "url": f"{toolkit_url.rstrip('/')}/stable/rpm/nvidia-container-toolkit.repo"})
    return repositories


def parse_gpus(text: str) -> list[dict]:
    """The GPUs of ``nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits``."""
    gpus = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row:
            continue
        if len(row) != 4 or not row[0].strip().isdigit() or not row[1].startswith("GPU-"):
            raise GpuError(f"nvidia-smi answered {', '.join(row)!r}, not index, uuid, name, memory; check the "
                           "driver on the node (nvidia-smi -L)")
        gpus.append({"index": int(row[0]), "uuid": row[1].strip(), "name": row[2].strip(),
                     "memory_mib": int(float(row[3])) if row[3].strip().replace(".", "", 1).isdigit() else None})
    return sorted(gpus, key=lambda gpu: gpu["index"])


def check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not KIND.match(kind):
        raise GpuError(f"container_infra_gpu_resource_kind {kind!r} is not a resource name (a letter, then up to "
                       "62 letters, digits, '_' or '-'); use gpu, for example")
    return kind


def swarm_resource(kind: str) -> str:
    """The variable Swarm sets in a task for its generic resources of ``kind`` (Docker upper-cases it)."""
    return "DOCKER_RESOURCE_" + check_kind(kind).upper().replace("-", "_")


def daemon_settings(gpus: list[dict], kind: str, default_runtime: bool, generic_resources: bool) -> dict:
    """The daemon.json keys of the GPU node. Without ``default_runtime`` the file's own default-runtime (if any) is
    left as it is: the role never removes a key it did not decide."""
    settings = {"runtimes": {RUNTIME: {"path": RUNTIME_PATH, "runtimeArgs": []}}}
    if default_runtime:
        settings["default-runtime"] = RUNTIME
    if generic_resources:
        check_kind(kind)
        settings["node-generic-resources"] = [f"{kind}={gpu['uuid']}" for gpu in gpus]
    return settings


def swarm_labels(gpus: list[dict]) -> dict:
    """The Swarm node labels of a GPU node: gpu, gpu.model, gpu.count."""
    models = sorted({gpu["name"] for gpu in gpus})
    return {"gpu": "true" if gpus else "false", "gpu.model": ",".join(models), "gpu.count": str(len(gpus))}


def containerd_dropin(default: bool = True, systemd_cgroup: bool = True) -> str:
    """containerd's drop-in (config version 2, the CRI plugin) with the ``nvidia`` runtime."""
    cri = 'plugins."io.containerd.grpc.v1.cri".containerd'
    lines = ["# Written by container-infra (container_infra_gpu): the NVIDIA runtime for Kubernetes pods.",
             "version = 2", ""]
    if default:
        lines += [f"[{cri}]", f'  default_runtime_name = "{RUNTIME}"', ""]
    lines += [f"[{cri}.runtimes.{RUNTIME}]", '  privileged_without_host_devices = false',
              '  runtime_type = "io.containerd.runc.v2"', "",
              f"[{cri}.runtimes.{RUNTIME}.options]", f'  BinaryName = "{RUNTIME_PATH}"',
              f"  SystemdCgroup = {'true' if systemd_cgroup else 'false'}", ""]
    return "\n".join(lines)


def containerd_imports(config_text: str, dropin_glob: str) -> str:
    """containerd's main config with ``dropin_glob`` imported (the text as it is where it already is)."""
    match = re.search(r"^imports\s*=\s*\[([^\]]*)\]", config_text, re.M)
    if match:
        current = re.findall(r'"([^"]+)"', match.group(1))
        if dropin_glob in current:
            return config_text
        line = "imports = [" + ", ".join(f'"{item}"' for item in [*current, dropin_glob]) + "]"
        return config_text[:match.start()] + line + config_text[match.end():]
    # Top-level keys come before the first table.
    return f'imports = ["{dropin_glob}"]\n' + config_text


def device_plugin(image: str, namespace: str = "kube-system", node_label: str = "nvidia.com/gpu.present",
                  strategy: str = "none") -> list[dict]:
    """NVIDIA's device plugin as a DaemonSet on the nodes with ``node_label=true`` (its static manifest)."""
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin"}
    daemonset = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "nvidia-device-plugin-daemonset", "namespace": namespace,
                     "labels": {**labels, **MANAGED_BY}},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "nodeSelector": {node_label: "true"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "nvidia-device-plugin-ctr", "image": image,
                        "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"},
                                {"name": "MIG_STRATEGY", "value": strategy}],
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}],
                    }],
                    "volumes": [{"name": "device-plugin",
                                 "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
                },
            },
        },
    }
    return [daemonset]


def render(items: list[dict]) -> str:
    return "---\n" + "---\n".join(yaml.safe_dump(item, sort_keys=False) for item in items)


def verify(node: str, expected: list[dict], seen_text: str) -> str | None:
    """None when a container saw exactly the node's GPUs (``seen_text``: nvidia-smi's UUIDs, one a line)."""
    want = sorted(gpu["uuid"] for gpu in expected)
    seen = sorted(line.strip() for line in seen_text.splitlines() if line.strip())
    if seen == want:
        return None
    return (f"a container on {node} sees the GPUs {', '.join(seen) or 'none'}, not the node's "
            f"{', '.join(want) or 'none'}; check the nvidia runtime (docker info) and its config.toml")


def image_problem(inputs: dict) -> str | None:
    """The sentence for the images the node needs (the device plugin's on Kubernetes, the check container's where
    ``verify`` is on and the node runs Docker), None when each is a full reference: one left empty needs the
    registry (``image_registry``, which the role's defaults build them under), and each must name a registry.

    ``inputs``: orchestrator, verify, verify_image, device_plugin_image, image_registry."""
    needed = []
    if inputs.get("orchestrator") == "kubernetes":
        needed.append(("device_plugin_image", inputs.get("device_plugin_image")))
    elif inputs.get("verify"):
        needed.append(("verify_image", inputs.get("verify_image")))
    registry = str(inputs.get("image_registry") or "").strip().rstrip("/")
    for key, image in needed:
        variable = f"container_infra_gpu_{key}"
        if not image:
            return image_reference.registry_missing(variable)
        if not isinstance(image, str) or any(c.isspace() for c in image):
            return (f"{variable} {image!r} is not an image reference; give one such as "
                    "registry.example.org:5000/name:tag.")
        # A default built under a registry Docker would not read as one is that variable's problem.
        if registry and image.startswith(f"{registry}/") and image_reference.registry_error(registry):
            return image_reference.registry_error(registry)
        if not image_reference.names_registry(image):
            return image_reference.no_registry(image, variable)
    return None


def plan(inputs: dict) -> dict:
    """Everything the role decides for one node before it changes anything, from its settings and facts.

    ``inputs``: source, driver_packages, toolkit_packages, branch, cuda_repository, toolkit_repository, family,
    distribution, version, architecture, orchestrator, resource_kind."""
    source = inputs.get("source")
    if source not in SOURCES:
        raise GpuError(f"container_infra_gpu_driver_source {source!r} is not one of {', '.join(SOURCES)}")
    orchestrator = inputs.get("orchestrator")
    if orchestrator not in ORCHESTRATORS:
        raise GpuError(f"container_infra_gpu_orchestrator {orchestrator!r} is not one of {', '.join(ORCHESTRATORS)}")
    for key in ("cuda_repository", "toolkit_repository"):
        url = str(inputs.get(key) or "")
        if not re.match(r"^(https?|file)://[^\s]+$", url):
            raise GpuError(f"container_infra_gpu_{key} {url!r} is not an http(s) URL; give the repository's base "
                           "URL (NVIDIA's, a mirror's, or the sandbox's)")
    family = inputs.get("family")
    if family not in ("Debian", "RedHat"):
        raise GpuError(f"the GPU role installs on the Debian and RedHat OS families, not {family} "
                       f"({inputs.get('distribution')}); install the driver and toolkit by hand and set "
                       "container_infra_gpu_driver_source to none")
    distro = cuda_distro(family, inputs["distribution"], inputs["version"]) if source == "nvidia" else ""
    driver = list(inputs.get("driver_packages") or driver_packages(source, family, inputs["distribution"],
                                                                    str(inputs.get("branch") or
                                                                        DEFAULT_DISTRIBUTION_BRANCH)))
    packages = driver + [name for name in inputs.get("toolkit_packages") or [] if name not in driver]
    args = (source, inputs["cuda_repository"], inputs["toolkit_repository"], distro, inputs["architecture"])
    return {
        "orchestrator": orchestrator,
        "packages": packages,
        "apt": apt_repositories(*args) if family == "Debian" else [],
        "dnf": dnf_repositories(*args) if family == "RedHat" else [],
        "swarm_resource": swarm_resource(inputs.get("resource_kind")),
        "containerd_dropin": containerd_dropin(),
    }
