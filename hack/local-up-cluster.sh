#!/usr/bin/env bash
# Brings a local cluster up on this host and keeps it up until Ctrl-C, then
# stops everything it started and removes what it made.
#
# Today that is etcd and the apiserver: the kubelet, kube-proxy, scheduler
# and controller-manager are not built yet (see the open issues), so pods
# stay Pending. Everything a cluster user does through the API works.
#
# Environment: ETCD_PORT (2379), API_PORT (8080), CLUSTER_STATE
# (/tmp/mini-k8s-local: data, logs, kubeconfig), BUILD_PROFILE (release).
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
# shellcheck source=hack/lib/deps.sh
source "$MK8S_ROOT/hack/lib/deps.sh"
# shellcheck source=hack/lib/cluster.sh
source "$MK8S_ROOT/hack/lib/cluster.sh"

ETCD_PORT="${ETCD_PORT:-2379}"
API_PORT="${API_PORT:-8080}"
BUILD_PROFILE="${BUILD_PROFILE:-release}"
CLUSTER_STATE="${CLUSTER_STATE:-/tmp/mini-k8s-local}"
CLUSTER_LOGS="$CLUSTER_STATE/logs"
# cargo puts the dev profile in target/debug.
CLUSTER_BIN="$MK8S_ROOT/target/${BUILD_PROFILE/#dev/debug}"

[[ "$(id -u)" == 0 ]] || util::die "run as root: the cluster adds routes (and later network namespaces)"

deps::install_all
util::cargo_path
util::log "building ($BUILD_PROFILE)"
(cd "$MK8S_ROOT" && cargo build --locked --profile "$BUILD_PROFILE" -p apiserver -p ctl)

if [[ -f "$CLUSTER_STATE/pids" ]]; then
  util::warn "a previous run left $CLUSTER_STATE behind; cleaning it up first"
  cluster::stop_all
  cluster::safety_routes_down
fi
rm -rf "$CLUSTER_STATE"
mkdir -p "$CLUSTER_LOGS"

# shellcheck disable=SC2317 # called by the trap
cleanup() {
  trap - EXIT INT TERM
  util::log "stopping the cluster"
  cluster::stop_all
  cluster::safety_routes_down
  rm -rf "$CLUSTER_STATE"
  util::log "stopped; nothing left behind"
}
trap cleanup EXIT INT TERM

started="$(date +%s)"
cluster::safety_routes_up
cluster::start_etcd "$ETCD_PORT"
cluster::start_apiserver "http://127.0.0.1:$ETCD_PORT" "$API_PORT"
kubeconfig="$CLUSTER_STATE/kubeconfig"
cluster::write_kubeconfig "http://127.0.0.1:$API_PORT" "$kubeconfig"

cat <<USAGE

mini-k8s is up in $(util::seconds_since "$started")s (etcd + apiserver; no kubelet yet, so pods stay Pending).

  export KUBECONFIG=$kubeconfig
  export PATH=$CLUSTER_BIN:\$PATH
  ctl get pods,svc,rc,nodes          # or the stock kubectl, same kubeconfig
  ctl create -f examples/            # v1 and 2014 v1beta1 manifests alike
  curl http://127.0.0.1:$API_PORT/api/v1beta1/pods

Logs: $CLUSTER_LOGS    Press Ctrl-C to stop and clean up.
USAGE

# Stay up until interrupted, or until a component dies.
while true; do
  while read -r name pid; do
    kill -0 "$pid" 2>/dev/null || util::die "$name (pid $pid) exited; see $CLUSTER_LOGS/$name.log"
  done <"$(cluster::pids_file)"
  sleep 1
done
