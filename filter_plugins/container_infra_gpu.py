"""Jinja filters of the container_infra_gpu role (thin: the logic is container_infra.gpu)."""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

from container_infra import gpu


def _plain(value):
    """Plain str/dict/list (Ansible's tagged strings are subclasses the YAML dumper refuses)."""
    return json.loads(json.dumps(value))


def _sentence(function):
    def wrapped(*args, **kwargs):
        try:
            return function(*_plain(list(args)), **kwargs)
        except gpu.GpuError as exc:
            raise AnsibleFilterError(str(exc)) from None

    wrapped.__name__ = function.__name__
    return wrapped


def gpu_plan(inputs: dict) -> dict:
    """The repositories, packages and wiring for one node, every setting checked (one sentence per problem)."""
    return gpu.plan(inputs)


def gpu_image_problem(inputs: dict) -> str:
    """The sentence saying which image the node needs is not named, or names no registry ('' when none)."""
    return gpu.image_problem(inputs) or ""


def gpu_verify(devices, node, seen_text):
    """The sentence saying what a container saw instead of the node's GPUs ('' when it saw exactly them)."""
    return gpu.verify(node, devices, seen_text) or ""


class FilterModule:
    def filters(self):
        return {
            "container_infra_gpu_plan": _sentence(gpu_plan),
            "container_infra_gpu_image_problem": _sentence(gpu_image_problem),
            "container_infra_gpu_parse": _sentence(gpu.parse_gpus),
            "container_infra_gpu_daemon_settings": _sentence(gpu.daemon_settings),
            "container_infra_gpu_swarm_labels": _sentence(gpu.swarm_labels),
            "container_infra_gpu_containerd_imports": _sentence(gpu.containerd_imports),
            "container_infra_gpu_device_plugin": _sentence(lambda image: gpu.render(gpu.device_plugin(image))),
            "container_infra_gpu_verify": _sentence(gpu_verify),
        }
