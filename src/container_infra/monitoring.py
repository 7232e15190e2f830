"""Monitoring of a cluster's nodes: the spec's checks, Prometheus's configuration and rules, the agents' runs.

The monitoring role (roles/container_infra_monitoring) is thin over this. A cluster spec's ``monitoring`` key is
checked and completed by ``settings`` (every refusal one sentence; an image the key leaves out comes from the
site's registry or mirror, ``container_infra_image_registry``, which the role passes); ``prometheus_config`` and
``alert_rules`` build what Prometheus reads (targets from the Swarm's own service discovery, or a file_sd list
written from the inventory where no Swarm runs); ``node_exporter_run``, ``prometheus_run`` and
``daemonset_manifest`` build how the agents run (a Swarm global service, a plain container, a Kubernetes
DaemonSet), each with a digest of its definition that the node module ``container_infra_docker_workload``
compares instead of redeploying.

GPU metrics come through the node exporter's textfile collector: on a GPU node a small container with the NVIDIA
runtime and every GPU (``gpu_metrics_run``) asks ``nvidia-smi`` every ``gpu_metrics_interval`` and writes one
series per GPU (``container_infra_gpu_info`` and gauges); the role writes ``container_infra_gpus_expected`` (the
node's flavor's count) beside it, and the ``GpusMissing`` rule compares the two. Where the operator names a GPU
exporter (``gpu_exporter_run``, NVIDIA's dcgm-exporter), it runs instead, is scraped as the job ``gpu``, and a
recording rule makes ``container_infra_gpu_info`` of its per-GPU series.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

from container_infra import image_reference

ORCHESTRATORS = ("auto", "swarm", "none", "kubernetes")
# Prometheus's duration syntax (one or more number-unit pairs, largest unit first).
DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
UNIT_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
LABEL = "org.container-infra.spec"

NODE_EXPORTER = "container-infra-node-exporter"
PROMETHEUS = "container-infra-prometheus"
# Where the role writes what Prometheus reads on its host (mounted read-only at /etc/prometheus).
CONFIG_DIR = "/etc/container-infra/monitoring"
# The node exporter's textfile directory on every node (the GPU metrics are written there).
TEXTFILE_DIR = "/var/lib/container-infra/node-exporter"
GPU_METRICS = "container-infra-gpu-metrics"
GPU_EXPORTER = "container-infra-gpu-exporter"
# The per-GPU series of NVIDIA's dcgm-exporter (labels gpu, UUID, modelName): the recording rule makes one
# container_infra_gpu_info series of each, so GpusMissing reads either source the same way.
DCGM_PER_GPU = "DCGM_FI_DEV_GPU_UTIL"
GPU_METRICS_FILE = "gpus.prom"
GPUS_EXPECTED_FILE = "gpus-expected.prom"
# The GPU metrics container's image under the site's registry: any image with a POSIX shell and awk does, since
# nvidia-smi is the driver's, put into the container by the NVIDIA runtime (the GPU role's check image too).
GPU_METRICS_IMAGE = "library/ubuntu:24.04"
# What the GPU metrics container asks nvidia-smi, and the gauges it makes of the numeric fields.
GPU_QUERY = ("index", "uuid", "name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu")
GPU_GAUGES = {
    "utilization.gpu": ("container_infra_gpu_utilization_percent", "GPU utilization, percent."),
    "memory.used": ("container_infra_gpu_memory_used_bytes", "GPU memory in use, bytes."),
    "memory.total": ("container_infra_gpu_memory_total_bytes", "GPU memory, bytes."),
    "temperature.gpu": ("container_infra_gpu_temperature_celsius", "GPU temperature, degrees Celsius."),
}

# The images' repositories and tags under the site's registry or mirror (container_infra_image_registry), the
# default of an image key the spec leaves out.
IMAGES = {
    "node_exporter_image": "prometheus/node-exporter:v1.8.2",
    "prometheus_image": "prometheus/prometheus:v2.53.2",
}

DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "orchestrator": "auto",
    # From IMAGES under the registry the role passes to settings ('' while neither is named).
    "node_exporter_image": "",
    "prometheus_image": "",
    "node_exporter_port": 9100,
    "engine_metrics": True,
    "engine_metrics_port": 9323,
    "prometheus_port": 9090,
    "prometheus_host": "",
    "scrape_interval": "15s",
    "evaluation_interval": "15s",
    "node_down_for": "1m",
    "filesystem_full_percent": 90,
    "filesystem_full_for": "5m",
    "retention": "15d",
    "remote_write": None,
    "namespace": "monitoring",
    # GPU nodes (the inventory's gpu group): the textfile feeder; its image from GPU_METRICS_IMAGE under the
    # registry when left out, needed only where a GPU node is (the role says so there).
    "gpu_metrics": True,
    "gpu_metrics_image": "",
    "gpu_metrics_interval": "15s",
    # A GPU exporter the operator names (NVIDIA's dcgm-exporter, say) instead of the textfile feeder: its image
    # and the port it listens on (host network); '' keeps the feeder.
    "gpu_exporter_image": "",
    "gpu_exporter_port": 9400,
}


class MonitoringError(ValueError):
    """A monitoring spec the role cannot carry out; the message is one sentence per problem."""


def duration_seconds(value: str) -> float | None:
    """Seconds of a Prometheus duration (``90s``, ``1m30s``), None when it is not one."""
    match = DURATION.match(str(value or ""))
    if not match or not value:
        return None
    units = ("y", "w", "d", "h", "m", "s", "ms")
    return sum(int(match.group(2 * i + 2)) * UNIT_SECONDS[unit]
               for i, unit in enumerate(units) if match.group(2 * i + 2))


def _is_url(value: Any) -> bool:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def needed_images(out: dict) -> list[str]:
    """The image keys the settings deploy: none when off, the exporter only for Kubernetes (its DaemonSet)."""
    if not out["enabled"]:
        return []
    return ["node_exporter_image"] if out["orchestrator"] == "kubernetes" else list(IMAGES)


def _image_errors(out: dict, registry: str) -> list[str]:
    """Completes the image keys left out from the registry; a sentence for each image given that is no image
    reference or names no registry, and one when the images needed are left out and the registry is not named
    (or is no registry)."""
    errors = []
    for key in IMAGES:
        value = out[key]
        if value in (None, ""):
            out[key] = ""
        elif not isinstance(value, str) or any(c.isspace() for c in value):
            errors.append(f"monitoring.{key} {value!r} is not an image reference; give one such as "
                          "registry:5000/project/name:tag.")
        elif not image_reference.names_registry(value):
            errors.append(image_reference.no_registry(value, f"monitoring.{key}"))
    left_out = [key for key in IMAGES if not out[key]]
    needed = [key for key in left_out if key in needed_images(out)]
    if needed and not registry:
        errors.append(image_reference.registry_missing(*(f"monitoring.{key}" for key in needed)))
    elif needed and image_reference.registry_error(registry):
        errors.append(image_reference.registry_error(registry))
    elif registry and not image_reference.registry_error(registry):
        for key in left_out:
            out[key] = image_reference.under(registry, IMAGES[key])
    return errors


def _gpu_image_errors(out: dict, registry: str) -> list[str]:
    """The GPU metrics image: checked when given, else completed from the registry when one is named (left ''
    otherwise: ``gpu_metrics_image_problem`` speaks where a GPU node needs it)."""
    value = out["gpu_metrics_image"]
    if value in (None, ""):
        out["gpu_metrics_image"] = (image_reference.under(registry, GPU_METRICS_IMAGE)
                                    if registry and not image_reference.registry_error(registry) else "")
        return []
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return [f"monitoring.gpu_metrics_image {value!r} is not an image reference; give one such as "
                "registry:5000/library/ubuntu:24.04."]
    if not image_reference.names_registry(value):
        return [image_reference.no_registry(value, "monitoring.gpu_metrics_image")]
    return []


def _gpu_exporter_errors(out: dict) -> list[str]:
    """The GPU exporter's image (none by default: no completion from the registry) and port."""
    errors = []
    value = out["gpu_exporter_image"]
    if value in (None, ""):
        out["gpu_exporter_image"] = ""
    elif not isinstance(value, str) or any(c.isspace() for c in value):
        errors.append(f"monitoring.gpu_exporter_image {value!r} is not an image reference; give one such as "
                      "registry:5000/nvidia/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04.")
    elif not image_reference.names_registry(value):
        errors.append(image_reference.no_registry(value, "monitoring.gpu_exporter_image"))
    if not _port(out["gpu_exporter_port"]):
        errors.append(f"monitoring.gpu_exporter_port {out['gpu_exporter_port']!r} is not a TCP port; give a number "
                      "from 1 to 65535.")
    return errors


