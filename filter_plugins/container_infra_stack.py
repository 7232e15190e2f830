"""Jinja filters of the container_infra_stack role (thin: the logic is container_infra.stack)."""

from __future__ import annotations

import json

import yaml
from ansible.errors import AnsibleFilterError

from container_infra import stack


def _plain(value):
    """Plain str/dict/list (Ansible's tagged strings are subclasses PyYAML's safe dumper refuses)."""
    return json.loads(json.dumps(value))


def stack_render(compose, name, host_network=True, logging=None):
    """The stack file as deployed (host network, logging, digest label); one sentence per problem."""
    if isinstance(compose, str):
        compose = yaml.safe_load(compose)
    try:
        return stack.render(_plain(compose), str(name), bool(host_network), _plain(logging) if logging else None)
    except stack.StackError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def stack_needs_deploy(rendered, name, inspect_lines):
    return stack.needs_deploy(_plain(rendered), str(name), [str(line) for line in inspect_lines or []])


class FilterModule:
    def filters(self):
        return {
            "container_infra_stack_render": stack_render,
            "container_infra_stack_needs_deploy": stack_needs_deploy,
        }
