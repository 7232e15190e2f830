#!/usr/bin/python
# Copyright: container-infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module container_infra_docker_workload: a container or Swarm service, made again only when its
definition changed.

Runs ON THE NODE with the node's own python3 and the standard library only (no Docker SDK on the nodes): it
drives the docker CLI. The definition's digest is a label of the container or service, so a second run compares
one label instead of re-applying (which would restart the service's tasks on every node).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_infra_docker_workload
short_description: A container or a Swarm service, made again only when its definition changed
description:
  - For each entry of O(workloads), inspect the container or service of that name. When its label
    C(org.container-infra.spec) equals the entry's O(workloads[].digest), nothing is done (a stopped container is
    started again); otherwise it is removed and made again with the entry's O(workloads[].argv) (a
    C(docker run) or C(docker service create) command line that sets that label).
  - With O(state=absent), the containers and services are removed.
  - Supports check mode.
version_added: "0.1.0"
author: container-infra
options:
  workloads:
    description: The containers and services.
    type: list
    elements: dict
    required: true
    suboptions:
      name: {description: The container's or service's name., type: str, required: true}
      kind: {description: container or service., type: str, required: true, choices: [container, service]}
      argv: {description: The command line that makes it (labelled with the digest)., type: list, elements: str}
      digest: {description: The definition's digest (the label's value)., type: str}
  state:
    description: present or absent.
    type: str
    default: present
    choices: [present, absent]
"""

EXAMPLES = r"""
- name: The node exporter on every node of the Swarm
  container_infra_docker_workload:
    workloads:
      - name: container-infra-node-exporter
        kind: service
        digest: 0123456789abcdef
        argv: [docker, service, create, --label, org.container-infra.spec=0123456789abcdef, --mode, global,
               --name, container-infra-node-exporter, "registry:5000/node-exporter:1.8"]
  become: true
"""

RETURN = r"""
workloads:
  description: What was done to each, C(name) and C(action) (unchanged, created, replaced, started, removed, absent).
  type: list
  returned: always
"""

import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

LABEL = "org.container-infra.spec"


# An engine just restarted (its daemon.json changed) answers before its Swarm is ready: its manager refuses
# service commands for a few seconds with these words.
TRANSIENT = ("not a swarm manager", "context deadline exceeded", "swarm does not have a leader", "is not ready",
             "connection refused", "Cannot connect to the Docker daemon")
ATTEMPTS, DELAY = 10, 3.0


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    for attempt in range(ATTEMPTS):
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode == 0 or not any(words in result.stderr for words in TRANSIENT):
            return result
        if attempt < ATTEMPTS - 1:
            time.sleep(DELAY)
    return result


def inspect(kind: str, name: str) -> dict | None:
    """The container or service, None when there is none (any other failure is raised)."""
    result = _run(["docker", kind, "inspect", name])
    if result.returncode != 0:
        if "no such" in result.stderr.lower() or "not found" in result.stderr.lower():
            return None
        raise RuntimeError(f"docker {kind} inspect {name} failed: {result.stderr.strip()}")
    found = json.loads(result.stdout or "[]")
    return found[0] if found else None


def labels_of(kind: str, found: dict) -> dict:
    if kind == "service":
        return (found.get("Spec") or {}).get("Labels") or {}
    return (found.get("Config") or {}).get("Labels") or {}


def action(kind: str, found: dict | None, wanted_digest: str) -> str:
    """What a present entry needs: unchanged, created, replaced or started."""
    if found is None:
        return "created"
    if labels_of(kind, found).get(LABEL) != wanted_digest:
        return "replaced"
    if kind == "container" and not (found.get("State") or {}).get("Running"):
        return "started"
    return "unchanged"


def docker(module: AnsibleModule, argv: list[str]) -> None:
    result = _run(argv)
    if result.returncode != 0:
        module.fail_json(msg=f"{' '.join(argv[:3])} failed: {(result.stderr or result.stdout).strip()}", argv=argv)


def remove_argv(kind: str, name: str) -> list[str]:
    return ["docker", "service", "rm", name] if kind == "service" else ["docker", "rm", "--force", name]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "workloads": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "kind": {"type": "str", "required": True, "choices": ["container", "service"]},
                "argv": {"type": "list", "elements": "str"},
                "digest": {"type": "str"},
            }},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
        supports_check_mode=True,
    )
    if shutil.which("docker") is None:
        module.fail_json(msg="the docker CLI is not on this node's PATH; install the Docker engine first")
    reports = []
    for item in module.params["workloads"]:
        kind, name = item["kind"], item["name"]
        try:
            found = inspect(kind, name)
        except RuntimeError as exc:
            module.fail_json(msg=f"{exc}; check that the node's Docker engine runs (and, for a service, is a Swarm "
                                 "manager)")
        if module.params["state"] == "absent":
            what = "absent" if found is None else "removed"
            if found is not None and not module.check_mode:
                docker(module, remove_argv(kind, name))
        else:
            if not item.get("argv") or not item.get("digest"):
                module.fail_json(msg=f"workload {name} has no argv or digest; give both for state present")
            what = action(kind, found, item["digest"])
            if not module.check_mode:
                if what == "replaced":
                    docker(module, remove_argv(kind, name))
                if what in ("created", "replaced"):
                    docker(module, item["argv"])
                elif what == "started":
                    docker(module, ["docker", "start", name])
        reports.append({"name": name, "kind": kind, "action": what})
    module.exit_json(changed=any(r["action"] not in ("unchanged", "absent") for r in reports), workloads=reports)


if __name__ == "__main__":
    main()
