#!/usr/bin/env bash
# Brings a one-node cluster up on this host and keeps it up until Ctrl-C,
# then stops everything it started and removes what it made:
#   installs what is missing (hack/lib/deps.sh), builds, builds the local
#   images, then starts etcd, dockerd (unless one answers on
#   /var/run/docker.sock), apiserver, scheduler, controller-manager, a
#   kubelet and kube-proxy, and waits until the node is Ready.
# Needs root (routes, a bridge, dockerd, iptables): run by a user, it
# installs and builds as that user, then runs again through sudo.
#
# Environment: ETCD_PORT (2379), API_PORT (8080), CLUSTER_STATE
# (/tmp/mini-k8s-local: data, logs, kubeconfig), BUILD_PROFILE (release;
# dev builds faster; release-lean builds much slower, smaller binaries),
# SKIP_BUILD=1 (use the binaries as they are).
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
# shellcheck source=hack/lib/deps.sh
source "$MK8S_ROOT/hack/lib/deps.sh"
# shellcheck source=hack/lib/cluster.sh
source "$MK8S_ROOT/hack/lib/cluster.sh"
# shellcheck source=hack/lib/build.sh
source "$MK8S_ROOT/hack/lib/build.sh"

ETCD_PORT="${ETCD_PORT:-2379}"
API_PORT="${API_PORT:-8080}"
BUILD_PROFILE="${BUILD_PROFILE:-release}"
CLUSTER_STATE="${CLUSTER_STATE:-/tmp/mini-k8s-local}"
CLUSTER_LOGS="$CLUSTER_STATE/logs"
CLUSTER_BIN="$(build::bin_dir "$BUILD_PROFILE")"
# The bridge and pod range of the dockerd this script starts when the host
# has none (DESIGN.md: pods live in 10.244.0.0/16).
LOCAL_BRIDGE="mk8s-local"
LOCAL_POD_CIDR="10.244.0.0/24"
LOCAL_BRIDGE_IP="10.244.0.1"
NODE_NAME="$(hostname | tr '[:upper:]' '[:lower:]')"
MASTER="http://127.0.0.1:$API_PORT"

script_started="$(date +%s%N)"

# The cluster needs root (routes, a bridge, iptables rules, dockerd). A
# non-root caller installs (apt through sudo) and builds as themselves, so
# target/ stays theirs, then the rest runs again as root through sudo.
if ((EUID != 0)) && ! util::have sudo; then
  util::die "this needs root and there is no sudo: run it from a root shell: bash $0"
fi
deps::ensure_packages
deps::ensure_rust
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  build::binaries "$BUILD_PROFILE"
fi
SKIP_BUILD=1 MK8S_ROOT_ENV="SKIP_BUILD BUILD_PROFILE ETCD_PORT API_PORT CLUSTER_STATE" \
  util::reexec_as_root "$0" "$@"

if [[ -d "$CLUSTER_STATE" ]]; then
  util::warn "a previous run left $CLUSTER_STATE behind; cleaning it up first"
  if [[ -n "$(cluster::pid_of dockerd)" ]]; then
    cluster::remove_containers "unix://$CLUSTER_STATE/docker/docker.sock"
  fi
  cluster::stop_all
  cluster::cleanup_kube_proxy ""
  cluster::run_undo
  cluster::remove_state
fi
mkdir -p "$CLUSTER_LOGS"
own_docker=0

