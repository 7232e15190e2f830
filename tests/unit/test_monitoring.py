"""The monitoring role's logic (container_infra.monitoring) and its node modules, without a cloud.

Prometheus's configuration and rules are checked by Debian's promtool (``promtool check config``/``check
rules``), and the alert rules' behaviour by ``promtool test rules`` on made-up series; the Grafana dashboard's
metrics against what Debian's node exporter really exposes (run here on 127.0.0.1 for a moment).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from container_infra import image_reference, monitoring

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "container_infra_monitoring"
PROMTOOL = shutil.which("promtool")
NODE_EXPORTER = shutil.which("prometheus-node-exporter")
# The site's registry or mirror (container_infra_image_registry) the images the settings leave out come from.
REGISTRY = "registry.example.org:5000/mirror"


def _library(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def config(**spec) -> dict:
    return monitoring.settings({"enabled": True, **spec}, REGISTRY)


def promtool(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: run scripts/host-packages.sh (Debian's prometheus package ships it)"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, input=input)


# --- settings: defaults and bad input ----------------------------------------------------------------------


def test_settings_default_to_off_with_every_key():
    out = monitoring.settings(None)
    assert out["enabled"] is False
    assert set(out) == set(monitoring.DEFAULTS)


def test_settings_keep_what_the_spec_gives():
    out = config(scrape_interval="30s", node_down_for="2m", node_exporter_image="r:5000/ne:1")
    assert (out["scrape_interval"], out["node_down_for"], out["node_exporter_image"]) == ("30s", "2m", "r:5000/ne:1")
    assert out["prometheus_image"] == f"{REGISTRY}/prometheus/prometheus:v2.53.2"


# --- images: from the site's registry or mirror, named in full, or one sentence ---------------------------------


def test_the_images_left_out_come_from_the_sites_registry():
    out = config()
    assert (out["node_exporter_image"], out["prometheus_image"]) == (
        "registry.example.org:5000/mirror/prometheus/node-exporter:v1.8.2",
        "registry.example.org:5000/mirror/prometheus/prometheus:v2.53.2")
    assert monitoring.images(out) == [out["node_exporter_image"], out["prometheus_image"]]
    # A trailing slash is not doubled.
    assert monitoring.settings({"enabled": True}, "10.80.0.2:5000/")["prometheus_image"] == (
        "10.80.0.2:5000/prometheus/prometheus:v2.53.2")


def test_images_named_in_full_win_and_need_no_registry():
    full = {"enabled": True, "node_exporter_image": "r.example.org/ne:1", "prometheus_image": "r.example.org/p:2"}
    out = monitoring.settings(full)
    assert (out["node_exporter_image"], out["prometheus_image"]) == ("r.example.org/ne:1", "r.example.org/p:2")
    assert monitoring.settings(full, REGISTRY)["prometheus_image"] == "r.example.org/p:2"


SENTENCE = ("container_infra_image_registry is not set: name the registry or mirror the nodes pull images from "
            "(host[:port][/path]), or set {} to {}.")


@pytest.mark.parametrize(("spec", "images", "what"), [
    ({}, "monitoring.node_exporter_image and monitoring.prometheus_image", "full image references"),
    ({"node_exporter_image": "r.example.org/ne:1"}, "monitoring.prometheus_image", "a full image reference"),
    # Kubernetes gets the exporter's DaemonSet only: Prometheus's image is not needed there.
    ({"orchestrator": "kubernetes"}, "monitoring.node_exporter_image", "a full image reference"),
])
def test_a_needed_image_with_no_registry_named_is_one_sentence(spec, images, what):
    with pytest.raises(monitoring.MonitoringError) as caught:
        monitoring.settings({"enabled": True, **spec})
    assert str(caught.value) == SENTENCE.format(images, what)
    assert _one_sentence(str(caught.value))


def test_monitoring_off_needs_no_registry():
    out = monitoring.settings({"orchestrator": "none"})
    assert out["enabled"] is False and (out["node_exporter_image"], out["prometheus_image"]) == ("", "")
    assert monitoring.images(out) == []
    kubernetes = monitoring.settings({"enabled": True, "orchestrator": "kubernetes",
                                      "node_exporter_image": "r.example.org/ne:1"})
    assert kubernetes["prometheus_image"] == "" and monitoring.images(kubernetes) == ["r.example.org/ne:1"]


@pytest.mark.parametrize(("spec", "registry", "words"), [
    ({"node_exporter_image": "prom/node-exporter:v1.8.2"}, REGISTRY,
     "monitoring.node_exporter_image prom/node-exporter:v1.8.2 names no registry; give it as "
     "<registry host>/<repository>:<tag>, from the registry the nodes pull from."),
    ({"prometheus_image": "prometheus"}, REGISTRY, "monitoring.prometheus_image prometheus names no registry"),
    ({}, "https://registry.example.org", "container_infra_image_registry 'https://registry.example.org' is not a "
                                         "registry or mirror as host[:port][/path]"),
    ({}, "mirror", "container_infra_image_registry 'mirror' is not a registry or mirror"),
])
def test_an_image_or_registry_docker_would_not_read_as_the_sites_is_one_sentence(spec, registry, words):
    with pytest.raises(monitoring.MonitoringError) as caught:
        monitoring.settings({"enabled": True, **spec}, registry)
    assert str(caught.value).startswith(words)
    assert _one_sentence(str(caught.value))


@pytest.mark.parametrize(("value", "seconds"), [("15s", 15), ("1m30s", 90), ("2h", 7200), ("1d", 86400),
                                                ("500ms", 0.5), ("", None), ("1 m", None), ("m", None),
                                                ("1s1m", None)])
def test_duration_seconds(value, seconds):
    assert monitoring.duration_seconds(value) == seconds


def _one_sentence(message: str) -> bool:
    return message.count(". ") == 0 and message.endswith(".")


def test_a_scrape_interval_longer_than_the_node_down_for_is_refused_in_one_sentence():
    with pytest.raises(monitoring.MonitoringError) as caught:
        config(scrape_interval="2m", node_down_for="1m")
    message = str(caught.value)
    assert "scrape_interval 2m is longer than the node-down alert's for (1m)" in message
    assert _one_sentence(message)


@pytest.mark.parametrize("url", ["not a url", "ftp://host/write", "https://", "metrics.example.org/write", 42])
def test_a_remote_write_url_that_is_not_a_url_is_refused_in_one_sentence(url):
    with pytest.raises(monitoring.MonitoringError) as caught:
        config(remote_write={"url": url})
    message = str(caught.value)
    assert message.startswith(f"monitoring.remote_write.url {url!r} is not an http(s) URL")
    assert _one_sentence(message)


@pytest.mark.parametrize(("spec", "words"), [
    ({"orchestrator": "nomad"}, "monitoring.orchestrator 'nomad' is not one of"),
    ({"node_exporter_port": 70000}, "monitoring.node_exporter_port 70000 is not a TCP port"),
    ({"filesystem_full_percent": 100}, "monitoring.filesystem_full_percent 100 is not a percentage"),
    ({"retention": "forever"}, "monitoring.retention 'forever' is not a Prometheus duration"),
    ({"prometheus_image": "has space"}, "monitoring.prometheus_image 'has space' is not an image reference"),
    ({"scrape": "15s"}, "monitoring.scrape is not a monitoring setting"),
    ({"remote_write": {"url": "https://m.example.org/w", "username": "u"}}, "needs both username and password"),
])
def test_other_bad_settings_are_one_sentence_each(spec, words):
    with pytest.raises(monitoring.MonitoringError) as caught:
        config(**spec)
    assert words in str(caught.value)
    assert _one_sentence(str(caught.value))


def test_several_problems_give_one_sentence_each():
    with pytest.raises(monitoring.MonitoringError) as caught:
        config(scrape_interval="5m", remote_write={"url": "nope"})
    assert str(caught.value).count(".") >= 2 and "scrape_interval" in str(caught.value) and "nope" in str(caught.value)


# --- Prometheus's configuration, checked by promtool -------------------------------------------------------


NODES = [{"name": "swarm-master-0", "address": "10.0.0.10", "role": "master", "nodegroup": "default-master"},
         {"name": "swarm-node-0", "address": "10.0.0.11", "role": "worker", "nodegroup": "default-worker"},
         {"name": "swarm-gpu-0", "address": "10.0.0.12", "role": "worker", "nodegroup": "gpu"}]
STORAGE = [{"name": "scratch", "kind": "cephfs", "path": "/mnt/scratch"},
           {"name": "gpu-data", "kind": "cephfs", "path": "/mnt/gpu", "nodegroups": ["gpu"]},
           {"name": "home", "kind": "gluster", "path": "/home/shared", "roles": ["worker"]},
           {"name": "old", "kind": "cephfs", "path": "/mnt/old", "state": "absent"}]


def _check_config(tmp_path: Path, prometheus: dict, files: dict[str, str]) -> subprocess.CompletedProcess:
    """promtool check config with /etc/prometheus pointed at tmp_path (where the role's files would be)."""
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    text = yaml.safe_dump(prometheus).replace("/etc/prometheus/", f"{tmp_path}/")
    (tmp_path / "prometheus.yml").write_text(text)
    return promtool("check", "config", str(tmp_path / "prometheus.yml"))


@pytest.mark.parametrize("mode", ["swarm", "none"])
def test_prometheus_config_passes_promtool(tmp_path, mode):
    cfg = config(remote_write={"url": "https://metrics.example.org/api/v1/write", "username": "site",
                               "password": "s3cret"})
    rules = yaml.safe_dump(monitoring.alert_rules(cfg, monitoring.storage_mounts(STORAGE, NODES)))
    files = {"rules.yml": rules, "remote-write-password": "s3cret",
             "targets-node.json": json.dumps(monitoring.file_sd_targets(NODES, 9100)),
             "targets-docker-engine.json": json.dumps(monitoring.file_sd_targets(NODES, 9323))}
    result = _check_config(tmp_path, monitoring.prometheus_config(cfg, mode, "swarm-sandbox"), files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_a_swarm_finds_its_targets_through_the_engine_socket():
    jobs = {j["job_name"]: j for j in monitoring.prometheus_config(config(), "swarm", "c1")["scrape_configs"]}
    assert set(jobs) == {"node", "docker-engine", "prometheus"}
    for name, port in (("node", 9100), ("docker-engine", 9323)):
        # Asked every scrape interval: a node that joins is scraped within one.
        assert jobs[name]["dockerswarm_sd_configs"] == [{"host": "unix:///var/run/docker.sock", "role": "nodes",
                                                         "refresh_interval": "15s"}]
        relabel = jobs[name]["relabel_configs"]
        assert {"source_labels": ["__meta_dockerswarm_node_address"], "target_label": "__address__",
                "replacement": f"$1:{port}"} in relabel
        assert {"source_labels": ["__meta_dockerswarm_node_hostname"], "target_label": "node"} in relabel
        assert {"target_label": "cluster", "replacement": "c1"} in relabel


def test_without_a_swarm_the_targets_come_from_the_inventory():
    cfg = config(engine_metrics=False)
    jobs = {j["job_name"]: j for j in monitoring.prometheus_config(cfg, "none", "c1")["scrape_configs"]}
    assert set(jobs) == {"node", "prometheus"}
    assert jobs["node"]["file_sd_configs"][0]["files"] == ["/etc/prometheus/targets-node.json"]
    assert monitoring.file_sd_targets(NODES[:2], 9100) == [
        {"targets": ["10.0.0.10:9100"], "labels": {"node": "swarm-master-0"}},
        {"targets": ["10.0.0.11:9100"], "labels": {"node": "swarm-node-0"}}]


def test_remote_write_secrets_stay_out_of_the_configuration():
    cfg = config(remote_write={"url": "https://m.example.org/w", "bearer_token": "tok3n"})
    text = yaml.safe_dump(monitoring.prometheus_config(cfg, "swarm", "c1"))
    assert "tok3n" not in text
    assert monitoring.prometheus_config(cfg, "swarm", "c1")["remote_write"] == [
        {"url": "https://m.example.org/w",
         "authorization": {"credentials_file": "/etc/prometheus/remote-write-token"}}]
    assert monitoring.remote_write_secret(cfg) == {"name": "remote-write-token", "content": "tok3n"}
    assert monitoring.remote_write_secret(config()) == {}


# --- alert rules: promtool check and behaviour -------------------------------------------------------------


def test_storage_mounts_follow_the_storage_spec_placement():
    assert monitoring.storage_mounts(STORAGE, NODES) == {
        "/mnt/scratch": ["swarm-gpu-0", "swarm-master-0", "swarm-node-0"],
        "/mnt/gpu": ["swarm-gpu-0"],
        "/home/shared": ["swarm-gpu-0", "swarm-node-0"]}


def test_alert_rules_pass_promtool(tmp_path):
    rules = monitoring.alert_rules(config(), monitoring.storage_mounts(STORAGE, NODES))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(tmp_path / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    names = [r["alert"] for r in rules["groups"][0]["rules"]]
    assert names == ["NodeDown", "DockerEngineMetricsDown", "FilesystemNearlyFull", "StorageMountMissing",
                     "StorageMountMissing", "StorageMountMissing", "GpusMissing"]


def test_alert_rules_fire_as_meant(tmp_path):
    """promtool test rules: a node down fires after `for`, a missing share fires only where it belongs, a full
    file system fires, a node with fewer GPUs than its flavor fires and one with all of them does not."""
    cfg = config(node_down_for="1m", filesystem_full_for="2m")
    rules = monitoring.alert_rules(cfg, monitoring.storage_mounts(STORAGE[:2], NODES))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))

    def fs(node, mountpoint, size, avail):
        return [{"series": f'node_filesystem_size_bytes{{job="node",node="{node}",mountpoint="{mountpoint}",'
                           f'fstype="ext4"}}', "values": f"{size}x10"},
                {"series": f'node_filesystem_avail_bytes{{job="node",node="{node}",mountpoint="{mountpoint}",'
                           f'fstype="ext4"}}', "values": f"{avail}x10"}]

    series = [
        {"series": 'up{job="node",node="swarm-master-0",instance="10.0.0.10:9100"}', "values": "1 1 0 0 0 0 0"},
        {"series": 'up{job="node",node="swarm-node-0",instance="10.0.0.11:9100"}', "values": "1x10"},
        {"series": 'up{job="node",node="swarm-gpu-0",instance="10.0.0.12:9100"}', "values": "1x10"},
        *fs("swarm-master-0", "/", 100, 50), *fs("swarm-master-0", "/mnt/scratch", 100, 50),
        *fs("swarm-node-0", "/", 100, 5),
        *fs("swarm-gpu-0", "/", 100, 50), *fs("swarm-gpu-0", "/mnt/scratch", 100, 50),
        # swarm-node-0 lacks /mnt/scratch; swarm-gpu-0 lacks /mnt/gpu (only placed on the gpu nodegroup).
        {"series": 'container_infra_gpus_expected{job="node",node="swarm-gpu-0"}', "values": "2x10"},
        {"series": 'container_infra_gpu_info{job="node",node="swarm-gpu-0",gpu="0"}', "values": "1x10"},
        {"series": 'container_infra_gpus_expected{job="node",node="swarm-node-0"}', "values": "0x10"},
    ]
    down = {"severity": "critical", "job": "node", "node": "swarm-master-0", "instance": "10.0.0.10:9100"}
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "NodeDown", "exp_alerts": []},
                {"eval_time": "4m", "alertname": "NodeDown", "exp_alerts": [{"exp_labels": down, "exp_annotations": {
                    "summary": "Node swarm-master-0 (10.0.0.10:9100) does not answer."}}]},
                {"eval_time": "3m", "alertname": "StorageMountMissing", "exp_alerts": [
                    {"exp_labels": {"severity": "critical", "mountpoint": "/mnt/gpu", "job": "node",
                                    "node": "swarm-gpu-0", "instance": "10.0.0.12:9100"},
                     "exp_annotations": {"summary": "/mnt/gpu is not mounted on swarm-gpu-0."}},
                    {"exp_labels": {"severity": "critical", "mountpoint": "/mnt/scratch", "job": "node",
                                    "node": "swarm-node-0", "instance": "10.0.0.11:9100"},
                     "exp_annotations": {"summary": "/mnt/scratch is not mounted on swarm-node-0."}}]},
                {"eval_time": "5m", "alertname": "FilesystemNearlyFull", "exp_alerts": [
                    {"exp_labels": {"severity": "warning", "job": "node", "node": "swarm-node-0", "mountpoint": "/",
                                    "fstype": "ext4"},
                     "exp_annotations": {"summary": "/ on swarm-node-0 is more than 90% full."}}]},
                {"eval_time": "3m", "alertname": "GpusMissing", "exp_alerts": [
                    {"exp_labels": {"severity": "critical", "node": "swarm-gpu-0"},
                     "exp_annotations": {"summary": "swarm-gpu-0 shows fewer GPUs than the 2 its flavor has."}}]},
            ],
        }],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# --- how the agents run ---------------------------------------------------------------------------------