def gpu_metrics_image_problem(config: dict) -> str:
    """On a GPU node with GPU metrics on: the sentence when no image is named for them, else ''."""
    if config.get("enabled") and config.get("gpu_metrics") and not config.get("gpu_exporter_image") \
            and not config.get("gpu_metrics_image"):
        return image_reference.registry_missing("monitoring.gpu_metrics_image")
    return ""


def settings(spec: dict | None, registry: str = "") -> dict:
    """The spec's ``monitoring`` key checked and completed with the defaults; MonitoringError on any problem.

    ``registry``: the site's registry or mirror (``container_infra_image_registry``, host[:port][/path]) the
    images the spec does not name come from; needed only when monitoring is on and an image is left out."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(DEFAULTS))
    out = {**DEFAULTS, **{k: v for k, v in spec.items() if v is not None}}
    errors = [f"monitoring.{key} is not a monitoring setting; remove it or use one of {', '.join(DEFAULTS)}."
              for key in unknown]
    if out["orchestrator"] not in ORCHESTRATORS:
        errors.append(f"monitoring.orchestrator {out['orchestrator']!r} is not one of {', '.join(ORCHESTRATORS)}; "
                      "set one of them.")
    errors += _image_errors(out, str(registry or "").strip())
    errors += _gpu_image_errors(out, str(registry or "").strip())
    errors += _gpu_exporter_errors(out)
    if not isinstance(out["gpu_metrics"], bool):
        errors.append(f"monitoring.gpu_metrics {out['gpu_metrics']!r} is not a boolean; give true or false.")
    for key in ("node_exporter_port", "engine_metrics_port", "prometheus_port"):
        if not _port(out[key]):
            errors.append(f"monitoring.{key} {out[key]!r} is not a TCP port; give a number from 1 to 65535.")
    seconds = {}
    for key in ("scrape_interval", "evaluation_interval", "node_down_for", "filesystem_full_for", "retention",
                "gpu_metrics_interval"):
        seconds[key] = duration_seconds(out[key])
        if seconds[key] is None:
            errors.append(f"monitoring.{key} {out[key]!r} is not a Prometheus duration; give one such as 30s or 5m.")
    if seconds["scrape_interval"] and seconds["node_down_for"] is not None and \
            seconds["scrape_interval"] > seconds["node_down_for"]:
        errors.append(f"monitoring.scrape_interval {out['scrape_interval']} is longer than the node-down alert's "
                      f"for ({out['node_down_for']}), so a down node could not be seen in time; make "
                      "scrape_interval shorter or node_down_for longer.")
    percent = out["filesystem_full_percent"]
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent < 100:
        errors.append(f"monitoring.filesystem_full_percent {percent!r} is not a percentage between 0 and 100; "
                      "give one such as 90.")
    remote = out["remote_write"]
    if remote is not None:
        if not isinstance(remote, dict):
            errors.append("monitoring.remote_write is not a mapping; give {url: https://..., username: ..., "
                          "password: ...}.")
        else:
            extra = sorted(set(remote) - {"url", "username", "password", "bearer_token"})
            if extra:
                errors.append(f"monitoring.remote_write has unknown keys {', '.join(extra)}; use url, username, "
                              "password and bearer_token.")
            if not _is_url(remote.get("url")):
                errors.append(f"monitoring.remote_write.url {remote.get('url')!r} is not an http(s) URL; give one "
                              "such as https://metrics.example.org/api/v1/write.")
            if bool(remote.get("username")) != bool(remote.get("password")):
                errors.append("monitoring.remote_write needs both username and password for basic "
                              "authentication; give both or neither.")
            if remote.get("password") and remote.get("bearer_token"):
                errors.append("monitoring.remote_write has both a password and a bearer_token; give one of them.")
    if errors:
        raise MonitoringError(" ".join(errors))
    return out


# --- Prometheus's configuration -----------------------------------------------------------------------


def _swarm_job(name: str, port: int, refresh: str) -> dict:
    """A job whose targets are the Swarm's nodes (every node, down ones too: they are the node-down alert).

    The node list is asked of the manager's engine every ``refresh`` (the scrape interval) instead of Prometheus's
    default minute, so a node that joins is scraped within an interval: one API call on a local socket."""
    return {
        "job_name": name,
        "dockerswarm_sd_configs": [{"host": "unix:///var/run/docker.sock", "role": "nodes",
                                    "refresh_interval": refresh}],
        "relabel_configs": [
            {"source_labels": ["__meta_dockerswarm_node_address"], "target_label": "__address__",
             "replacement": f"$1:{port}"},
            {"source_labels": ["__meta_dockerswarm_node_hostname"], "target_label": "node"},
        ],
    }


def _file_job(name: str, file_name: str) -> dict:
    return {"job_name": name,
            "file_sd_configs": [{"files": [f"/etc/prometheus/{file_name}"], "refresh_interval": "1m"}]}


def gpu_exporter_in_use(config: dict) -> bool:
    """Whether GPU nodes run the operator's GPU exporter (rather than the textfile feeder)."""
    return bool(config["enabled"] and config["gpu_metrics"] and config["gpu_exporter_image"]
                and config["orchestrator"] != "kubernetes")


