#!/usr/bin/python
"""Ansible module os_manila_share: a thin shell over container_infra.modules.os_manila_share."""

DOCUMENTATION = r"""
---
module: os_manila_share
short_description: Ensure a Manila share and its access rules, and return its export locations parsed
description:
  - Ensures a share by name - size (extended or shrunk in place), share type, protocol, metadata and
    availability zone - and its access rules (a cephx user for CephFS, or an IP, with an access level).
  - Waits until the share is C(available) and the rules C(active).
  - Protocol, share type and availability zone cannot change in place; the module fails and says what to do.
  - "Returns the export locations parsed - monitors, path and the CephFS file system name - and the rules.
    A rule's C(access_key) (the cephx secret) is returned only with O(include_access_keys), on a task that
    sets C(no_log: true)."
  - Supports check mode and diff mode (the diff leaves the keys out).
version_added: "0.1.0"
author: container-infra
requirements:
  - python >= 3.10
  - python-manilaclient
  - container_infra (this toolkit's Python package, installed where the module runs)
extends_documentation_fragment:
  - container_infra
  - container_infra.wait
options:
  name:
    description:
      - The share's name (unique in the project), or the ID of a share made elsewhere (a name that looks
        like a UUID and matches no share's name is looked up as an ID).
    type: str
    required: true
  state:
    description:
      - present or absent.
      - query - report the share (empty when it does not exist) with its export locations and rules, without
        the access keys; change nothing.
    type: str
    default: present
    choices: [present, absent, query]
  size:
    description: Size in GiB; required to create.
    type: int
  share_type:
    description: The share type (name or id), for example C(cephfs).
    type: str
  share_proto:
    description: The protocol - CEPHFS, GLUSTERFS or NFS.
    type: str
    default: CEPHFS
    aliases: [protocol]
  description:
    description: The share's description (set at creation).
    type: str
  metadata:
    description: The share's metadata, set exactly (keys Manila keeps for itself, C(__*), stay).
    type: dict
  availability_zone:
    description: The availability zone.
    type: str
  access_rules:
    description: Access rules the share must have.
    type: list
    elements: dict
    default: []
    suboptions:
      access_type:
        description: cephx (a CephFS user), ip, user or cert.
        type: str
        default: cephx
        choices: [cephx, ip, user, cert]
      access_to:
        description: The cephx user, IP or CIDR, user or certificate CN.
        type: str
        required: true
      access_level:
        description: rw or ro.
        type: str
        default: rw
        choices: [rw, ro]
      state:
        description: present, or absent to remove the rule (the share stays).
        type: str
        default: present
        choices: [present, absent]
  purge_access_rules:
    description: Remove rules not listed in O(access_rules).
    type: bool
    default: false
  include_access_keys:
    description:
      - "Return each rule's C(access_key) too (any O(state)). The keys are secrets - the module refuses
        this option on a task without C(no_log: true). Without it no key is in the result."
    type: bool
    default: false
  wait:
    description:
      - Wait until new access rules are active. The share itself is always waited for until it is available
        (after creation or a resize) or gone (after deletion).
notes:
  - "The module runs on the control host (C(delegate_to: localhost)) with the interpreter where
    container_infra is installed."
"""

EXAMPLES = r"""
- name: A CephFS share with a cephx user
  os_manila_share:
    cloud: sandbox
    name: scratch
    size: 100
    share_type: cephfs
    share_proto: CEPHFS
    metadata: {project: astro}
    access_rules:
      - access_type: cephx
        access_to: scratch-user
        access_level: rw
  register: share

- name: The cephx key, for a task that writes the keyring (no_log, never shown)
  os_manila_share:
    cloud: sandbox
    name: scratch
    state: query
    include_access_keys: true
  register: share_keys
  no_log: true

- name: Mount source for ceph-fuse / the kernel client
  ansible.builtin.debug:
    msg: "{{ share.share.monitors | join(',') }}:{{ share.share.path }} fs={{ share.share.fs_name }}"

- name: Gone
  os_manila_share:
    cloud: sandbox
    name: scratch
    state: absent
"""

RETURN = r"""
share:
  description: The share (empty when absent).
  returned: always
  type: dict
  contains:
    id: {description: The share id., type: str}
    name: {description: The name., type: str}
    status: {description: available once ready., type: str}
    size: {description: GiB., type: int}
    share_proto: {description: The protocol., type: str}
    share_type: {description: The share type name., type: str}
    metadata: {description: User metadata., type: dict}
    export_locations:
      description: Each export location parsed.
      type: list
      elements: dict
      contains:
        export: {description: As Manila gives it., type: str}
        monitors: {description: The Ceph monitors (CephFS) or the host (NFS)., type: list, elements: str}
        path: {description: The path on the file system., type: str}
        fs_name: {description: The CephFS file system name., type: str}
    monitors: {description: The first export location's monitors., type: list, elements: str}
    path: {description: The first export location's path., type: str}
    fs_name: {description: The CephFS file system name (from __mount_options)., type: str}
    access_rules:
      description: The rules (access_key only with O(include_access_keys)).
      type: list
      elements: dict
      contains:
        access_type: {description: cephx, ip, user or cert., type: str}
        access_to: {description: Who., type: str}
        access_level: {description: rw or ro., type: str}
        state: {description: active once applied., type: str}
        access_key:
          description: The cephx key (secret), only with O(include_access_keys) on a C(no_log) task.
          type: str
plan:
  description: What the run changes (or, in check mode, would change).
  returned: always
  type: dict
"""

# Ansible packs a module with the module_utils it imports; this import tells it the module is a
# new-style one (its parameters arrive through AnsibleModule), the rest comes from container_infra.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402, F401

from container_infra.cloud.module import run_module  # noqa: E402
from container_infra.modules.os_manila_share import ARGUMENT_SPEC, run  # noqa: E402


def main():
    run_module(ARGUMENT_SPEC, run, operation="ensuring", resource=lambda params: f"share {params['name']}")


if __name__ == "__main__":
    main()