def _flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_the_swarm_service_is_global_on_the_host_with_the_nodes_file_systems_read_only():
    run = monitoring.node_exporter_run(config(node_exporter_image="r:5000/ne:1"), "swarm")
    argv = run["argv"]
    assert argv[:3] == ["docker", "service", "create"] and run["kind"] == "service"
    assert _flag_values(argv, "--mode") == ["global"] and _flag_values(argv, "--network") == ["host"]
    assert _flag_values(argv, "--mount") == [
        "type=bind,source=/proc,target=/host/proc,readonly", "type=bind,source=/sys,target=/host/sys,readonly",
        "type=bind,source=/,target=/host,readonly,bind-propagation=rslave"]
    assert _flag_values(argv, "--label") == [f"{monitoring.LABEL}={run['digest']}"]
    image_at = argv.index("r:5000/ne:1")
    args = argv[image_at + 1:]
    assert args[:3] == ["--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host"]
    assert args[5:] == ["--collector.textfile.directory=/host/var/lib/container-infra/node-exporter",
                        "--web.listen-address=:9100"]
    # Overlay is not left out: a node that is a container has an overlay root.
    assert args[3].startswith("--collector.filesystem.fs-types-exclude=^(") and "overlay" not in args[3]
    # /mnt is not left out (Debian's package leaves it out by default): the shares are mounted there.
    assert args[4].startswith("--collector.filesystem.mount-points-exclude=^/(") and "mnt" not in args[4]