def prometheus_config(config: dict, mode: str, cluster: str) -> dict:
    """prometheus.yml: the node exporters and the engines, by Swarm discovery (mode swarm) or file_sd."""
    jobs = []
    gpu_exporter = gpu_exporter_in_use(config)
    if mode == "swarm":
        jobs.append(_swarm_job("node", config["node_exporter_port"], config["scrape_interval"]))
        if config["engine_metrics"]:
            jobs.append(_swarm_job("docker-engine", config["engine_metrics_port"], config["scrape_interval"]))
        if gpu_exporter:
            job = _swarm_job("gpu", config["gpu_exporter_port"], config["scrape_interval"])
            # The GPU role labels GPU nodes gpu=true: the others run no GPU exporter.
            job["relabel_configs"].insert(0, {"source_labels": ["__meta_dockerswarm_node_label_gpu"],
                                              "regex": "true", "action": "keep"})
            jobs.append(job)
    else:
        jobs.append(_file_job("node", "targets-node.json"))
        if config["engine_metrics"]:
            jobs.append(_file_job("docker-engine", "targets-docker-engine.json"))
        if gpu_exporter:
            jobs.append(_file_job("gpu", "targets-gpu.json"))
    jobs.append({"job_name": "prometheus",
                 "static_configs": [{"targets": [f"localhost:{config['prometheus_port']}"]}]})
    # The cluster as a label of every series (external_labels reach only remote write, federation and alerts,
    # and the dashboard selects by it).
    for job in jobs:
        job.setdefault("relabel_configs", []).append({"target_label": "cluster", "replacement": cluster})
    out: dict[str, Any] = {
        "global": {"scrape_interval": config["scrape_interval"],
                   "evaluation_interval": config["evaluation_interval"],
                   "external_labels": {"cluster": cluster}},
        "rule_files": ["/etc/prometheus/rules.yml"],
        "scrape_configs": jobs,
    }
    remote = config.get("remote_write")
    if remote:
        entry: dict[str, Any] = {"url": remote["url"]}
        # The secrets stay in files of their own (0600), never in prometheus.yml.
        if remote.get("username"):
            entry["basic_auth"] = {"username": remote["username"],
                                   "password_file": "/etc/prometheus/remote-write-password"}
        elif remote.get("bearer_token"):
            entry["authorization"] = {"credentials_file": "/etc/prometheus/remote-write-token"}
        out["remote_write"] = [entry]
    return out


