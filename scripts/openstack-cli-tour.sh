#!/usr/bin/env bash
# A tour of the sandbox cloud with the official `openstack` CLI: a cluster template and a cluster, the
# cluster's Heat stack and its nested resources, a port attached to a server, a CephFS share with a
# cephx access rule and its export location. `make tour` runs it after `container-infra sandbox up`;
# safe to run twice (it reuses what an earlier run left).
set -euo pipefail
export OS_CLOUD=sandbox
os() { openstack "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ openstack %s\n' "$*"; os "$@"; }

wait_for() {  # wait_for <what> <command...>: poll a status until it is final, with backoff
    local what=$1 delay=2 status; shift
    for _ in $(seq 1 60); do
        status=$("$@")
        case "$status" in
            *_COMPLETE|available|ACTIVE) echo "$what: $status"; return 0 ;;
            *FAILED|error|ERROR) echo "$what: $status" >&2; return 1 ;;
        esac
        sleep "$delay"; delay=$(( delay < 8 ? delay + 1 : 8 ))
    done
    echo "$what: still $status after waiting; see \`container-infra sandbox logs magnum-conductor\`" >&2
    return 1
}

KEY=demo-key
KEYFILE=${XDG_CACHE_HOME:-$HOME/.cache}/container-infra/demo-key
if ! os keypair show "$KEY" >/dev/null 2>&1; then
    mkdir -p "$(dirname "$KEYFILE")"
    [ -f "$KEYFILE" ] || ssh-keygen -q -t ed25519 -N '' -f "$KEYFILE"
    os keypair create --public-key "$KEYFILE.pub" "$KEY" >/dev/null
fi

say "A Kubernetes cluster template (Heat-era driver, bare-metal flavors)"
if ! os coe cluster template show demo-k8s >/dev/null 2>&1; then
    run coe cluster template create demo-k8s --coe kubernetes --image fedora-coreos-sandbox \
        --external-network public --fixed-network private --fixed-subnet private-subnet \
        --flavor bm.standard --master-flavor bm.standard --server-type bm --network-driver flannel \
        --keypair "$KEY" -f value -c uuid
fi
run coe cluster template list

say "A cluster: 1 master, 2 workers"
if ! os coe cluster show demo >/dev/null 2>&1; then
    run coe cluster create demo --cluster-template demo-k8s --master-count 1 --node-count 2
fi
wait_for "cluster demo" os coe cluster show demo -f value -c status
run coe cluster show demo -c status -c status_reason -c cluster_id -c api_address -c node_addresses

say "Its Heat stack and the stack's nested resources"
# Magnum answers with cluster_id (the stack) from microversion 1.13 on, stack_id before.
STACK=$(os coe cluster show demo -f value -c cluster_id)
run stack show "$STACK" -c stack_name -c stack_status
run stack resource list "$STACK" --nested-depth 2 --filter type=OS::Nova::Server -c resource_name -c physical_resource_id -c stack_name
run stack output show "$STACK" kube_minions

say "A port on the HTE network attached to the first worker"
SERVER=$(os stack resource list "$STACK" --nested-depth 2 --filter name=kube-minion -f value -c physical_resource_id | head -1)
if ! os port show demo-hte-port >/dev/null 2>&1; then
    run port create demo-hte-port --network hte -f value -c id
fi
if [ -z "$(os port show demo-hte-port -f value -c device_id)" ]; then
    run server add port "$SERVER" demo-hte-port
fi
run port show demo-hte-port -c status -c mac_address -c fixed_ips -c device_id -c binding_host_id

say "A CephFS share with a cephx access rule"
if ! os share show demo-share >/dev/null 2>&1; then
    run share create CEPHFS 1 --name demo-share --share-type cephfs -f value -c id
fi
wait_for "share demo-share" os share show demo-share -f value -c status
if [ -z "$(os share access list demo-share -f value -c access_to | grep -x demo-user || true)" ]; then
    run share access create demo-share cephx demo-user
fi
for _ in $(seq 1 20); do
    [ "$(os share access list demo-share -f value -c state)" = active ] && break; sleep 1
done
run share access list demo-share -c access_type -c access_to -c state
run share export location list demo-share -c Path

say "Done"
cat <<EOF
The sandbox keeps running. Try:   openstack --os-cloud sandbox coe cluster list
Service states and logs:          container-infra sandbox status | logs SERVICE
Tear down:                        container-infra sandbox down   (keeps state)  |  reset --yes (wipes it)
EOF