def test_the_plain_container_mounts_the_same_and_restarts_with_the_engine():
    argv = monitoring.node_exporter_run(config(), "none")["argv"]
    assert argv[:3] == ["docker", "run", "--detach"]
    assert _flag_values(argv, "--volume") == ["/proc:/host/proc:ro", "/sys:/host/sys:ro", "/:/host:ro,rslave"]
    assert _flag_values(argv, "--restart") == ["unless-stopped"]


def test_digests_change_with_the_definition_only():
    a, b = monitoring.node_exporter_run(config(), "swarm"), monitoring.node_exporter_run(config(), "swarm")
    assert a == b
    assert monitoring.node_exporter_run(config(node_exporter_port=9200), "swarm")["digest"] != a["digest"]
    files = {"prometheus.yml": "a"}
    p1 = monitoring.prometheus_run(config(), "swarm", files)
    assert p1 == monitoring.prometheus_run(config(), "swarm", dict(files))
    assert monitoring.prometheus_run(config(), "swarm", {"prometheus.yml": "b"})["digest"] != p1["digest"]
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in p1["argv"]
    socket_mount = "/var/run/docker.sock:/var/run/docker.sock:ro"
    assert socket_mount not in monitoring.prometheus_run(config(), "none", files)["argv"]


def test_engine_metrics_setting():
    assert monitoring.engine_daemon_settings(config()) == {"metrics-addr": "0.0.0.0:9323"}
    assert monitoring.engine_daemon_settings(config(engine_metrics=False)) == {}


