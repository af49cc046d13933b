#!/usr/bin/env bash
# A multi-minion cluster on this one machine (DESIGN.md, "Multi-minion
# cluster on one machine"): the master (etcd, apiserver, scheduler,
# controller-manager) on the host, each minion a network namespace
# mk8s-minion-K on the bridge mk8s0 with its own dockerd, kubelet and
# kube-proxy. Pod ranges are routed between minions through the host by the
# controller-manager's route controller (rtnetlink, host-gateway style).
#
#   hack/local-cluster.sh up N          start (cleans a crashed run's leftovers first)
#   hack/local-cluster.sh down          stop and remove everything
#   hack/local-cluster.sh status        what runs, and the nodes
#   hack/local-cluster.sh stop-minion K   stop minion K's kubelet, kube-proxy and dockerd
#   hack/local-cluster.sh start-minion K  start them again (a reboot if they run); K one
#                                         more than the minions there adds a minion
#   hack/local-cluster.sh restart-master  restart etcd and the apiserver (data kept)
#   hack/local-cluster.sh stop-scheduler  stop the scheduler (kubectl get cs: Unhealthy)
#   hack/local-cluster.sh start-scheduler start it again
#   hack/local-cluster.sh exec K CMD...   run CMD in minion K's network namespace
#   hack/local-cluster.sh docker K ARG... the docker CLI against minion K's dockerd
#
# Networks: mk8s0 10.245.1.1/24 on the host, minion K 10.245.1.(K+1), its
# pods 10.244.K.0/24 (its dockerd's --bip), portal IPs 10.0.0.0/24. A minion
# has no default route: it reaches the master, the other minions and their
# pods, nothing else. The apiserver listens on 10.245.1.1:6443 only, over
# TLS with client certificates, tokens and RBAC; each component has its
# own identity (certificates and kubeconfigs in $CLUSTER_STATE/pki, see
# docs/operations.md); the printed kubeconfig is the admin's. The
# cluster DNS (cluster-dns) answers on 10.245.1.1:53 behind the portal
# 10.0.0.10 (Service kube-system/kube-dns); the kubelets point pods at it.
#
# Environment: CLUSTER_STATE (/tmp/mini-k8s-cluster), BUILD_PROFILE
# (release), SKIP_BUILD=1, ETCD_PORT (2379), API_PORT (6443),
# NODE_MONITOR_GRACE (10s), POD_EVICTION_TIMEOUT (20s) (short, so that
# end-to-end tests see pods of a lost minion recreated within a minute).
# Needs root.
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
# shellcheck source=hack/lib/deps.sh
source "$MK8S_ROOT/hack/lib/deps.sh"
# shellcheck source=hack/lib/cluster.sh
source "$MK8S_ROOT/hack/lib/cluster.sh"
# shellcheck source=hack/lib/build.sh
source "$MK8S_ROOT/hack/lib/build.sh"
# shellcheck source=hack/lib/minion.sh
source "$MK8S_ROOT/hack/lib/minion.sh"

CLUSTER_STATE="${CLUSTER_STATE:-/tmp/mini-k8s-cluster}"
CLUSTER_LOGS="$CLUSTER_STATE/logs"
# The commands after `up` use the settings `up` had.
if [[ "${1:-}" != up && -f "$CLUSTER_STATE/settings" ]]; then
  # shellcheck source=/dev/null
  source "$CLUSTER_STATE/settings"
fi
ETCD_PORT="${ETCD_PORT:-2379}"
API_PORT="${API_PORT:-6443}"
BUILD_PROFILE="${BUILD_PROFILE:-release}"
CLUSTER_BIN="$(build::bin_dir "$BUILD_PROFILE")"
NODE_MONITOR_GRACE="${NODE_MONITOR_GRACE:-10s}"
POD_EVICTION_TIMEOUT="${POD_EVICTION_TIMEOUT:-20s}"
MASTER="https://$MINION_MASTER_IP:$API_PORT"
# Every identity's certificate and key, and the CA (hack/lib/cluster.sh).
CLUSTER_PKI="$CLUSTER_STATE/pki"

usage() {
  sed -n '/^#   hack/s/^# *//p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# The minion numbers of this cluster (recorded at `up`).
minions() {
  [[ -f "$CLUSTER_STATE/minions" ]] || util::die "no cluster is up (no $CLUSTER_STATE/minions)"
  seq 1 "$(cat "$CLUSTER_STATE/minions")"
}

# valid_minion K - K is a minion of this cluster.
valid_minion() {
  local count
  count="$(cat "$CLUSTER_STATE/minions" 2>/dev/null || echo 0)"
  if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > count)); then
    util::die "no minion $1 (the cluster has $count)"
  fi
}

start_master() {
  cluster::start_master "$ETCD_PORT" "$MINION_MASTER_IP" "$API_PORT"
}

stop_master() {
  cluster::stop apiserver 15
  cluster::stop etcd
}

# teardown - everything of a cluster whose state is in CLUSTER_STATE, and
# whatever a crashed run may have left under our names.
teardown() {
  if [[ -f "$CLUSTER_STATE/minions" ]]; then
    # shellcheck disable=SC2046 # one number per word
    minion::stop --remove $(seq 1 "$(cat "$CLUSTER_STATE/minions")")
  fi
  # The controller manager (which removes its routes) before the apiserver,
  # etcd last.
  cluster::stop_many 10 controller-manager scheduler cluster-dns
  stop_master
  cluster::stop_all
  minion::kill_strays
  cluster::run_undo
  minion::remove_leftovers
  cluster::remove_state
}