def remote_write_secret(config: dict) -> dict:
    """The remote write secret as {file name, content}, or {} when there is none."""
    remote = config.get("remote_write") or {}
    if remote.get("password"):
        return {"name": "remote-write-password", "content": remote["password"]}
    if remote.get("bearer_token"):
        return {"name": "remote-write-token", "content": remote["bearer_token"]}
    return {}


def file_sd_targets(nodes: list[dict], port: int) -> list[dict]:
    """A file_sd list from the inventory: one group per node, labelled with its name (nodes: name, address)."""
    return [{"targets": [f"{node['address']}:{port}"], "labels": {"node": node["name"]}}
            for node in sorted(nodes, key=lambda n: n["name"])]


def storage_mounts(entries: list[dict] | None, nodes: list[dict]) -> dict[str, list[str]]:
    """Mount point -> the nodes that must have it, from the storage spec (entries placed by role and nodegroup).

    ``nodes``: name, role, nodegroup. Entries with state absent are not expected anywhere.
    """
    out: dict[str, list[str]] = {}
    for entry in entries or []:
        if (entry.get("state") or "present") != "present" or not entry.get("path"):
            continue
        roles = entry.get("roles") or ["master", "worker"]
        groups = entry.get("nodegroups")
        names = [n["name"] for n in nodes
                 if (n.get("role") or "worker") in roles and (groups is None or n.get("nodegroup") in groups)]
        if names:
            out.setdefault(entry["path"], [])
            out[entry["path"]] = sorted(set(out[entry["path"]]) | set(names))
    return out