# --- GPU metrics: nvidia-smi into the textfile collector ---------------------------------------------------

# What `nvidia-smi --query-gpu=<GPU_QUERY> --format=csv,noheader,nounits` prints for two GPUs, the second without
# a temperature sensor (real drivers print [N/A] for a field the GPU does not report).
SMI_CSV = ("0, GPU-1b7c4a0e-0000-4000-8000-000000000000, NVIDIA A100-SXM4-80GB, 37, 1024, 81920, 41\n"
           "1, GPU-9e2f0c11-0000-4000-8000-000000000001, NVIDIA A100-SXM4-80GB, 0, 0, 81920, [N/A]\n")


def run_gpu_metrics_once(tmp_path: Path, csv: str | None) -> str:
    """The GPU metrics container's loop, once, with an nvidia-smi that prints ``csv`` for the loop's query (None:
    that fails as a driver that lost its GPUs does); returns the file the loop wrote."""
    bin_dir, textfile = tmp_path / "bin", tmp_path / "textfile"
    bin_dir.mkdir()
    textfile.mkdir()
    answer = tmp_path / "smi.csv"
    answer.write_text(csv or "")
    query = f"--query-gpu={','.join(monitoring.GPU_QUERY)}"
    body = (f'[ "$1" = {query} ] && [ "$2" = --format=csv,noheader,nounits ] || exit 9\ncat {answer}\n'
            if csv is not None else 'echo "NVIDIA-SMI has failed" >&2; exit 9\n')
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\n" + body)
    # The loop's sleep ends the shell: one pass.
    (bin_dir / "sleep").write_text("#!/bin/sh\nkill $PPID\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    script = monitoring.gpu_metrics_script(15, str(textfile))
    subprocess.run(["/bin/sh", "-c", script], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30,
                   capture_output=True, check=False)
    assert [path.name for path in textfile.iterdir()] == [monitoring.GPU_METRICS_FILE]
    text = (textfile / monitoring.GPU_METRICS_FILE).read_text()
    checked = promtool("check", "metrics", input=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return text


def _samples(text: str) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_gpu_metrics_are_one_series_per_gpu_in_the_textfile_format(tmp_path):
    text = run_gpu_metrics_once(tmp_path, SMI_CSV)
    first = 'gpu="0",uuid="GPU-1b7c4a0e-0000-4000-8000-000000000000"'
    second = 'gpu="1",uuid="GPU-9e2f0c11-0000-4000-8000-000000000001"'
    assert _samples(text) == {
        "container_infra_gpu_smi_up": "1",
        f'container_infra_gpu_info{{{first},name="NVIDIA A100-SXM4-80GB"}}': "1",
        f'container_infra_gpu_info{{{second},name="NVIDIA A100-SXM4-80GB"}}': "1",
        f"container_infra_gpu_utilization_percent{{{first}}}": "37",
        f"container_infra_gpu_utilization_percent{{{second}}}": "0",
        f"container_infra_gpu_memory_used_bytes{{{first}}}": str(1024 * 1048576),
        f"container_infra_gpu_memory_used_bytes{{{second}}}": "0",
        f"container_infra_gpu_memory_total_bytes{{{first}}}": str(81920 * 1048576),
        f"container_infra_gpu_memory_total_bytes{{{second}}}": str(81920 * 1048576),
        # [N/A]: left out, not a made-up value.
        f"container_infra_gpu_temperature_celsius{{{first}}}": "41",
    }


def test_a_failing_nvidia_smi_is_smi_up_0_and_no_gpu_series(tmp_path):
    assert _samples(run_gpu_metrics_once(tmp_path, None)) == {"container_infra_gpu_smi_up": "0"}


def test_the_node_exporter_reads_the_gpu_metrics_file(tmp_path):
    """Debian's node exporter (run on 127.0.0.1 for a moment) over the written directory: every GPU series is
    exposed and the textfile collector reports no scrape error."""
    assert NODE_EXPORTER, "prometheus-node-exporter is missing: run scripts/host-packages.sh"
    run_gpu_metrics_once(tmp_path, SMI_CSV)
    (tmp_path / "textfile" / monitoring.GPUS_EXPECTED_FILE).write_text(monitoring.gpus_expected_text(2))
    text = scrape_node_exporter(f"--collector.textfile.directory={tmp_path / 'textfile'}")
    samples = _samples(text)
    assert samples["node_textfile_scrape_error"] == "0"
    assert len([name for name in samples if name.startswith("container_infra_gpu_info{")]) == 2
    assert samples["container_infra_gpus_expected"] == "2"


@pytest.mark.parametrize(("count", "text"), [
    (2, "container_infra_gpus_expected 2"), ("4", "container_infra_gpus_expected 4"),
    (0, ""), (None, ""), ("None", ""), (True, ""), ("two", "")])
def test_the_expected_gpu_count_is_written_only_when_the_flavor_says(count, text):
    written = monitoring.gpus_expected_text(count)
    assert [line for line in written.splitlines() if not line.startswith("#")] == ([text] if text else [])


def test_the_gpu_metrics_container_sees_every_gpu_through_the_runtime_and_no_network():
    run = monitoring.gpu_metrics_run(config(gpu_metrics_image="r:5000/library/ubuntu:24.04"))
    argv = run["argv"]
    assert run["kind"] == "container" and run["name"] == monitoring.GPU_METRICS
    assert _flag_values(argv, "--runtime") == ["nvidia"] and _flag_values(argv, "--network") == ["none"]
    assert _flag_values(argv, "--env") == ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=utility"]
    assert _flag_values(argv, "--volume") == [f"{monitoring.TEXTFILE_DIR}:/textfile"]
    assert _flag_values(argv, "--restart") == ["unless-stopped"]
    assert argv[-3:-1] == ["r:5000/library/ubuntu:24.04", "-c"] and "sleep 15" in argv[-1]
    slower = monitoring.gpu_metrics_run(config(gpu_metrics_image="r:5000/library/ubuntu:24.04",
                                               gpu_metrics_interval="1m"))
    assert "sleep 60" in slower["argv"][-1] and slower["digest"] != run["digest"]


def test_the_gpu_metrics_image_comes_from_the_registry_and_is_needed_only_on_gpu_nodes():
    assert config()["gpu_metrics_image"] == f"{REGISTRY}/library/ubuntu:24.04"
    assert f"{REGISTRY}/library/ubuntu:24.04" in monitoring.images(config(), gpu_nodes=True)
    assert f"{REGISTRY}/library/ubuntu:24.04" not in monitoring.images(config())
    assert monitoring.images(config(gpu_metrics=False), gpu_nodes=True) == monitoring.images(config())
    # No registry and no image: no error for the cluster, one sentence where a GPU node needs the image.
    unnamed = monitoring.settings({"enabled": True, "node_exporter_image": "r:5000/ne:1",
                                   "prometheus_image": "r:5000/p:1"})
    assert unnamed["gpu_metrics_image"] == ""
    assert monitoring.gpu_metrics_image_problem(unnamed) == SENTENCE.format("monitoring.gpu_metrics_image",
                                                                            "a full image reference")
    assert monitoring.gpu_metrics_image_problem(config()) == ""
    assert monitoring.gpu_metrics_image_problem({**unnamed, "gpu_metrics": False}) == ""


@pytest.mark.parametrize(("spec", "words"), [
    ({"gpu_metrics": "yes"}, "monitoring.gpu_metrics 'yes' is not a boolean"),
    ({"gpu_metrics_interval": "often"}, "monitoring.gpu_metrics_interval 'often' is not a Prometheus duration"),
    ({"gpu_metrics_image": "ubuntu"}, "monitoring.gpu_metrics_image"),
    ({"gpu_metrics_image": "r:5000/a b"}, "monitoring.gpu_metrics_image 'r:5000/a b' is not an image reference"),
])
def test_bad_gpu_metrics_settings_are_one_sentence_each(spec, words):
    with pytest.raises(monitoring.MonitoringError) as error:
        config(**spec)
    assert words in str(error.value) and _one_sentence(str(error.value)), str(error.value)


# --- an operator's GPU exporter instead of the feeder (NVIDIA's dcgm-exporter; no such image here) ------------

EXPORTER = "r:5000/nvidia/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04"
GPU_NODES = [{**node, "gpu": node["nodegroup"] == "gpu"} for node in NODES]


def _server_files(cfg: dict, mode: str) -> dict[str, str]:
    sys.path.insert(0, str(REPO / "filter_plugins"))
    try:
        from container_infra_monitoring import monitoring_server_files
    finally:
        sys.path.pop(0)
    return monitoring_server_files(cfg, mode, "c1", GPU_NODES, STORAGE)


@pytest.mark.parametrize("mode", ["swarm", "none"])
def test_a_named_gpu_exporter_is_scraped_on_the_gpu_nodes_only_and_passes_promtool(tmp_path, mode):
    cfg = config(gpu_exporter_image=EXPORTER)
    files = _server_files(cfg, mode)
    prometheus = yaml.safe_load(files.pop("prometheus.yml"))
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    if mode == "swarm":
        # The GPU role's node label keeps the GPU nodes, before any other relabelling.
        assert jobs["gpu"]["relabel_configs"][0] == {"source_labels": ["__meta_dockerswarm_node_label_gpu"],
                                                     "regex": "true", "action": "keep"}
        assert "targets-gpu.json" not in files
    else:
        assert jobs["gpu"]["file_sd_configs"][0]["files"] == ["/etc/prometheus/targets-gpu.json"]
        assert json.loads(files["targets-gpu.json"]) == [{"targets": ["10.0.0.12:9400"],
                                                          "labels": {"node": "swarm-gpu-0"}}]
    result = _check_config(tmp_path, prometheus, files)
    assert result.returncode == 0, result.stdout + result.stderr
    # Without an exporter named, no such job and no such file.
    plain = _server_files(config(), mode)
    assert "gpu" not in {job["job_name"] for job in yaml.safe_load(plain["prometheus.yml"])["scrape_configs"]}
    assert "targets-gpu.json" not in plain


def test_the_exporters_gpus_count_for_gpus_missing(tmp_path):
    """promtool test rules: the recording rule makes container_infra_gpu_info of dcgm-exporter's per-GPU series,
    so a node whose exporter reports one GPU of two fires GpusMissing and one that reports both does not."""
    rules = monitoring.alert_rules(config(gpu_exporter_image=EXPORTER, node_down_for="1m"))
    assert [group["name"] for group in rules["groups"]] == ["container-infra-gpu-exporter", "container-infra"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(tmp_path / "rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    def gpu(node, index):
        return {"series": f'{monitoring.DCGM_PER_GPU}{{job="gpu",node="{node}",gpu="{index}",'
                          f'UUID="GPU-{node}-{index}",modelName="NVIDIA A100-SXM4-80GB"}}', "values": "37x10"}

    series = [
        {"series": 'container_infra_gpus_expected{job="node",node="gpu-a"}', "values": "2x10"},
        {"series": 'container_infra_gpus_expected{job="node",node="gpu-b"}', "values": "2x10"},
        gpu("gpu-a", 0), gpu("gpu-a", 1), gpu("gpu-b", 0),
    ]
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": 'count by (node) (container_infra_gpu_info{uuid=~"GPU-.+"})', "eval_time": "1m",
                              "exp_samples": [{"labels": '{node="gpu-a"}', "value": 2},
                                              {"labels": '{node="gpu-b"}', "value": 1}]}],
        "alert_rule_test": [{"eval_time": "3m", "alertname": "GpusMissing", "exp_alerts": [
            {"exp_labels": {"severity": "critical", "node": "gpu-b"},
             "exp_annotations": {"summary": "gpu-b shows fewer GPUs than the 2 its flavor has."}}]}],
    }]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gpu_exporter_runs_on_the_nodes_network_with_every_gpu_and_replaces_the_feeders_image():
    run = monitoring.gpu_exporter_run(config(gpu_exporter_image=EXPORTER))
    argv = run["argv"]
    assert run["name"] == monitoring.GPU_EXPORTER and argv[-1] == EXPORTER
    assert _flag_values(argv, "--runtime") == ["nvidia"] and _flag_values(argv, "--network") == ["host"]
    assert "NVIDIA_VISIBLE_DEVICES=all" in _flag_values(argv, "--env")
    assert monitoring.images(config(gpu_exporter_image=EXPORTER), gpu_nodes=True) == sorted(
        [*monitoring.images(config()), EXPORTER])
    # The feeder's image is not needed then, even with no registry to complete it from.
    no_registry = monitoring.settings({"enabled": True, "node_exporter_image": "r:5000/ne:1",
                                       "prometheus_image": "r:5000/p:1", "gpu_exporter_image": EXPORTER})
    assert monitoring.gpu_metrics_image_problem(no_registry) == ""


