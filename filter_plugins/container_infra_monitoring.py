"""Jinja filters of the container_infra_monitoring role (thin: the logic is container_infra.monitoring)."""

from __future__ import annotations

import json

import yaml
from ansible.errors import AnsibleFilterError

from container_infra import monitoring


def _plain(value):
    """Plain str/dict/list (Ansible's tagged strings are subclasses PyYAML's safe dumper refuses)."""
    return json.loads(json.dumps(value))


def monitoring_settings(spec, registry=""):
    """The spec's monitoring key checked and completed (one sentence per problem); the images it leaves out from
    ``registry`` (container_infra_image_registry)."""
    try:
        return monitoring.settings(_plain(spec), _plain(registry or ""))
    except monitoring.MonitoringError as exc:
        raise AnsibleFilterError(str(exc)) from None


def monitoring_problems(spec, registry=""):
    """What is wrong with the spec's monitoring key, one sentence per problem ('' when nothing is), for an assert
    whose message is those sentences alone."""
    try:
        monitoring.settings(_plain(spec), _plain(registry or ""))
    except monitoring.MonitoringError as exc:
        return str(exc)
    return ""


def monitoring_server_files(config, mode, cluster, nodes, storage):
    """What the Prometheus host gets: file name -> content (prometheus.yml, rules.yml, targets), secret apart."""
    config, mode, cluster, nodes, storage = _plain([config, mode, cluster, nodes, storage])
    mounts = monitoring.storage_mounts(storage, nodes)
    files = {
        "prometheus.yml": yaml.safe_dump(monitoring.prometheus_config(config, mode, cluster), sort_keys=False),
        "rules.yml": yaml.safe_dump(monitoring.alert_rules(config, mounts), sort_keys=False),
    }
    if mode != "swarm":
        files["targets-node.json"] = json.dumps(
            monitoring.file_sd_targets(nodes, config["node_exporter_port"]), indent=2) + "\n"
        if config["engine_metrics"]:
            files["targets-docker-engine.json"] = json.dumps(
                monitoring.file_sd_targets(nodes, config["engine_metrics_port"]), indent=2) + "\n"
        if monitoring.gpu_exporter_in_use(config):
            files["targets-gpu.json"] = json.dumps(
                monitoring.file_sd_targets([n for n in nodes if n.get("gpu")], config["gpu_exporter_port"]),
                indent=2) + "\n"
    return files


def monitoring_daemonset(config):
    return yaml.safe_dump(monitoring.daemonset_manifest(_plain(config)), sort_keys=False)


class FilterModule:
    def filters(self):
        return {
            "container_infra_monitoring_settings": monitoring_settings,
            "container_infra_monitoring_problems": monitoring_problems,
            "container_infra_monitoring_server_files": monitoring_server_files,
            "container_infra_monitoring_daemonset": monitoring_daemonset,
            "container_infra_monitoring_node_exporter": monitoring.node_exporter_run,
            "container_infra_monitoring_prometheus": monitoring.prometheus_run,
            "container_infra_monitoring_engine_settings": monitoring.engine_daemon_settings,
            "container_infra_monitoring_secret": monitoring.remote_write_secret,
            "container_infra_monitoring_images": monitoring.images,
            "container_infra_monitoring_gpu_metrics": monitoring.gpu_metrics_run,
            "container_infra_monitoring_gpu_exporter": monitoring.gpu_exporter_run,
            "container_infra_monitoring_gpus_expected": monitoring.gpus_expected_text,
            "container_infra_monitoring_gpu_image_problem": monitoring.gpu_metrics_image_problem,
        }