RE2_SPECIAL = set("\\.+*?()|[]{}^$")


def _regex_alternatives(names: list[str]) -> str:
    """Names as a RE2 alternation inside a PromQL string: a special character gets a backslash, itself escaped
    for the string (Python's re.escape also escapes '-', which RE2 refuses)."""
    return "|".join("".join("\\\\" + c if c in RE2_SPECIAL else c for c in name) for name in names)


def alert_rules(config: dict, mounts: dict[str, list[str]] | None = None) -> dict:
    """rules.yml: node down, engine down, file system nearly full, a storage mount missing, GPUs missing."""
    pct = config["filesystem_full_percent"]
    rules: list[dict] = [
        {"alert": "NodeDown", "expr": 'up{job="node"} == 0', "for": config["node_down_for"],
         "labels": {"severity": "critical"},
         "annotations": {"summary": "Node {{ $labels.node }} ({{ $labels.instance }}) does not answer."}},
        {"alert": "DockerEngineMetricsDown", "expr": 'up{job="docker-engine"} == 0', "for": config["node_down_for"],
         "labels": {"severity": "warning"},
         "annotations": {"summary": "The Docker engine's metrics of {{ $labels.node }} do not answer."}},
        {"alert": "FilesystemNearlyFull",
         "expr": ('100 * (1 - node_filesystem_avail_bytes{job="node",fstype!~"tmpfs|ramfs|squashfs|overlay"}'
                  ' / node_filesystem_size_bytes{job="node",fstype!~"tmpfs|ramfs|squashfs|overlay"})'
                  f" > {pct}"),
         "for": config["filesystem_full_for"], "labels": {"severity": "warning"},
         "annotations": {"summary": f"{{{{ $labels.mountpoint }}}} on {{{{ $labels.node }}}} is more than {pct}% "
                                    "full."}},
    ]
    for path, nodes in sorted((mounts or {}).items()):
        selector = f'job="node",node=~"{_regex_alternatives(nodes)}"'
        rules.append({
            "alert": "StorageMountMissing",
            "expr": (f"up{{{selector}}} == 1 unless on(node) "
                     f'node_filesystem_size_bytes{{job="node",mountpoint="{path}"}}'),
            "for": config["node_down_for"], "labels": {"severity": "critical", "mountpoint": path},
            "annotations": {"summary": f"{path} is not mounted on {{{{ $labels.node }}}}."}})
    # Fed by the GPU role (textfile collector or a GPU exporter); without those series it stays silent.
    rules.append({
        "alert": "GpusMissing",
        "expr": ('container_infra_gpus_expected > on(node) (count by (node) (container_infra_gpu_info)'
                 ' or on(node) (container_infra_gpus_expected * 0))'),
        "for": config["node_down_for"], "labels": {"severity": "critical"},
        "annotations": {"summary": "{{ $labels.node }} shows fewer GPUs than the {{ $value }} its flavor has."}})
    groups = [{"name": "container-infra", "rules": rules}]
    if gpu_exporter_in_use(config):
        groups.insert(0, {"name": "container-infra-gpu-exporter", "rules": [{
            "record": "container_infra_gpu_info",
            "expr": f'label_replace({DCGM_PER_GPU}{{job="gpu"}} * 0 + 1, "uuid", "$1", "UUID", "(.+)")'}]})
    return {"groups": groups}