@pytest.mark.parametrize(("spec", "words"), [
    ({"gpu_exporter_image": "nvidia/dcgm-exporter:3.3.8"}, "monitoring.gpu_exporter_image"),
    ({"gpu_exporter_image": "r:5000/a b"}, "monitoring.gpu_exporter_image 'r:5000/a b' is not an image reference"),
    ({"gpu_exporter_port": 0}, "monitoring.gpu_exporter_port 0 is not a TCP port"),
])
def test_bad_gpu_exporter_settings_are_one_sentence_each(spec, words):
    with pytest.raises(monitoring.MonitoringError) as error:
        config(**spec)
    assert words in str(error.value) and _one_sentence(str(error.value)), str(error.value)


# --- the Kubernetes DaemonSet, checked offline ----------------------------------------------------------


def test_the_daemonset_manifest_is_consistent():
    manifest = monitoring.daemonset_manifest(config(node_exporter_image="r:5000/ne:1"))
    # What the API server would insist on, checked by hand (no Kubernetes API here).
    assert (manifest["apiVersion"], manifest["kind"]) == ("apps/v1", "DaemonSet")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", manifest["metadata"]["name"])
    spec = manifest["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["hostPID"] is True
    (container,) = pod["containers"]
    assert container["image"] == "r:5000/ne:1"
    assert container["args"] == monitoring.node_exporter_args(config())
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    assert volumes == {"proc": "/proc", "sys": "/sys", "root": "/"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert set(mounts) == set(volumes)
    assert all(m["readOnly"] for m in mounts.values())
    assert mounts["root"]["mountPath"] == "/host" and mounts["root"]["mountPropagation"] == "HostToContainer"
    assert container["ports"][0]["containerPort"] == container["ports"][0]["hostPort"] == 9100
    # It survives a YAML round trip as the role writes it.
    assert yaml.safe_load(yaml.safe_dump(manifest)) == manifest


# --- the Grafana dashboard ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape_node_exporter(*flags: str) -> str:
    """One scrape of Debian's node exporter run with ``flags`` on 127.0.0.1 for a moment: its /metrics text."""
    assert NODE_EXPORTER, "prometheus-node-exporter is missing: run scripts/host-packages.sh"
    port = _free_port()
    process = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", *flags],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                    return answer.read().decode()
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the node exporter did not answer within 30 s"
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def exporter_metrics() -> set[str]:
    """The metric names Debian's node exporter exposes on this machine (run on 127.0.0.1 only)."""
    assert NODE_EXPORTER, "prometheus-node-exporter is missing: run scripts/host-packages.sh"
    text = scrape_node_exporter()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def _panel_metrics(dashboard: dict) -> set[str]:
    words = set()
    functions = {"sum", "count", "avg", "rate", "by", "or", "vector", "up", "ALERTS", "node", "mode", "idle",
                 "job", "cluster", "fstype", "tmpfs", "overlay", "device", "lo", "state", "running", "alertstate"}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r'"[^"]*"|\[[^\]]*\]', "", target["expr"])
            words |= {w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr) if w not in functions}
    return words


