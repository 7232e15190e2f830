#!/usr/bin/env bash
# The operator's first mile on the sandbox cloud, as `make demo` runs it (after `sandbox up`):
# playbooks/site.yml builds the clusters of inventories/sandbox/ (Kubernetes, Swarm from Magnum's
# swarm-mode driver, Swarm without Magnum with a GPU nodegroup), attaches HTE/LLN and configures those
# NICs, forms the Swarm, installs the GPU node's driver and runtime, writes each cluster's inventory
# (clusters/<name>/); then every node answers `ansible -m ping` through the written inventories and
# through the dynamic plugin, each Swarm lists its nodes, a user's GPU job runs on the GPU node, and a
# summary says where everything is. Safe to run again: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG=$PWD/ansible.cfg OS_CLOUD=sandbox SHELL=${SHELL:-/bin/bash}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

SPEC=inventories/sandbox/localhost.yml
CLUSTERS=$(python -c 'import yaml; print(" ".join(c["name"] for c in yaml.safe_load(open(
    "inventories/sandbox/group_vars/all/clusters.yml"))["container_infra_clusters"]))')

# The registry's image the GPU role's check and the GPU job run (a no-op once it is there).
REGISTRY=10.80.0.2:5000
say "The image the GPU check and job use, in the sandbox's registry"
run container-infra sandbox images build base

say "Clusters from their spec: ${CLUSTERS}"
run ansible-playbook -i "$SPEC" playbooks/site.yml

for cluster in $CLUSTERS; do
    say "Every node of ${cluster}, through its written inventory"
    run ansible -i "clusters/${cluster}/hosts.yml" all -m ansible.builtin.ping
done

say "Every node, through the dynamic inventory plugin"
run ansible-inventory -i inventories/sandbox/sandbox.container_infra.yml --graph
run ansible -i inventories/sandbox/sandbox.container_infra.yml 'masters:workers' -m ansible.builtin.ping

for cluster in $CLUSTERS; do
    inventory="clusters/${cluster}/hosts.yml"
    env_script="clusters/${cluster}/credentials/env.sh"
    # Both kinds of Swarm have a TLS API and credentials: Magnum's from Magnum's CA, the one built without
    # Magnum from its own (container_infra_swarm).
    if [ -f "$env_script" ]; then
        if grep -q "container_infra_swarm_form: true" "$inventory"; then
            say "The Swarm of ${cluster} (built without Magnum), from this host over TLS"
        else
            say "The Swarm of ${cluster} (Magnum), from this host over TLS"
        fi
        # shellcheck disable=SC1090
        (. "$env_script" && run docker node ls)
    fi
done

# A user's job on the GPU nodegroup (container-infra job, through the Swarm's TLS API): three tasks of one GPU
# each on a node of two, so two run at once and the third waits for a GPU; each task sees only its own.
say "A GPU job on swarm-heat-sandbox: 3 tasks of 1 GPU on a node of 2"
run container-infra job --cluster swarm-heat-sandbox submit --name gpu-demo \
    --image "${REGISTRY}/container-infra/base:latest" --registry-ca "/etc/docker/certs.d/${REGISTRY}/ca.crt" \
    --tasks 3 --gpus-per-task 1 --wait -- sh -c 'nvidia-smi -L; sleep 5'
run container-infra job --cluster swarm-heat-sandbox logs gpu-demo

say "Summary"
python - "$CLUSTERS" <<'PY'
import sys
from pathlib import Path

import yaml

for name in sys.argv[1].split():
    path = Path("clusters") / name / "hosts.yml"
    data = yaml.safe_load(path.read_text())
    hosts = {}
    for group in data["all"]["children"].values():
        for host, host_vars in (group.get("hosts") or {}).items():
            hosts.setdefault(host, {}).update(host_vars or {})
    print(f"cluster {name}: {len(hosts)} nodes, inventory {path}, credentials {path.parent / 'credentials'}")
    for host, hv in sorted(hosts.items()):
        nets = ", ".join(f"{net} {e['ip']} (mtu {e['mtu']})" for net, e in sorted(hv["container_infra_networks"].items()))
        print(f"  {host:44} {hv['container_infra_role']:6} {hv['container_infra_nodegroup']:15} "
              f"{hv['ansible_user']}@{hv['ansible_host']}  {nets}")
PY
cat <<'TXT'

Run `make demo` again: nothing changes. Tear down with
  .venv/bin/ansible-playbook -i inventories/sandbox/localhost.yml playbooks/cluster_delete.yml
and stop the cloud with `.venv/bin/container-infra sandbox down` (or wipe it with `sandbox reset`).
TXT