# --- how the agents run --------------------------------------------------------------------------------


# The exporter's default list of pseudo file systems less overlay: a node that is itself a container (the
# sandbox's) has an overlay root, and the engine's own overlays are left out by mount point (/var/lib/docker).
FS_TYPES_EXCLUDE = ("^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|"
                    "mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$")

# Upstream's default (Debian's package also leaves out /mnt, /media and /run, where shares are mounted).
MOUNT_POINTS_EXCLUDE = "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"


def node_exporter_args(config: dict) -> list[str]:
    """The exporter's flags: the host's proc, sys and root under /host, so every metric is the node's."""
    return ["--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host",
            f"--collector.filesystem.fs-types-exclude={FS_TYPES_EXCLUDE}",
            f"--collector.filesystem.mount-points-exclude={MOUNT_POINTS_EXCLUDE}",
            f"--collector.textfile.directory=/host{TEXTFILE_DIR}",
            f"--web.listen-address=:{config['node_exporter_port']}"]


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def labelled(argv: list[str], extra: Any = None) -> dict:
    spec_digest = digest([argv, extra])
    return {"digest": spec_digest, "argv": [*argv[:3], "--label", f"{LABEL}={spec_digest}", *argv[3:]]}


def node_exporter_run(config: dict, mode: str) -> dict:
    """The node exporter as a Swarm global service (mode swarm) or a plain container: {name, kind, argv, digest}.

    Host network: the node's own network metrics, and its port the node's (no publishing to NAT through).
    The node's root is mounted rslave so file systems mounted later (the shares) show through.
    """
    image, args = config["node_exporter_image"], node_exporter_args(config)
    if mode == "swarm":
        argv = ["docker", "service", "create", "--detach", "--name", NODE_EXPORTER, "--mode", "global",
                "--network", "host",
                "--mount", "type=bind,source=/proc,target=/host/proc,readonly",
                "--mount", "type=bind,source=/sys,target=/host/sys,readonly",
                "--mount", "type=bind,source=/,target=/host,readonly,bind-propagation=rslave",
                image, *args]
        kind = "service"
    else:
        argv = ["docker", "run", "--detach", "--name", NODE_EXPORTER, "--restart", "unless-stopped",
                "--network", "host", "--pid", "host",
                "--volume", "/proc:/host/proc:ro", "--volume", "/sys:/host/sys:ro",
                "--volume", "/:/host:ro,rslave", image, *args]
        kind = "container"
    return {"name": NODE_EXPORTER, "kind": kind, **labelled(argv)}


def prometheus_run(config: dict, mode: str, files: dict[str, str], socket_gid: int | None = None) -> dict:
    """Prometheus as a plain container on its host; ``files`` (name -> content) are in its digest, so a changed
    configuration recreates it (its data stays in a named volume) and an unchanged one leaves it running.

    Root in the container: it reads the 0600 secret files and, on a Swarm, the engine's socket (which is root's
    power anyway); ``socket_gid`` is not needed then and is accepted for hosts that run it otherwise.
    """
    argv = ["docker", "run", "--detach", "--name", PROMETHEUS, "--restart", "unless-stopped",
            "--network", "host", "--user", "0:0",
            "--volume", f"{CONFIG_DIR}:/etc/prometheus:ro",
            "--volume", f"{PROMETHEUS}-data:/prometheus"]
    if mode == "swarm":
        argv += ["--volume", "/var/run/docker.sock:/var/run/docker.sock:ro"]
    if socket_gid is not None:
        argv += ["--group-add", str(socket_gid)]
    argv += [config["prometheus_image"], "--config.file=/etc/prometheus/prometheus.yml",
             "--storage.tsdb.path=/prometheus", f"--storage.tsdb.retention.time={config['retention']}",
             f"--web.listen-address=:{config['prometheus_port']}"]
    return {"name": PROMETHEUS, "kind": "container", **labelled(argv, files)}