def test_the_dashboard_is_json_whose_panels_use_real_metrics(exporter_metrics):
    dashboard = json.loads((ROLE / "files" / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    used = _panel_metrics(dashboard)
    node_metrics = {m for m in used if m.startswith("node_")}
    assert node_metrics, "the dashboard shows no node exporter metric"
    assert node_metrics <= exporter_metrics, sorted(node_metrics - exporter_metrics)
    # The engine's own metric (no engine runs metrics here; its name is the engine's documented one).
    assert used - node_metrics <= {"engine_daemon_container_states_containers"}


# --- the node modules --------------------------------------------------------------------------------------


def test_daemon_json_is_merged_key_by_key(tmp_path):
    module = _library("container_infra_docker_daemon")
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"storage-driver": "vfs", "metrics-addr": "127.0.0.1:1", "debug": True}))
    path.chmod(0o600)
    merged = module.merge(module.read(str(path)), {"metrics-addr": "0.0.0.0:9323", "debug": None})
    assert merged == {"storage-driver": "vfs", "metrics-addr": "0.0.0.0:9323"}
    module.write(str(path), merged)
    assert json.loads(path.read_text()) == merged and path.stat().st_mode & 0o777 == 0o600
    assert module.read(str(tmp_path / "missing.json")) == {}
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError):
        module.read(str(tmp_path / "list.json"))