# shellcheck disable=SC2317 # called by the trap
cleanup() {
  trap - EXIT INT TERM
  util::log "stopping the cluster"
  cluster::stop kube-proxy
  cluster::stop kubelet
  if [[ "$own_docker" == 1 ]]; then
    cluster::remove_containers "unix://$CLUSTER_STATE/docker/docker.sock"
  else
    local ids
    ids="$(docker ps -aq --filter "label=io.mini-k8s.cluster=$CLUSTER_STATE" 2>/dev/null || true)"
    # shellcheck disable=SC2086 # one id per word
    [[ -z "$ids" ]] || docker rm -f $ids >/dev/null 2>&1 || true
  fi
  cluster::stop_all
  cluster::cleanup_kube_proxy ""
  cluster::run_undo
  cluster::remove_state
  util::log "stopped; nothing left behind"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

started="$(date +%s%N)"
cluster::safety_routes_up
cluster::start_etcd "$ETCD_PORT"

# The container runtime: the host's dockerd if one answers, else one of our
# own on a bridge of our own, with no way to pull from outside.
if docker -H unix:///var/run/docker.sock version >/dev/null 2>&1; then
  docker_host="unix:///var/run/docker.sock"
  pod_cidr=""
  node_ip="127.0.0.1"
  util::log "using the dockerd that answers on /var/run/docker.sock"
else
  own_docker=1
  docker_host="unix://$CLUSTER_STATE/docker/docker.sock"
  pod_cidr="$LOCAL_POD_CIDR"
  node_ip="127.0.0.1"
  cluster::make_bridge "$LOCAL_BRIDGE" "$LOCAL_BRIDGE_IP/24"
  cluster::allow_forward "$LOCAL_BRIDGE"
  cluster::start_dockerd dockerd "" "$CLUSTER_STATE/docker" \
    --bridge "$LOCAL_BRIDGE" --iptables=false --ip-masq=false
fi

cluster::start_apiserver "http://127.0.0.1:$ETCD_PORT" 127.0.0.1 "$API_PORT"
cluster::start_scheduler "$MASTER"
cluster::start_controller_manager "$MASTER"
cluster::wait_dockerd dockerd "$docker_host"
cluster::load_images "$docker_host"
# Portal IPs are local addresses; connections to them leave from the
# bridge's address (or the loopback one with the host's Docker).
cluster::portal_local_route "" "$([[ "$own_docker" == 1 ]] && echo "$LOCAL_BRIDGE_IP" || echo 127.0.0.1)"
# The cluster DNS answers on our bridge's address, which our pods reach;
# with the host's Docker the pods' bridge is not ours, so there is none.
dns_flags=()
if [[ "$own_docker" == 1 ]]; then
  cluster::start_cluster_dns "$MASTER" "$LOCAL_BRIDGE_IP"
  dns_flags=(--cluster-dns "$CLUSTER_DNS_IP" --cluster-domain "$CLUSTER_DOMAIN")
else
  util::warn "no cluster DNS with the host's dockerd: pods use the host's resolv.conf"
fi
cluster::start_kubelet kubelet "" "$MASTER" "$NODE_NAME" "$node_ip" "$pod_cidr" "$docker_host" \
  "$CLUSTER_STATE/kubelet" --container-label "io.mini-k8s.cluster=$CLUSTER_STATE" --heartbeat-period 5 \
  "${dns_flags[@]}"
cluster::start_kube_proxy kube-proxy "" "$MASTER" "$NODE_NAME" "$node_ip"
cluster::wait_nodes_ready "$MASTER" 1 60
now="$(date +%s%N)"
elapsed_ms=$(((now - started) / 1000000))
total_ms=$(((now - script_started) / 1000000))

kubeconfig="$CLUSTER_STATE/kubeconfig"
cluster::write_kubeconfig "$MASTER" "$kubeconfig"

cat <<USAGE

mini-k8s is up: node $NODE_NAME Ready in $((total_ms / 1000)).$((total_ms % 1000 / 100))s ($((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100))s from the start of etcd; the rest is dependency checks and the build).

  export KUBECONFIG=$kubeconfig
  export PATH=$CLUSTER_BIN:\$PATH
  ctl get nodes,pods,svc,rc           # or the stock kubectl, same kubeconfig
  ctl create -f examples/walkthrough/db-service.json -f examples/walkthrough/msg-service.json
  ctl create -f examples/walkthrough/consumer-pod.json -f examples/walkthrough/db-pod.json -f examples/walkthrough/msg-pod.json
  curl $MASTER/api/v1beta1/minions

Logs: $CLUSTER_LOGS    Press Ctrl-C to stop and clean up.
USAGE

# Stay up until interrupted, or until a component dies.
while true; do
  cluster::check_alive
  sleep 1
done
