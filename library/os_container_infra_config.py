#!/usr/bin/python
"""Ansible module os_container_infra_config: a thin shim over container_infra.modules.os_container_infra_config."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: os_container_infra_config
short_description: Write a Magnum cluster's kubeconfig or Docker TLS bundle into a directory
description:
  - The equivalent of C(openstack coe cluster config), idempotent. For Kubernetes it writes
    C(<dest>/config), a kubeconfig with the cluster's CA, the API address and a client certificate for
    user C(admin) (group C(system:masters)) that Magnum's per-cluster CA signs from a CSR made on the
    control host; the context is C(default).
  - For Swarm it writes C(ca.pem), C(cert.pem), C(key.pem) and C(env.sh) (exports DOCKER_HOST,
    DOCKER_CERT_PATH and DOCKER_TLS_VERIFY).
  - Private keys (and the kubeconfig, which holds one) are written with mode 0600.
  - A re-run changes nothing while the files hold the cluster's current CA and API address and the client
    certificate is valid for more than I(renew_before_days); after a CA rotation new credentials are made.
  - Runs on the control host with the interpreter where the container_infra package is installed.
version_added: "0.1.0"
author: container-infra maintainers
extends_documentation_fragment:
  - container_infra
  - container_infra.no_wait
options:
  cluster:
    description: Name or UUID of the cluster (it must have an API address, that is be created).
    type: str
    required: true
    aliases: [name]
  dest:
    description: Directory to write into (created if missing).
    type: path
    required: true
    aliases: [dir]
  state:
    description: C(present) writes the files, C(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  force:
    description: Make a new key and certificate even when the files are up to date.
    type: bool
    default: false
  key_size:
    description: RSA key size of the client key.
    type: int
    default: 2048
  renew_before_days:
    description: Renew the client certificate when it expires within this many days.
    type: int
    default: 1
notes:
  - Supports check mode and diff mode (the CA fingerprint and API address before and after).
requirements:
  - python >= 3.10
  - container_infra (this toolkit's package), python-magnumclient, cryptography
"""

EXAMPLES = r"""
- name: Kubeconfig for the cluster
  os_container_infra_config:
    cloud: sandbox
    cluster: science-k8s
    dest: "{{ playbook_dir }}/credentials/science-k8s"
  register: creds

- name: Use it
  ansible.builtin.command: kubectl get nodes
  environment: "{{ creds.env }}"
  changed_when: false
"""

RETURN = r"""
coe:
  description: The cluster's COE (from its template).
  returned: when state is present
  type: str
  sample: kubernetes
dest:
  description: The directory written.
  returned: when state is present
  type: str
files:
  description: The files the credentials consist of.
  returned: when state is present
  type: list
  elements: str
kubeconfig:
  description: Path of the kubeconfig (Kubernetes), or null.
  returned: when state is present
  type: str
  sample: /home/op/credentials/science-k8s/config
env:
  description: Environment for the credentials (KUBECONFIG, or DOCKER_HOST, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY).
  returned: when state is present
  type: dict
api_address:
  description: The cluster's API address.
  returned: when state is present
  type: str
ca_fingerprint:
  description: SHA-256 fingerprint of the cluster's CA certificate (null with TLS disabled).
  returned: when state is present
  type: str
modes_repaired:
  description:
    - "Each credentials path whose mode had been changed since it was written, as C(path: old -> new);
      the directory is kept 0700, keys and the kubeconfig 0600."
  returned: when a mode was wrong
  type: list
  elements: str
removed:
  description: Files removed.
  returned: when state is absent
  type: list
  elements: str
api_calls:
  description: HTTP requests this run made.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from container_infra.cloud.module import run_module  # noqa: E402
from container_infra.modules import os_container_infra_config  # noqa: E402


def main():
    run_module(os_container_infra_config.ARGUMENT_SPEC, os_container_infra_config.run, operation="writing",
               module_class=AnsibleModule,
               resource=lambda params: f"the credentials of cluster {params.get('cluster')}")


if __name__ == "__main__":
    main()
