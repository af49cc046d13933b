#!/usr/bin/env bash
# Provisions Vagrant minion K: its routes (other minions' pods through the
# master, portal IPs local), its own dockerd with the pod range
# 10.244.K.0/24 on docker0, the images, a kubelet and kube-proxy, then waits
# until its node is Ready. The binaries and image tarballs come from the
# master's build in the shared /vagrant/target.
# Usage (from the Vagrantfile): provision-minion.sh MASTER_IP K MINION_IP
set -euo pipefail

# Vagrant's shell provisioner uploads this file to /tmp/vagrant-shell and
# runs it from there: the repository is the synced folder /vagrant, not
# this file's directory.
cluster_dir="$(dirname "${BASH_SOURCE[0]}")"
[[ -f "$cluster_dir/common.sh" ]] || cluster_dir=/vagrant/cluster
# shellcheck source=cluster/common.sh
source "$cluster_dir/common.sh"

usage="usage: $0 MASTER_IP K MINION_IP"
master_ip="${1:?$usage}"
k="${2:?$usage}"
ip="${3:?$usage}"
master="https://$master_ip:$VM_API_PORT"
node="minion-$k"
pod_cidr="10.244.$k.0/24"
docker_dir="$CLUSTER_STATE/docker"
docker_host="unix://$docker_dir/docker.sock"

deps::ensure_packages
# Debian's docker.io starts a dockerd of its own, with Docker's bridge and
# firewall rules; this node runs one configured for its pod range instead.
systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
vm::wait_for "$CLUSTER_BIN/kubelet" 60
vm::wait_for "$MK8S_ROOT/target/images/pause.tar" 10
# Its identities, made by the master (vm::minion_identities).
vm::wait_for "$CLUSTER_PKI/kubelet-$node-serving.crt" 10

vm::stop_previous
cluster::node_routes "" "$master_ip" "$ip"
cluster::start_node_dockerd dockerd "" "$docker_dir" "$pod_cidr"
cluster::wait_dockerd dockerd "$docker_host"
cluster::load_images "$docker_host"
cluster::start_node_agents "" "" "$master" "$node" "$ip" "$pod_cidr" "$docker_host" "$CLUSTER_STATE/kubelet"
vm::wait_node_ready "$master" "$node" 120
util::log "$node Ready ($ip, pods $pod_cidr)"