def test_workloads_are_made_again_only_when_their_digest_changed():
    module = _library("container_infra_docker_workload")
    labelled = {"Config": {"Labels": {module.LABEL: "abc"}}, "State": {"Running": True}}
    assert module.action("container", None, "abc") == "created"
    assert module.action("container", labelled, "abc") == "unchanged"
    assert module.action("container", labelled, "def") == "replaced"
    assert module.action("container", {**labelled, "State": {"Running": False}}, "abc") == "started"
    service = {"Spec": {"Labels": {module.LABEL: "abc"}}}
    assert module.action("service", service, "abc") == "unchanged"
    assert module.action("service", service, "x") == "replaced"
    assert module.LABEL == monitoring.LABEL


@pytest.mark.parametrize(("image", "parsed"), [
    ("10.80.0.2:5000/container-infra/node-exporter:latest",
     ("10.80.0.2:5000", "container-infra/node-exporter", "latest")),
    ("10.80.0.2:5000/container-infra/prometheus", ("10.80.0.2:5000", "container-infra/prometheus", "latest")),
    ("registry.example.org:5000/mirror/prometheus/prometheus:v2.53.2",
     ("registry.example.org:5000", "mirror/prometheus/prometheus", "v2.53.2")),
    ("localhost/x@sha256:ab", ("localhost", "x", "sha256:ab")),
    ("r.example.org/x:1@sha256:ab", ("r.example.org", "x", "sha256:ab")),
])
def test_image_references_are_read_as_the_engine_reads_them(image, parsed):
    assert _library("container_infra_registry_image").parse(image) == parsed
    # The node's copy answers as the package does.
    assert image_reference.split(image) == parsed


def _registry_image_failure(module, monkeypatch, images: list[str]) -> dict:
    """What container_infra_registry_image's main() fails with for these images (a pass is an assertion)."""
    failures = []

    class Module:
        check_mode = False

        def __init__(self, **_kwargs):
            self.params = {"images": images, "certs_d": "/nonexistent", "timeout": 5}

        def fail_json(self, **kwargs):
            failures.append(kwargs)
            raise SystemExit(1)

        def exit_json(self, **kwargs):
            raise AssertionError(f"the images {images} passed: {kwargs}")

    monkeypatch.setattr(module, "AnsibleModule", Module)
    with pytest.raises(SystemExit):
        module.main()
    (failure,) = failures
    return failure


@pytest.mark.parametrize("image", ["busybox", "prom/node-exporter:v1.8.2", "prometheus/prometheus@sha256:ab"])
def test_a_name_without_a_registry_is_refused_on_the_node_without_asking_any(image, monkeypatch):
    module = _library("container_infra_registry_image")
    sentence = (f"The image {image} names no registry; give it as <registry host>/<repository>:<tag>, from the "
                "registry the nodes pull from.")
    with pytest.raises(ValueError, match=re.escape(sentence)):
        module.parse(image)

    def asked(*_args, **_kwargs):
        raise AssertionError("a registry was asked for an image that names none")

    monkeypatch.setattr(module.urllib.request, "urlopen", asked)
    failure = _registry_image_failure(module, monkeypatch, [image])
    assert failure["msg"] == sentence
    assert failure["images"] == [{"image": image, "registry": None, "repository": None, "reference": None,
                                  "present": False}]


def test_an_image_the_registry_lacks_is_one_sentence(monkeypatch):
    module = _library("container_infra_registry_image")

    def not_found(request, **_kwargs):
        raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None)

    monkeypatch.setattr(module.urllib.request, "urlopen", not_found)
    assert module.present("r:5000", "container-infra/nope", "latest", module.context("/nonexistent", "r:5000"),
                          5) is False
    failure = _registry_image_failure(module, monkeypatch, ["r:5000/container-infra/nope:1"])
    assert failure["msg"].startswith("The image r:5000/container-infra/nope:1 is not in the registry r:5000")
    assert _one_sentence(failure["msg"])


# --- the role's files ----------------------------------------------------------------------------------


def test_every_role_variable_is_typed_and_in_the_readme():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    readme = (ROLE / "README.md").read_text()
    assert set(defaults) <= set(specs)
    for name, spec in specs.items():
        # The site's registry is the one variable the roles that run images share.
        assert (name.startswith("container_infra_monitoring_") or name == "container_infra_image_registry") \
            and spec.get("type")
        assert name in readme, name
    for key in specs["container_infra_monitoring_settings"]["options"]:
        assert key in monitoring.DEFAULTS, key
        assert f"`{key}`" in readme, key
    assert set(monitoring.DEFAULTS) == set(specs["container_infra_monitoring_settings"]["options"])


# --- playbooks/monitoring.yml without a node: what is refused before anything runs, the Kubernetes manifest ------


def play_monitoring(tmp_path: Path, settings: dict, **more) -> subprocess.CompletedProcess:
    """playbooks/monitoring.yml on localhost (a master of cluster c1) with ``settings`` as the spec's key."""
    from ansible_runner import BIN, run

    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "masters": {"hosts": {"localhost": {"ansible_connection": "local", "container_infra_cluster": "c1",
                                            "container_infra_role": "master",
                                            "ansible_python_interpreter": str(BIN / "python")}}},
        "cluster_c1": {"hosts": {"localhost": {}}}}}}))
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({"container_infra_monitoring": settings, **more}))
    return run([str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{variables}",
                str(REPO / "playbooks" / "monitoring.yml")], timeout=300)


