#!/usr/bin/env bash
# Provisions the Vagrant master: installs what is missing (Rust through
# rustup when there is no cargo), builds the binaries and the image
# tarballs into the shared /vagrant/target for the minions, then starts
# etcd, the apiserver on the private network, the scheduler and the
# controller manager (each with its own identity; TLS, certificates and
# RBAC as hack/local-cluster.sh), whose route controller routes each minion's pod range
# to it (the minions send other minions' pods through the master).
# Usage (from the Vagrantfile): provision-master.sh MASTER_IP NUM_MINIONS
set -euo pipefail

# Vagrant's shell provisioner uploads this file to /tmp/vagrant-shell and
# runs it from there: the repository is the synced folder /vagrant, not
# this file's directory.
cluster_dir="$(dirname "${BASH_SOURCE[0]}")"
[[ -f "$cluster_dir/common.sh" ]] || cluster_dir=/vagrant/cluster
# shellcheck source=cluster/common.sh
source "$cluster_dir/common.sh"

master_ip="${1:?usage: $0 MASTER_IP NUM_MINIONS}"
minions="${2:?usage: $0 MASTER_IP NUM_MINIONS}"
master="https://$master_ip:$VM_API_PORT"

deps::ensure_packages
util::cargo_path
if ! util::have cargo; then
  util::log "installing Rust with rustup (Debian's is too old)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --component clippy,rustfmt
  util::cargo_path
fi
deps::ensure_rust
build::binaries release
bash "$MK8S_ROOT/hack/build-images.sh" --tarballs-only

vm::stop_previous
cluster::safety_routes_up
sysctl -qw net.ipv4.ip_forward=1
# Debian's docker.io (installed with the rest) sets FORWARD to DROP; the
# master forwards between minions on the private network.
cluster::allow_forward "$(vm::iface_of "$master_ip")"
cluster::pki_init "$master_ip"
vm::minion_identities "$master" "$minions"
cluster::start_master "$VM_ETCD_PORT" "$master_ip" "$VM_API_PORT"
cluster::start_controllers "$master" "$VM_NODE_MONITOR_GRACE" "$VM_POD_EVICTION_TIMEOUT"
cluster::start_cluster_dns "$master" "$master_ip"
cluster::write_kubeconfig "$master" "$CLUSTER_STATE/kubeconfig"
# For the host too (the private network reaches the master from there).
cp "$CLUSTER_STATE/kubeconfig" "$MK8S_ROOT/.vagrant/mini-k8s-kubeconfig" 2>/dev/null || true

util::log "master up at $master; $minions minion(s) to come. Kubeconfig: $CLUSTER_STATE/kubeconfig" \
  "(on the host: .vagrant/mini-k8s-kubeconfig)"
