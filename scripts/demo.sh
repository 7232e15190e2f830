#!/usr/bin/env bash
# The operator's first mile on the sandbox cloud, as `make demo` runs it (after `sandbox up`):
# playbooks/site.yml builds the clusters of inventories/sandbox/ (Kubernetes, Swarm from Magnum's
# swarm-mode driver, Swarm without Magnum with a GPU nodegroup), attaches HTE/LLN and configures those
# NICs, forms the Swarm, installs the GPU node's driver and runtime, writes each cluster's inventory
# (clusters/<name>/), mounts the Swarm's CephFS share and the Gluster volume its workers serve, and deploys its
# monitoring; then every node answers
# `ansible -m ping` through the written inventories and through the dynamic plugin, each Swarm lists its nodes,
# a user's GPU job runs on the GPU node and writes into the share, a file written on one worker's Gluster
# mount is read on another and by a job, each file system's mount points are listed, and a
# summary says where everything is, with each monitored cluster's Prometheus and every node's `up` there.
# Safe to run again: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG=$PWD/ansible.cfg OS_CLOUD=sandbox SHELL=${SHELL:-/bin/bash}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

SPEC=inventories/sandbox/localhost.yml
CLUSTERS=$(python -c 'import yaml; print(" ".join(c["name"] for c in yaml.safe_load(open(
    "inventories/sandbox/group_vars/all/clusters.yml"))["container_infra_clusters"]))')

# The registry's images: what the GPU role's check, the GPU job and the GPU metrics run, and the monitoring
# agents and Prometheus (built from Debian's packages; a no-op once they are there).
REGISTRY=10.80.0.2:5000
say "The images the GPU check and job, the monitoring and glusterd use, in the sandbox's registry"
run container-infra sandbox images build base node-exporter prometheus glusterfs

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
# each on a node of two, so two run at once and the third waits for a GPU; each task sees only its own, and
# writes what it saw into the cluster's CephFS share, which the manager then reads.
say "A GPU job on swarm-heat-sandbox: 3 tasks of 1 GPU on a node of 2, writing into the share"
run container-infra job --cluster swarm-heat-sandbox submit --name gpu-demo \
    --image "${REGISTRY}/container-infra/base:latest" --registry-ca "/etc/docker/certs.d/${REGISTRY}/ca.crt" \
    --tasks 3 --gpus-per-task 1 --mount /mnt/scratch --wait -- \
    sh -c 'nvidia-smi -L | tee "/mnt/scratch/gpu-demo-$CONTAINER_INFRA_TASK_INDEX.txt"; sleep 5'
run container-infra job --cluster swarm-heat-sandbox logs gpu-demo
say "The share, read on the manager: what each task wrote on the GPU node"
run ansible -i clusters/swarm-heat-sandbox/hosts.yml masters -m ansible.builtin.shell \
    -a 'grep -H . /mnt/scratch/gpu-demo-*.txt'

# The workers' own Gluster volume (hyperconverged, over LLN): written on one worker, read on another, and read
# by a Swarm job placed on the workers, where the volume is mounted.
say "The workers' Gluster volume on swarm-heat-sandbox: written on one worker, read on another and by a job"
run ansible -i clusters/swarm-heat-sandbox/hosts.yml 'workers[0]' -m ansible.builtin.shell \
    -a 'echo "written on $(hostname) at $(date -u +%FT%TZ)" > /mnt/shared/hello.txt'
run ansible -i clusters/swarm-heat-sandbox/hosts.yml 'workers[1]' -m ansible.builtin.command -a 'cat /mnt/shared/hello.txt'
run container-infra job --cluster swarm-heat-sandbox submit --name read-shared \
    --image "${REGISTRY}/container-infra/base:latest" --registry-ca "/etc/docker/certs.d/${REGISTRY}/ca.crt" \
    --tasks 1 --nodegroup default-worker --mount /mnt/shared:/shared:ro --wait -- cat /shared/hello.txt
run container-infra job --cluster swarm-heat-sandbox logs read-shared

say "Where each shared file system is mounted"
run ansible -i clusters/swarm-heat-sandbox/hosts.yml 'masters:workers' -m ansible.builtin.command \
    -a 'findmnt --noheadings --types fuse.ceph,ceph,fuse.glusterfs,beegfs --output TARGET,FSTYPE,SOURCE'

say "Summary"
python - "$CLUSTERS" <<'PY'
import json
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from container_infra import storage

# Run on the Prometheus host: an instant query of its API on the node's loopback.
QUERY = ("import json,sys,urllib.parse,urllib.request;"
         "q=urllib.parse.urlencode({'query':sys.argv[2]});"
         "print(urllib.request.urlopen('http://127.0.0.1:'+sys.argv[1]+'/api/v1/query?'+q,timeout=10).read().decode())")


def prometheus_summary(data: dict, hosts: dict) -> None:
    """Where the cluster's Prometheus is, how to reach it from this machine, and every node's up there."""
    settings = next((hv["container_infra_monitoring"] for hv in hosts.values()
                     if hv.get("container_infra_monitoring")), {})
    if not settings.get("enabled"):
        return
    masters = list((data["all"]["children"].get("masters") or {}).get("hosts") or {})
    server = settings.get("prometheus_host") or masters[0]
    hv, port = hosts[server], str(settings.get("prometheus_port", 9090))
    login = ["-i", hv["ansible_ssh_private_key_file"], *shlex.split(hv.get("ansible_ssh_common_args", "")),
             f"{hv['ansible_user']}@{hv['ansible_host']}"]
    print(f"  Prometheus on {server}; from this machine: ssh -N -L 127.0.0.1:{port}:127.0.0.1:{port} "
          f"{shlex.join(login)}  then http://127.0.0.1:{port}")
    seen = {}
    for metric in ("up", "scrape_duration_seconds"):
        answer = subprocess.run(["ssh", "-o", "BatchMode=yes", *login, "python3", "-c", shlex.quote(QUERY), port,
                                 shlex.quote(f'{metric}{{job=~"node|docker-engine"}}')], capture_output=True, text=True)
        if answer.returncode != 0:
            print(f"  (Prometheus did not answer: {answer.stderr.strip()[-200:]})")
            return
        for sample in json.loads(answer.stdout)["data"]["result"]:
            node, job = sample["metric"].get("node", "?"), sample["metric"]["job"]
            seen.setdefault(node, {})[(metric, job)] = float(sample["value"][1])
    for node, values in sorted(seen.items()):
        line = "  ".join(f"{label} up {values.get(('up', job), float('nan')):.0f} "
                         f"(scrape {values.get(('scrape_duration_seconds', job), float('nan')):.3f} s)"
                         for label, job in (("node exporter", "node"), ("engine", "docker-engine")))
        print(f"    {node:44} {line}")


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
        # The file systems the storage role places on the node (the spec in its inventory), and where.
        plan = storage.node_plan(hv.get("container_infra_storage") or [], name, hv["container_infra_role"],
                                 hv["container_infra_nodegroup"])
        placed = ", ".join(f"{e['kind']} {e['name']} on {e['path']}" for e in plan if e["state"] == "present")
        if placed:
            print(f"  {'':44} file systems: {placed}")
    prometheus_summary(data, hosts)
PY
cat <<'TXT'

Run `make demo` again: nothing changes. Tear down with
  .venv/bin/ansible-playbook -i inventories/sandbox/localhost.yml playbooks/cluster_delete.yml
and stop the cloud with `.venv/bin/container-infra sandbox down` (or wipe it with `sandbox reset`).
TXT