cmd_up() {
  local n="${1:-}" k started
  if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > 200)); then
    util::die "up N: N from 1 to 200"
  fi
  [[ "$(id -u)" == 0 ]] || util::die "run as root: the cluster makes namespaces, a bridge, routes and runs dockerd"
  deps::ensure_packages
  deps::ensure_rust
  if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    build::binaries "$BUILD_PROFILE"
  fi
  if cluster::any_alive; then
    util::die "a cluster is already up ($CLUSTER_STATE): '$0 down' first"
  fi
  if [[ -d "$CLUSTER_STATE" ]] || minion::leftovers_exist; then
    util::warn "a previous cluster was not taken down ($CLUSTER_STATE); removing what it left first"
    teardown
  fi
  mkdir -p "$CLUSTER_LOGS"
  echo "$n" >"$CLUSTER_STATE/minions"
  printf 'ETCD_PORT=%q\nAPI_PORT=%q\nBUILD_PROFILE=%q\n' "$ETCD_PORT" "$API_PORT" "$BUILD_PROFILE" \
    >"$CLUSTER_STATE/settings"
  started="$(date +%s%N)"

  cluster::safety_routes_up
  minion::host_network
  cluster::pki_init "$MINION_MASTER_IP"
  start_master
  cluster::start_controllers "$MASTER" "$NODE_MONITOR_GRACE" "$POD_EVICTION_TIMEOUT"
  cluster::start_cluster_dns "$MASTER" "$MINION_MASTER_IP"
  for k in $(seq 1 "$n"); do
    minion::network "$k"
    minion::start_dockerd "$k"
  done
  # The daemons start in parallel; each then gets the images and its agents.
  for k in $(seq 1 "$n"); do
    minion::wait_dockerd "$k"
    cluster::load_images "$(minion::docker_host "$k")"
    minion::start_agents "$k" "$MASTER"
  done
  cluster::wait_nodes_ready "$MASTER" "$n" 90
  local elapsed_ms=$((($(date +%s%N) - started) / 1000000))
  cluster::write_kubeconfig "$MASTER" "$CLUSTER_STATE/kubeconfig"
  cat <<USAGE

mini-k8s: $n minions Ready $((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100))s after the start of the master.

  export KUBECONFIG=$CLUSTER_STATE/kubeconfig
  export PATH=$CLUSTER_BIN:\$PATH
  ctl get nodes,pods,svc,rc              # or the stock kubectl, same kubeconfig
  $0 exec 1 ip addr                      # a command inside minion 1
  $0 docker 2 ps                         # minion 2's containers
  $0 down                                # stop and remove everything

Logs: $CLUSTER_LOGS
USAGE
}

cmd_down() {
  [[ "$(id -u)" == 0 ]] || util::die "run as root"
  teardown
  util::log "down: nothing left behind"
}

cmd_status() {
  local name pid
  [[ -f "$(cluster::pids_file)" ]] || {
    echo "no cluster ($CLUSTER_STATE)"
    return 1
  }
  while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null; then echo "$name $pid running"; else echo "$name $pid DEAD"; fi
  done <"$(cluster::pids_file)"
  echo "kubeconfig: $CLUSTER_STATE/kubeconfig"
  cluster::curl -fsS --max-time 2 "$MASTER/api/v1/nodes" 2>/dev/null | jq -r '.items[] |
    "\(.metadata.name) \(.status.addresses[]? | select(.type == "InternalIP") | .address) \(.spec.podCIDR // "-") Ready=\(.status.conditions[]? | select(.type == "Ready") | .status)"' ||
    echo "apiserver not answering at $MASTER"
}

# One command at a time changes the cluster (an `up` racing a `down` would
# tear down what the other just made).
case "${1:-}" in
  up | down | stop-minion | start-minion | restart-master | stop-scheduler | start-scheduler)
    exec 9>/run/lock/mini-k8s-local-cluster.lock
    flock -w 300 9 || util::die "another local-cluster.sh command holds /run/lock/mini-k8s-local-cluster.lock"
    ;;
esac

case "${1:-}" in
  up) cmd_up "${2:-}" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  stop-minion)
    valid_minion "${2:-}"
    minion::stop "$2"
    ;;
  start-minion)
    added=0
    # The next number grows the cluster (a DaemonSet's pod follows it);
    # recorded first, so that `down` removes it whatever happens next.
    if [[ -f "$CLUSTER_STATE/minions" && "${2:-}" == "$(($(cat "$CLUSTER_STATE/minions") + 1))" ]]; then
      echo "$2" >"$CLUSTER_STATE/minions"
      minion::network "$2"
      added=1
    fi
    valid_minion "${2:-}"
    mkdir -p "$CLUSTER_LOGS"
    minion::stop "$2" # whatever of it still runs: start-minion is a reboot
    minion::start_dockerd "$2"
    minion::wait_dockerd "$2"
    ((added == 0)) || cluster::load_images "$(minion::docker_host "$2")"
    minion::start_agents "$2" "$MASTER"
    ;;
  restart-master)
    minions >/dev/null
    stop_master
    start_master
    ;;
  stop-scheduler)
    minions >/dev/null
    cluster::stop scheduler
    ;;
  start-scheduler)
    minions >/dev/null
    cluster::stop scheduler # a restart if it runs
    cluster::start_scheduler "$MASTER"
    cluster::wait_http "http://127.0.0.1:$SCHEDULER_HEALTHZ_PORT/healthz" 30 scheduler
    ;;
  exec)
    valid_minion "${2:-}"
    k="$2"
    shift 2
    (($#)) || usage
    exec nsenter "--net=/var/run/netns/$(minion::netns "$k")" -- "$@"
    ;;
  docker)
    valid_minion "${2:-}"
    k="$2"
    shift 2
    exec docker -H "$(minion::docker_host "$k")" "$@"
    ;;
  *) usage ;;
esac