def ran(done: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    from ansible_runner import report_of

    return [(task["task"]["name"].removeprefix("container_infra_monitoring : "), result.get("msg", ""))
            for play in report_of(done.stdout)["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if not result.get("skipped")]


@pytest.mark.parametrize(("settings", "words"), [
    ({"enabled": True, "scrape_interval": "2m", "node_down_for": "1m"},
     "monitoring.scrape_interval 2m is longer than the node-down alert's for (1m)"),
    ({"enabled": True, "remote_write": {"url": "not a url"}},
     "monitoring.remote_write.url 'not a url' is not an http(s) URL"),
])
def test_bad_settings_stop_the_play_at_its_first_task(tmp_path, settings, words):
    done = play_monitoring(tmp_path, settings)
    assert done.returncode != 0
    tasks = ran(done)
    assert tasks[-1][0] == "Check the monitoring settings" and words in tasks[-1][1], tasks
    # Nothing after the check ran (argument validation, then the check).
    assert [name for name, _ in tasks] == ["Validating arguments against arg spec 'main' - Node exporters as "
                                           "containers on every node, the engines' metrics and a Prometheus with "
                                           "alerts", "Check the monitoring settings"]


def test_a_typo_in_the_settings_is_refused_by_the_argument_spec(tmp_path):
    done = play_monitoring(tmp_path, {"enabled": True, "scrape_intervall": "15s"})
    assert done.returncode != 0
    assert any("scrape_intervall" in msg for _, msg in ran(done)), ran(done)


def test_monitoring_off_runs_nothing_on_the_node(tmp_path):
    done = play_monitoring(tmp_path, {})
    assert done.returncode == 0, ran(done)
    assert [name for name, _ in ran(done)][-1] == "The monitoring settings, completed with the defaults"


def test_monitoring_on_with_no_image_and_no_registry_stops_at_the_check_with_one_sentence(tmp_path):
    done = play_monitoring(tmp_path, {"enabled": True, "orchestrator": "none"})
    assert done.returncode != 0
    tasks = ran(done)
    assert tasks[-1][0] == "Check the monitoring settings", tasks
    # The sentence alone: no undefined-variable error, no filter's error wrapped in Ansible's words.
    assert tasks[-1][1] == SENTENCE.format("monitoring.node_exporter_image and monitoring.prometheus_image",
                                           "full image references"), tasks[-1][1]


def test_a_kubernetes_cluster_takes_the_exporter_from_the_sites_registry(tmp_path):
    done = play_monitoring(tmp_path, {"enabled": True, "orchestrator": "kubernetes"},
                           container_infra_monitoring_manifest_dir=str(tmp_path / "out"),
                           container_infra_image_registry=REGISTRY)
    assert done.returncode == 0, ran(done)
    manifest = yaml.safe_load((tmp_path / "out" / "node-exporter-daemonset.yml").read_text())
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{REGISTRY}/prometheus/node-exporter:v1.8.2"


def test_a_kubernetes_cluster_gets_the_daemonset_manifest_and_no_container(tmp_path):
    settings = {"enabled": True, "orchestrator": "kubernetes", "node_exporter_image": "r:5000/ne:1"}
    done = play_monitoring(tmp_path, settings, container_infra_monitoring_manifest_dir=str(tmp_path / "out"))
    assert done.returncode == 0, ran(done)
    manifest = yaml.safe_load((tmp_path / "out" / "node-exporter-daemonset.yml").read_text())
    assert manifest == monitoring.daemonset_manifest(config(**settings))
    assert [name for name, _ in ran(done)][1:] == [
        "Check the monitoring settings", "The monitoring settings, completed with the defaults",
        "Monitoring of the cluster's nodes",
        "This node, and its cluster's first node and Prometheus host", "The DaemonSet manifest of a Kubernetes cluster",
        "The manifest's directory", "The node exporter's DaemonSet"]
    again = play_monitoring(tmp_path, settings, container_infra_monitoring_manifest_dir=str(tmp_path / "out"))
    from ansible_runner import report_of

    assert all(host["changed"] == 0 for host in report_of(again.stdout)["stats"].values())


def test_the_remote_write_secret_is_never_in_the_output_even_at_vvv(tmp_path, docker_engine):
    """A check-mode run without a Swarm (plain containers, inventory targets) with a remote write password.

    Check mode asks this machine's Docker engine what would change, so the engine must answer."""
    from ansible_runner import BIN, report_of
    from ansible_runner import run as ansible_run

    settings = {"enabled": True, "orchestrator": "none",
                "remote_write": {"url": "https://m.example.org/w", "username": "u", "password": "pw-5ecret-x"}}
    play_monitoring(tmp_path, settings, container_infra_image_registry=REGISTRY)  # writes the inventory and vars
    done = ansible_run([str(BIN / "ansible-playbook"), "-C", "--diff", "-vvv", "-i", str(tmp_path / "hosts.yml"),
                        "-e", f"@{tmp_path / 'vars.json'}", "-e", "container_infra_monitoring_check_images=false",
                        str(REPO / "playbooks" / "monitoring.yml")], timeout=300)
    assert done.returncode == 0, [(name, msg) for name, msg in ran(done) if msg]
    assert "pw-5ecret-x" not in done.stdout + done.stderr
    names = [task["task"]["name"] for play in report_of(done.stdout)["plays"] for task in play["tasks"]]
    assert any(name.endswith("The remote write secret (0600, never in prometheus.yml)") for name in names)


def test_a_swarm_that_is_not_ready_yet_is_waited_for_and_a_missing_workload_is_none(monkeypatch):
    module = _library("container_infra_docker_workload")
    answers = [subprocess.CompletedProcess([], 1, "", "Error response from daemon: This node is not a swarm manager."),
               subprocess.CompletedProcess([], 1, "", "Error: no such service: container-infra-node-exporter")]
    calls = []
    monkeypatch.setattr(module.subprocess, "run", lambda argv, **_kw: calls.append(argv) or answers.pop(0))
    monkeypatch.setattr(module.time, "sleep", lambda _s: None)
    assert module.inspect("service", "container-infra-node-exporter") is None
    assert len(calls) == 2
    monkeypatch.setattr(module.subprocess, "run",
                        lambda argv, **_kw: subprocess.CompletedProcess([], 1, "", "permission denied"))
    with pytest.raises(RuntimeError, match="permission denied"):
        module.inspect("container", "x")
