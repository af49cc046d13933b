#!/usr/bin/env bash
# Functions that bring cluster components up and down. The local cluster
# (hack/local-up-cluster.sh) uses them now; the multi-minion and Vagrant
# clusters will share them. Each start function records the PID it started
# so that stop only ever kills what this script started.

# The ranges of DESIGN.md's "Networks of the local clusters".
CLUSTER_POD_RANGE="10.244.0.0/16"
CLUSTER_PORTAL_RANGE="10.0.0.0/24"

# cluster::pids_file - where started PIDs are remembered.
cluster::pids_file() { echo "$CLUSTER_STATE/pids"; }

# cluster::remember NAME PID
cluster::remember() { echo "$1 $2" >>"$(cluster::pids_file)"; }

# cluster::port_free PORT - true when nothing listens on 127.0.0.1:PORT.
cluster::port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# cluster::safety_routes_up - `unreachable` routes for the pod and portal
# ranges, so that a routing mistake can never send a packet off this host.
# More specific routes to real nodes win over them. Records which it added.
cluster::safety_routes_up() {
  local range
  for range in "$CLUSTER_POD_RANGE" "$CLUSTER_PORTAL_RANGE"; do
    if ! ip route show type unreachable | grep -q "^unreachable $range"; then
      ip route add unreachable "$range"
      echo "$range" >>"$CLUSTER_STATE/routes"
      util::log "added route: unreachable $range"
    fi
  done
}

# cluster::safety_routes_down - removes the routes this cluster added.
cluster::safety_routes_down() {
  local range
  [[ -f "$CLUSTER_STATE/routes" ]] || return 0
  while read -r range; do
    ip route del unreachable "$range" 2>/dev/null || true
  done <"$CLUSTER_STATE/routes"
  rm -f "$CLUSTER_STATE/routes"
}

# cluster::wait_http URL SECONDS NAME - polls until URL answers 200.
cluster::wait_http() {
  local url="$1" limit="$2" name="$3" start
  start="$(date +%s)"
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if (($(date +%s) - start > limit)); then
      util::die "$name did not become ready at $url within ${limit}s (log: $CLUSTER_LOGS/$name.log)"
    fi
    sleep 0.1
  done
}

# cluster::start_etcd PORT - one etcd member on loopback.
cluster::start_etcd() {
  local port="$1" peer=$(( $1 + 1 ))
  cluster::port_free "$port" || util::die "port $port is taken: is another etcd running? (stop it or set ETCD_PORT)"
  mkdir -p "$CLUSTER_STATE/etcd"
  etcd --name local --data-dir "$CLUSTER_STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "local=http://127.0.0.1:$peer" >"$CLUSTER_LOGS/etcd.log" 2>&1 &
  cluster::remember etcd $!
  util::log "etcd: pid $!, http://127.0.0.1:$port"
}

# cluster::start_apiserver ETCD_URL PORT
cluster::start_apiserver() {
  local etcd="$1" port="$2"
  cluster::port_free "$port" || util::die "port $port is taken: is another apiserver running? (stop it or set API_PORT)"
  "$CLUSTER_BIN/apiserver" --etcd-servers "$etcd" --bind-address 127.0.0.1 --port "$port" \
    --service-cluster-ip-range "$CLUSTER_PORTAL_RANGE" >"$CLUSTER_LOGS/apiserver.log" 2>&1 &
  cluster::remember apiserver $!
  cluster::wait_http "http://127.0.0.1:$port/readyz" 30 apiserver
  util::log "apiserver: pid $!, http://127.0.0.1:$port"
}

# cluster::write_kubeconfig SERVER PATH - a kubeconfig for ctl and kubectl.
cluster::write_kubeconfig() {
  cat >"$2" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: mini-k8s-local
  cluster:
    server: $1
users:
- name: mini-k8s-local
  user: {}
contexts:
- name: mini-k8s-local
  context:
    cluster: mini-k8s-local
    user: mini-k8s-local
    namespace: default
current-context: mini-k8s-local
KUBECONFIG
}

# cluster::stop_all - SIGTERM each started process (newest first), then
# SIGKILL what is left after a grace period.
cluster::stop_all() {
  local file name pid
  file="$(cluster::pids_file)"
  [[ -f "$file" ]] || return 0
  tac "$file" | while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      util::log "stopped $name (pid $pid)"
    fi
  done
  rm -f "$file"
}