def daemonset_manifest(config: dict) -> dict:
    """The node exporter as a Kubernetes DaemonSet (host network and PID, the host's proc, sys and / read-only)."""
    labels = {"app.kubernetes.io/name": "node-exporter", "app.kubernetes.io/part-of": "container-infra"}
    port = config["node_exporter_port"]
    mounts = [("proc", "/proc", "/host/proc"), ("sys", "/sys", "/host/sys"), ("root", "/", "/host")]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-exporter", "namespace": config["namespace"], "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels,
                             "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}},
                "spec": {
                    "hostNetwork": True,
                    "hostPID": True,
                    "tolerations": [{"operator": "Exists"}],
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534},
                    "containers": [{
                        "name": "node-exporter",
                        "image": config["node_exporter_image"],
                        "args": node_exporter_args(config),
                        "ports": [{"name": "metrics", "containerPort": port, "hostPort": port,
                                   "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                                      "limits": {"memory": "64Mi"}},
                        "volumeMounts": [
                            {"name": name, "mountPath": target, "readOnly": True,
                             **({"mountPropagation": "HostToContainer"} if name == "root" else {})}
                            for name, _, target in mounts],
                    }],
                    "volumes": [{"name": name, "hostPath": {"path": source}} for name, source, _ in mounts],
                },
            },
        },
    }


# The engine's metrics are scraped from the Prometheus host, another node: every address of the node.
ALL_ADDRESSES = "0.0.0.0"  # noqa: S104


# The awk program of the GPU metrics loop: nvidia-smi's CSV (GPU_QUERY's order) in, the textfile format out.
# Samples of one metric must be together, so the rows are kept and printed per metric at the end.
GPU_AWK = r"""function esc(v) { gsub(/\\/, "\\\\", v); gsub(/"/, "\\\"", v); return v }
{ n++; lab[n] = "gpu=\"" esc($1) "\",uuid=\"" esc($2) "\""; name[n] = esc($3)
  for (f = 4; f <= NF; f++) if ($f ~ /^[0-9]+(\.[0-9]+)?$/) v[f, n] = $f
}
function gauge(metric, help, f, scale,   i) {
  print "# HELP " metric " " help; print "# TYPE " metric " gauge"
  for (i = 1; i <= n; i++) if ((f, i) in v) printf "%s{%s} %.17g\n", metric, lab[i], v[f, i] * scale
}
END {
  print "# HELP container_infra_gpu_smi_up Whether nvidia-smi answered (1) or failed (0)."
  print "# TYPE container_infra_gpu_smi_up gauge"
  print "container_infra_gpu_smi_up " up
  print "# HELP container_infra_gpu_info One series per GPU the driver reports."
  print "# TYPE container_infra_gpu_info gauge"
  for (i = 1; i <= n; i++) print "container_infra_gpu_info{" lab[i] ",name=\"" name[i] "\"} 1"
@GAUGES@}"""


def gpu_metrics_script(interval_seconds: float, directory: str = "/textfile") -> str:
    """The GPU metrics container's loop (POSIX sh and awk): every interval, nvidia-smi's answer as the textfile
    collector's format, written whole (a temporary file renamed) so the exporter never reads half a file.

    One ``container_infra_gpu_info`` series per GPU (gpu, uuid and name labels), a gauge per numeric field (a field
    the GPU does not report, ``[N/A]``, is left out), and ``container_infra_gpu_smi_up`` 0 when nvidia-smi fails
    (then no GPU series at all, so the GpusMissing alert fires where GPUs are expected). ``directory``: where the
    textfile directory is in the container.
    """
    # memory.* come in MiB (nounits); the gauges are in bytes.
    scale = {"memory.used": 1048576, "memory.total": 1048576}
    gauges = "".join(f'  gauge("{metric}", "{help_text}", {GPU_QUERY.index(field) + 1}, {scale.get(field, 1)})\n'
                     for field, (metric, help_text) in GPU_GAUGES.items())
    program = GPU_AWK.replace("@GAUGES@", gauges)
    seconds = max(1, round(interval_seconds))
    return "\n".join([
        "set -u",
        f"out={directory}/{GPU_METRICS_FILE}",
        "while :; do",
        f"  if nvidia-smi --query-gpu={','.join(GPU_QUERY)} --format=csv,noheader,nounits > /tmp/gpus.csv; then",
        "    up=1",
        "  else",
        "    up=0; : > /tmp/gpus.csv",
        "  fi",
        "  awk -F ', ' -v up=\"$up\" '" + program.replace("'", "'\\''") + "' /tmp/gpus.csv > \"$out.tmp\" &&",
        "    mv \"$out.tmp\" \"$out\"",
        f"  sleep {seconds}",
        "done",
    ])


