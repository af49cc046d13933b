#!/usr/bin/env bash
# What the Vagrant provisioning scripts share: the repository's cluster
# functions (hack/lib/*.sh, the same ones hack/local-cluster.sh uses) and the
# VM layout. In a VM the "network namespace" of a node is the VM itself, so
# every daemon is started with NETNS "".
# Source from cluster/provision-*.sh.

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib/util.sh"
# shellcheck source=hack/lib/deps.sh
source "$MK8S_ROOT/hack/lib/deps.sh"
# shellcheck source=hack/lib/cluster.sh
source "$MK8S_ROOT/hack/lib/cluster.sh"
# shellcheck source=hack/lib/build.sh
source "$MK8S_ROOT/hack/lib/build.sh"

export CLUSTER_STATE=/var/lib/mini-k8s
export CLUSTER_LOGS=/var/log/mini-k8s
# The master builds into the shared folder; the minions run those binaries.
CLUSTER_BIN="$(build::bin_dir release)"
export CLUSTER_BIN
# The identities (hack/lib/cluster.sh): made on the master, in the shared
# folder, so each minion finds its kubelet's and kube-proxy's certificates
# (the master makes them for every minion; see vm::minion_identities).
export CLUSTER_PKI="$MK8S_ROOT/.vagrant/mini-k8s-pki"
# shellcheck disable=SC2034 # the settings below are for the provision scripts
{
VM_ETCD_PORT=2379
VM_API_PORT=6443
# Kubernetes' defaults: VMs are not end-to-end tests in a hurry.
VM_NODE_MONITOR_GRACE="${NODE_MONITOR_GRACE:-40s}"
VM_POD_EVICTION_TIMEOUT="${POD_EVICTION_TIMEOUT:-5m}"
}

# vm::iface_of IP - the interface that has IP (the private network's).
vm::iface_of() {
  ip -o -4 addr show to "$1/32" | awk '{print $2; exit}'
}

# vm::stop_previous - what an earlier provisioning of this VM started and
# changed (a re-provision starts from scratch; etcd's data is kept).
vm::stop_previous() {
  mkdir -p "$CLUSTER_STATE" "$CLUSTER_LOGS"
  if [[ -S "$CLUSTER_STATE/docker/docker.sock" && -n "$(cluster::pid_of dockerd)" ]]; then
    cluster::remove_containers "unix://$CLUSTER_STATE/docker/docker.sock"
  fi
  cluster::stop_all
  cluster::cleanup_kube_proxy ""
  cluster::run_undo
}

# vm::wait_for FILE MINUTES - until the master has made FILE.
vm::wait_for() {
  local file="$1" limit=$(($2 * 60)) start
  start="$(date +%s)"
  until [[ -s "$file" ]]; do
    (($(date +%s) - start < limit)) || util::die "$file did not appear within $2 minutes: is the master provisioned?"
    sleep 5
  done
}

# vm::minion_identities MASTER_URL NUM_MINIONS - on the master: each
# minion's kubelet identity and serving certificate (minion K is minion-K
# at 10.245.1.(K+2), as the Vagrantfile says) and kube-proxy's, so a minion
# needs no CA key.
vm::minion_identities() {
  local master="$1" k
  cluster::kubeconfig_for "$master" kube-proxy system:kube-proxy >/dev/null
  for k in $(seq 1 "$2"); do
    cluster::kubeconfig_for "$master" "kubelet-minion-$k" "system:node:minion-$k" system:nodes >/dev/null
    cluster::serving_cert "kubelet-minion-$k-serving" "minion-$k" "10.245.1.$((k + 2))"
  done
}

# vm::wait_node_ready MASTER_URL NODE SECONDS
vm::wait_node_ready() {
  local master="$1" node="$2" limit="$3" start
  start="$(date +%s)"
  until cluster::curl -fsS --max-time 2 "$master/api/v1/nodes/$node" 2>/dev/null |
    jq -e 'any(.status.conditions[]?; .type == "Ready" and .status == "True")' >/dev/null 2>&1; do
    (($(date +%s) - start < limit)) || util::die "node $node not Ready after ${limit}s (logs: $CLUSTER_LOGS)"
    sleep 1
  done
}