def gpu_metrics_run(config: dict) -> dict:
    """The GPU metrics feeder as a plain container on a GPU node: {name, kind, argv, digest}.

    A plain container, not a Swarm service, on a Swarm too: a service would have to reserve the GPUs as generic
    resources to see them, taking them from users' tasks; the NVIDIA runtime with NVIDIA_VISIBLE_DEVICES=all shows
    every GPU without reserving any. No network: it only reads the driver and writes a file.
    """
    argv = ["docker", "run", "--detach", "--name", GPU_METRICS, "--restart", "unless-stopped",
            "--network", "none", "--runtime", "nvidia",
            "--env", "NVIDIA_VISIBLE_DEVICES=all", "--env", "NVIDIA_DRIVER_CAPABILITIES=utility",
            "--volume", f"{TEXTFILE_DIR}:/textfile",
            "--entrypoint", "/bin/sh",
            config["gpu_metrics_image"], "-c",
            gpu_metrics_script(duration_seconds(config["gpu_metrics_interval"]) or 15)]
    return {"name": GPU_METRICS, "kind": "container", **labelled(argv)}


def gpu_exporter_run(config: dict) -> dict:
    """The operator's GPU exporter as a plain container on a GPU node (every GPU through the NVIDIA runtime, the
    node's network so its port is the node's; SYS_ADMIN as NVIDIA documents for dcgm-exporter's profiling
    metrics): {name, kind, argv, digest}. Plain on a Swarm too, for the reason gpu_metrics_run gives."""
    argv = ["docker", "run", "--detach", "--name", GPU_EXPORTER, "--restart", "unless-stopped",
            "--network", "host", "--runtime", "nvidia", "--cap-add", "SYS_ADMIN",
            "--env", "NVIDIA_VISIBLE_DEVICES=all", "--env", "NVIDIA_DRIVER_CAPABILITIES=utility,compute",
            config["gpu_exporter_image"]]
    return {"name": GPU_EXPORTER, "kind": "container", **labelled(argv)}


def gpus_expected_text(count: Any) -> str:
    """The textfile with the node's expected GPU count (its flavor's), or '' when the count is not known."""
    if isinstance(count, str) and count.strip().isdigit():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        return ""
    return ("# HELP container_infra_gpus_expected The GPUs the node's flavor has.\n"
            "# TYPE container_infra_gpus_expected gauge\n"
            f"container_infra_gpus_expected {count}\n")


def engine_daemon_settings(config: dict, address: str = ALL_ADDRESSES) -> dict:
    """The daemon.json keys the engine's metrics endpoint needs (merged into the node's file key by key)."""
    if not config["engine_metrics"]:
        return {}
    return {"metrics-addr": f"{address}:{config['engine_metrics_port']}"}


def images(config: dict, gpu_nodes: bool = False) -> list[str]:
    """The images the settings deploy (those ``needed_images`` names, and the GPU metrics image where the cluster
    has GPU nodes and it is named: without a name, the GPU nodes' own check says so), for the registry check."""
    out = {config[key] for key in needed_images(config)}
    if gpu_nodes and gpu_exporter_in_use(config):
        out.add(config["gpu_exporter_image"])
    elif gpu_nodes and config["enabled"] and config["gpu_metrics"] and config["gpu_metrics_image"] \
            and config["orchestrator"] != "kubernetes":
        out.add(config["gpu_metrics_image"])
    return sorted(out)
