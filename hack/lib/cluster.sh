#!/usr/bin/env bash
# The steps that configure and start each cluster component, shared by
#   hack/local-up-cluster.sh   everything on this host
#   hack/local-cluster.sh      master on the host, minions in network namespaces
#   cluster/provision-*.sh     master and minions as Vagrant VMs
# A function that starts a daemon takes a network namespace name as its
# second argument: "" runs it in the caller's own (the host, or a VM, which
# is a minion's "namespace" there), NAME runs it with
# `nsenter --net=/var/run/netns/NAME` (not `ip netns exec`, which remounts
# /sys and leaves dockerd without its cgroups).
#
# The caller sets CLUSTER_STATE (a directory of its own), CLUSTER_LOGS and
# CLUSTER_BIN (where the binaries are). Everything started is remembered by
# PID in $CLUSTER_STATE/pids and stopped only by that PID; every change made
# to the machine (routes, links, namespaces, firewall rules) is recorded in
# $CLUSTER_STATE/undo with the command that reverts it, so a teardown, even
# after a crash, removes exactly what was made and nothing else.
#
# With CLUSTER_PKI set (a directory; hack/local-cluster.sh and the Vagrant
# provisioning set it), the cluster is secure (issue #13): a CA there, the
# apiserver serving TLS with client-certificate and token authentication and
# RBAC, every component with a client certificate and kubeconfig of its own
# (cluster::kubeconfig_for), kubelets serving TLS with webhook authentication
# and authorization. Without it (hack/local-up-cluster.sh), plain HTTP on
# loopback as before.
# Source after hack/lib/util.sh.

# The ranges of DESIGN.md's "Networks of the local clusters".
CLUSTER_POD_RANGE="10.244.0.0/16"
CLUSTER_PORTAL_RANGE="10.0.0.0/24"
# The cluster DNS: its portal IP (Service kube-system/kube-dns, as kubeadm
# picks the tenth of the range) and the domain the kubelets search.
CLUSTER_DNS_IP="10.0.0.10"
CLUSTER_DOMAIN="cluster.local"
# A closed loopback port: every dockerd started here gets it as its HTTP(S)
# proxy, so that a pull fails on this machine instead of leaving it.
CLUSTER_NO_EGRESS_PROXY="http://127.0.0.1:9"

# cluster::pids_file - where started PIDs are remembered ("NAME PID" lines).
cluster::pids_file() { echo "$CLUSTER_STATE/pids"; }

# cluster::remember NAME PID
cluster::remember() { echo "$1 $2" >>"$(cluster::pids_file)"; }

# cluster::pid_of NAME - the remembered PID of NAME, if any.
cluster::pid_of() {
  local file
  file="$(cluster::pids_file)"
  [[ -f "$file" ]] || return 0
  awk -v n="$1" '$1 == n {print $2}' "$file" | tail -n1
}

# cluster::undo COMMAND... - record how to revert a change just made.
cluster::undo() {
  local arg line=""
  for arg in "$@"; do line+="$(printf '%q' "$arg") "; done
  echo "$line" >>"$CLUSTER_STATE/undo"
}

# cluster::run_undo - revert every recorded change, newest first.
cluster::run_undo() {
  local file="$CLUSTER_STATE/undo" line
  [[ -f "$file" ]] || return 0
  while IFS= read -r line; do
    [[ -n "$line" ]] || continue
    eval "$line" >/dev/null 2>&1 || util::warn "could not revert: $line"
  done < <(tac "$file")
  rm -f "$file"
}

# cluster::port_free PORT [IP] - true when nothing listens on IP:PORT.
cluster::port_free() {
  ! (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}

# cluster::netns_prefix NETNS - prints the command prefix (NUL-separated)
# that runs a command in NETNS; nothing for "".
cluster::netns_prefix() {
  [[ -n "$1" ]] && printf '%s\0' nsenter "--net=/var/run/netns/$1" --
  return 0
}

# cluster::in_netns NETNS COMMAND... - run COMMAND in NETNS ("" = here).
cluster::in_netns() {
  local netns="$1" prefix
  shift
  mapfile -d '' -t prefix < <(cluster::netns_prefix "$netns")
  "${prefix[@]}" "$@"
}

# cluster::spawn NAME NETNS COMMAND... - start a daemon in NETNS, in a
# session of its own (so a Ctrl-C meant for the script does not hit it),
# output appended to $CLUSTER_LOGS/NAME.log, PID remembered. setsid, nsenter
# and env all exec, so the PID is the daemon's own. File descriptor 9, the
# scripts' lock (hack/local-cluster.sh), is not inherited: a daemon holding
# it would block every later command.
cluster::spawn() {
  local name="$1" netns="$2" prefix
  shift 2
  mapfile -d '' -t prefix < <(cluster::netns_prefix "$netns")
  setsid "${prefix[@]}" "$@" </dev/null >>"$CLUSTER_LOGS/$name.log" 2>&1 9>&- &
  cluster::remember "$name" "$!"
  util::log "$name: pid $!${netns:+ (netns $netns)}"
}

# cluster::stop NAME [GRACE_SECONDS] - SIGTERM the remembered NAME, SIGKILL
# after the grace period (default 10 s), forget it.
cluster::stop() {
  cluster::stop_many "${2:-10}" "$1"
}

# cluster::stop_many GRACE_SECONDS NAME... - SIGTERM all of them at once,
# wait until they are gone (SIGKILL after GRACE_SECONDS), forget them.
cluster::stop_many() {
  local grace="$1" name pid file i alive
  shift
  file="$(cluster::pids_file)"
  local -A pids=()
  for name in "$@"; do
    pid="$(cluster::pid_of "$name")"
    [[ -n "$pid" ]] || continue
    pids[$name]="$pid"
    kill -TERM "$pid" 2>/dev/null || true
  done
  for ((i = 0; i < grace * 10; i++)); do
    alive=0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1 && break
    done
    ((alive)) || break
    sleep 0.1
  done
  for name in "${!pids[@]}"; do
    pid="${pids[$name]}"
    if kill -0 "$pid" 2>/dev/null; then
      util::warn "$name (pid $pid) ignored SIGTERM for ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    util::log "stopped $name (pid $pid)"
    awk -v n="$name" '$1 != n' "$file" >"$file.new" && mv "$file.new" "$file"
  done
}

# cluster::stop_all - stop every remembered process, newest first.
cluster::stop_all() {
  local file name
  file="$(cluster::pids_file)"
  [[ -f "$file" ]] || return 0
  while read -r name _; do
    cluster::stop "$name"
  done < <(tac "$file")
  rm -f "$file"
}

# cluster::any_alive - whether a remembered process still runs.
cluster::any_alive() {
  local file name pid
  file="$(cluster::pids_file)"
  [[ -f "$file" ]] || return 1
  while read -r name pid; do
    kill -0 "$pid" 2>/dev/null && return 0
  done <"$file"
  return 1
}

# cluster::check_alive - fail naming the first remembered process that died.
cluster::check_alive() {
  local name pid
  while read -r name pid; do
    kill -0 "$pid" 2>/dev/null || util::die "$name (pid $pid) exited; see $CLUSTER_LOGS/$name.log"
  done <"$(cluster::pids_file)"
}

# cluster::safety_routes_up - `unreachable` routes for the pod and portal
# ranges, so that a routing mistake can never send a packet off this host.
# More specific routes to real nodes win over them.
cluster::safety_routes_up() {
  local range
  for range in "$CLUSTER_POD_RANGE" "$CLUSTER_PORTAL_RANGE"; do
    # (grep -q on a here-string: in a pipe under pipefail, its early exit
    # can fail the producer with SIGPIPE.)
    if ! grep -q "^unreachable $range" <<<"$(ip route show type unreachable)"; then
      ip route add unreachable "$range"
      cluster::undo ip route del unreachable "$range"
      util::log "added route: unreachable $range"
    fi
  done
}

# cluster::portal_local_route NETNS SRC - make the portal range local
# addresses in NETNS (a locally originated connect to a portal IP then
# passes routing and kube-proxy DNATs it in nat OUTPUT), with SRC as the
# source such connections use, a node address that the endpoints can answer
# (the default would be 127.0.0.1, which may not leave the node). The
# `unreachable` safety route stays: the local table is looked up first.
cluster::portal_local_route() {
  local netns="$1" src="$2"
  cluster::in_netns "$netns" ip route replace local "$CLUSTER_PORTAL_RANGE" dev lo table local src "$src"
  [[ -n "$netns" ]] || cluster::undo ip route del local "$CLUSTER_PORTAL_RANGE" dev lo table local
}

# cluster::allow_forward IFACE - let traffic routed or bridged between
# ports of IFACE through a FORWARD chain that drops by default (the host's
# Docker sets FORWARD to DROP): a rule in DOCKER-USER when that chain exists,
# else in FORWARD when its policy is DROP, else nothing.
cluster::allow_forward() {
  local iface="$1" chain=""
  if iptables -w -S DOCKER-USER >/dev/null 2>&1; then
    chain=DOCKER-USER
  elif grep -qx -- '-P FORWARD DROP' <<<"$(iptables -w -S FORWARD 2>/dev/null)"; then
    chain=FORWARD
  fi
  [[ -n "$chain" ]] || return 0
  local rule=(-i "$iface" -o "$iface" -m comment --comment "mini-k8s $iface" -j ACCEPT)
  iptables -w -I "$chain" 1 "${rule[@]}"
  cluster::undo iptables -w -D "$chain" "${rule[@]}"
  util::log "allowed forwarding on $iface in $chain"
}

# cluster::make_bridge NAME CIDR - a bridge with CIDR on it (replaced if a
# crashed run left it), removed at teardown.
cluster::make_bridge() {
  local name="$1" cidr="$2"
  ip link del "$name" 2>/dev/null || true
  ip link add "$name" type bridge
  cluster::undo ip link del "$name"
  ip addr add "$cidr" dev "$name"
  ip link set "$name" up
}

# cluster::wait_http URL SECONDS NAME - polls until URL answers 200.
cluster::wait_http() {
  local url="$1" limit="$2" name="$3" start
  start="$(date +%s)"
  until cluster::curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if (($(date +%s) - start > limit)); then
      util::die "$name did not become ready at $url within ${limit}s (log: $CLUSTER_LOGS/$name.log)"
    fi
    sleep 0.1
  done
}

# cluster::start_etcd PORT [DATA_DIR] - one etcd member on loopback. The data
# directory is kept across restarts (cluster::restart_etcd). The apiserver
# compacts etcd's history (--etcd-compaction-interval), so etcd itself does
# not auto-compact; its space quota is etcd's default made explicit
# (ETCD_QUOTA_BACKEND_BYTES, 2 GiB). docs/operations.md says how to
# defragment and recover from a full quota.
cluster::start_etcd() {
  local port="$1" data="${2:-$CLUSTER_STATE/etcd}" peer=$(($1 + 1))
  cluster::port_free "$port" || util::die "port $port is taken: is another etcd running? (stop it or set ETCD_PORT)"
  mkdir -p "$data"
  cluster::spawn etcd "" etcd --name local --data-dir "$data" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "local=http://127.0.0.1:$peer" \
    --quota-backend-bytes "${ETCD_QUOTA_BACKEND_BYTES:-2147483648}"
}

# cluster::start_apiserver ETCD_URL BIND_IP PORT - waits until it is ready.
cluster::start_apiserver() {
  local etcd="$1" bind="$2" port="$3"
  cluster::port_free "$port" "$bind" || util::die "port $bind:$port is taken: is another apiserver running? (stop it or set API_PORT)"
  local secure=() scheme=http
  if [[ -n "${CLUSTER_PKI:-}" ]]; then
    scheme=https
    secure=(--tls-cert-file "$CLUSTER_PKI/apiserver.crt" --tls-private-key-file "$CLUSTER_PKI/apiserver.key"
      --client-ca-file "$CLUSTER_PKI/ca.crt" --token-auth-file "$CLUSTER_PKI/tokens.csv"
      --kubelet-client-certificate "$CLUSTER_PKI/apiserver-kubelet-client.crt"
      --kubelet-client-key "$CLUSTER_PKI/apiserver-kubelet-client.key"
      --kubelet-certificate-authority "$CLUSTER_PKI/ca.crt")
  fi
  cluster::spawn apiserver "" "$CLUSTER_BIN/apiserver" --etcd-servers "$etcd" \
    --bind-address "$bind" --port "$port" --advertise-address "$bind" \
    --service-cluster-ip-range "$CLUSTER_PORTAL_RANGE" "${secure[@]}" \
    --scheduler-healthz-url "http://127.0.0.1:$SCHEDULER_HEALTHZ_PORT/healthz" \
    --controller-manager-healthz-url "http://127.0.0.1:$CONTROLLER_MANAGER_HEALTHZ_PORT/healthz"
  cluster::wait_http "$scheme://$bind:$port/readyz" 30 apiserver
}

# Where the scheduler and the controller manager serve /healthz, /livez,
# /readyz (loopback, plain HTTP), which the apiserver's componentstatuses
# probes: given explicitly on both sides, so a port taken by someone else
# fails the start instead of reporting another process's health.
SCHEDULER_HEALTHZ_PORT="${SCHEDULER_HEALTHZ_PORT:-10251}"
CONTROLLER_MANAGER_HEALTHZ_PORT="${CONTROLLER_MANAGER_HEALTHZ_PORT:-10252}"

# cluster::start_scheduler MASTER_URL
cluster::start_scheduler() {
  cluster::identity "$1" scheduler system:kube-scheduler
  cluster::spawn scheduler "" "$CLUSTER_BIN/scheduler" --master "$1" "${CLUSTER_IDENTITY[@]}" \
    --healthz-bind-address "127.0.0.1:$SCHEDULER_HEALTHZ_PORT"
}

# cluster::start_controller_manager MASTER_URL [FLAG...]
cluster::start_controller_manager() {
  local master="$1"
  shift
  cluster::identity "$master" controller-manager system:kube-controller-manager
  cluster::spawn controller-manager "" "$CLUSTER_BIN/controller-manager" --master "$master" \
    "${CLUSTER_IDENTITY[@]}" --healthz-bind-address "127.0.0.1:$CONTROLLER_MANAGER_HEALTHZ_PORT" "$@"
}

# cluster::start_dockerd NAME NETNS DIR [DOCKERD_FLAG...] - a dockerd of its
# own: data-root, exec-root, pid file and socket (unix://DIR/docker.sock)
# under DIR, no egress (see CLUSTER_NO_EGRESS_PROXY). Does not wait; see
# cluster::wait_dockerd.
cluster::start_dockerd() {
  local name="$1" netns="$2" dir="$3"
  shift 3
  mkdir -p "$dir"
  cluster::spawn "$name" "$netns" env -u NO_PROXY -u no_proxy \
    HTTP_PROXY="$CLUSTER_NO_EGRESS_PROXY" HTTPS_PROXY="$CLUSTER_NO_EGRESS_PROXY" \
    http_proxy="$CLUSTER_NO_EGRESS_PROXY" https_proxy="$CLUSTER_NO_EGRESS_PROXY" \
    dockerd --data-root "$dir/root" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
    -H "unix://$dir/docker.sock" --log-level warn "$@"
}

# cluster::wait_dockerd NAME DOCKER_HOST [SECONDS] - until the daemon answers.
cluster::wait_dockerd() {
  local name="$1" host="$2" limit="${3:-40}" start
  start="$(date +%s)"
  until docker -H "$host" version --format '{{.Server.Version}}' >/dev/null 2>&1; do
    if (($(date +%s) - start > limit)); then
      util::die "$name did not answer on $host within ${limit}s (log: $CLUSTER_LOGS/$name.log)"
    fi
    local pid
    pid="$(cluster::pid_of "$name")"
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      util::die "$name exited; see $CLUSTER_LOGS/$name.log"
    fi
    sleep 0.2
  done
}

# cluster::load_images DOCKER_HOST - the local images into that daemon
# (built once, then imported from hack/build-images.sh's cache).
cluster::load_images() {
  DOCKER_HOST="$1" bash "$MK8S_ROOT/hack/build-images.sh"
}

# cluster::remove_containers DOCKER_HOST - every container of that daemon
# (only call it on a daemon this cluster started).
cluster::remove_containers() {
  local host="$1" ids
  ids="$(docker -H "$host" ps -aq 2>/dev/null)" || return 0
  [[ -n "$ids" ]] || return 0
  # shellcheck disable=SC2086 # one id per word
  docker -H "$host" rm -f $ids >/dev/null 2>&1 || util::warn "could not remove some containers of $host"
}

# cluster::start_kubelet NAME NETNS MASTER_URL NODE_NAME NODE_IP POD_CIDR DOCKER_HOST ROOT_DIR [FLAG...]
# POD_CIDR may be "" (the node then has no spec.podCIDR and gets no route).
cluster::start_kubelet() {
  local name="$1" netns="$2" master="$3" node="$4" ip="$5" cidr="$6" docker="$7" root="$8"
  shift 8
  local extra=("$@")
  [[ -n "$cidr" ]] && extra+=(--pod-cidr "$cidr")
  mkdir -p "$root"
  # Its own identity (system:node:NODE in system:nodes), and its API over
  # TLS: client certificates of the CA or tokens the apiserver vouches
  # for, each request authorized by the apiserver.
  cluster::identity "$master" "kubelet-$node" "system:node:$node" system:nodes
  if [[ -n "${CLUSTER_PKI:-}" ]]; then
    cluster::serving_cert "kubelet-$node-serving" "$node" "$ip"
    extra+=("${CLUSTER_IDENTITY[@]}" --tls-cert-file "$CLUSTER_PKI/kubelet-$node-serving.crt"
      --tls-private-key-file "$CLUSTER_PKI/kubelet-$node-serving.key" --client-ca-file "$CLUSTER_PKI/ca.crt"
      --authentication-token-webhook --authorization-mode Webhook)
  fi
  cluster::spawn "$name" "$netns" "$CLUSTER_BIN/kubelet" --master "$master" \
    --hostname-override "$node" --node-ip "$ip" --bind-address "$ip" \
    --docker-endpoint "$docker" --root-dir "$root" "${extra[@]}"
}

# cluster::kube_proxy_built - whether the kube-proxy binary exists.
cluster::kube_proxy_built() { [[ -x "$CLUSTER_BIN/kube-proxy" ]]; }

# cluster::start_kube_proxy NAME NETNS MASTER_URL NODE_NAME BIND_IP [FLAG...]
# Skipped (with a warning) while kube-proxy is not built.
cluster::start_kube_proxy() {
  local name="$1" netns="$2" master="$3" node="$4" bind="$5"
  shift 5
  if ! cluster::kube_proxy_built; then
    util::warn "no $CLUSTER_BIN/kube-proxy: services are not forwarded on $node"
    return 0
  fi
  cluster::identity "$master" kube-proxy system:kube-proxy
  cluster::spawn "$name" "$netns" "$CLUSTER_BIN/kube-proxy" --master "$master" "${CLUSTER_IDENTITY[@]}" \
    --hostname-override "$node" --proxy-mode iptables --bind-address "$bind" "$@"
}

# cluster::start_ingress_proxy NAME NETNS MASTER_URL BIND_IP [FLAG...] - the
# ingress proxy on BIND_IP ports 80 and 443 (HTTPS: certificates from the
# Ingresses' spec.tls Secrets, by SNI; it writes BIND_IP into the status of
# the Ingresses it serves), health on loopback port 10254 of NETNS.
# Skipped (with a warning) while ingress-proxy is not built.
cluster::start_ingress_proxy() {
  local name="$1" netns="$2" master="$3" bind="$4"
  shift 4
  if [[ ! -x "$CLUSTER_BIN/ingress-proxy" ]]; then
    util::warn "no $CLUSTER_BIN/ingress-proxy: no HTTP ingress on $bind"
    return 0
  fi
  # Its own identity where the cluster is secure (cluster::identity; the
  # user system:ingress-proxy has a role in the apiserver's bootstrap RBAC).
  local identity=()
  if declare -F cluster::identity >/dev/null; then
    cluster::identity "$master" ingress-proxy system:ingress-proxy
    identity=("${CLUSTER_IDENTITY[@]}")
  fi
  cluster::spawn "$name" "$netns" "$CLUSTER_BIN/ingress-proxy" --master "$master" "${identity[@]}" \
    --bind-address "$bind:80" --https-bind-address "$bind:443" --healthz-bind-address 127.0.0.1:10254 "$@"
}

# cluster::cleanup_kube_proxy NETNS - remove kube-proxy's rules there
# (after a crash; a kube-proxy stopped by SIGTERM removes its own).
cluster::cleanup_kube_proxy() {
  cluster::kube_proxy_built || return 0
  cluster::in_netns "$1" "$CLUSTER_BIN/kube-proxy" --cleanup >/dev/null 2>&1 ||
    util::warn "kube-proxy --cleanup failed${1:+ in $1}"
}

# --- A node and a master, as both the local clusters and the VMs run them ---

# cluster::node_routes NETNS MASTER_IP NODE_IP - a node's routes: the other
# nodes' pods through the master (which routes each pod CIDR to its node,
# see controller-manager --configure-routes), the portal range local with
# NODE_IP as source. In a VM (NETNS "") the portal range also gets the
# `unreachable` safety route (a VM has a default route; a network
# namespace minion has none).
cluster::node_routes() {
  local netns="$1" master="$2" ip="$3"
  cluster::in_netns "$netns" ip route replace "$CLUSTER_POD_RANGE" via "$master"
  cluster::in_netns "$netns" sysctl -qw net.ipv4.ip_forward=1
  cluster::portal_local_route "$netns" "$ip"
  if [[ -z "$netns" ]] && ! grep -q "^unreachable $CLUSTER_PORTAL_RANGE" <<<"$(ip route show type unreachable)"; then
    ip route add unreachable "$CLUSTER_PORTAL_RANGE"
    cluster::undo ip route del unreachable "$CLUSTER_PORTAL_RANGE"
  fi
}

# cluster::start_node_dockerd NAME NETNS DIR POD_CIDR - a node's dockerd:
# its docker0 takes the first address of POD_CIDR (--bip), no iptables or
# masquerading of its own (the master routes pod ranges), quick to stop.
cluster::start_node_dockerd() {
  local name="$1" netns="$2" dir="$3" cidr="$4"
  local base="${cidr%/*}"
  cluster::start_dockerd "$name" "$netns" "$dir" \
    --bip "${base%.*}.$((${base##*.} + 1))/${cidr#*/}" --iptables=false --ip-masq=false --shutdown-timeout 3
}

# cluster::start_node_agents SUFFIX NETNS MASTER_URL NODE_NAME NODE_IP POD_CIDR DOCKER_HOST ROOT_DIR
# A node's kubelet, kube-proxy and ingress proxy (named kubelet$SUFFIX,
# kube-proxy$SUFFIX, ingress-proxy$SUFFIX).
# Heartbeats every 2 s, so a short node grace period on the controller
# manager still tells a stopped node from a slow one.
cluster::start_node_agents() {
  local suffix="$1" netns="$2" master="$3" node="$4" ip="$5" cidr="$6" docker="$7" root="$8"
  cluster::start_kubelet "kubelet$suffix" "$netns" "$master" "$node" "$ip" "$cidr" "$docker" "$root" \
    --heartbeat-period 2 --sync-frequency 5 --cluster-dns "$CLUSTER_DNS_IP" --cluster-domain "$CLUSTER_DOMAIN"
  cluster::start_kube_proxy "kube-proxy$suffix" "$netns" "$master" "$node" "$ip"
  cluster::start_ingress_proxy "ingress-proxy$suffix" "$netns" "$master" "$ip"
}

# cluster::start_master ETCD_PORT BIND_IP API_PORT - etcd and the apiserver.
cluster::start_master() {
  cluster::start_etcd "$1"
  cluster::start_apiserver "http://127.0.0.1:$1" "$2" "$3"
}

# cluster::start_controllers MASTER_URL GRACE EVICTION - the scheduler and
# the controller manager with the route controller and the given node
# grace period and pod eviction timeout.
cluster::start_controllers() {
  local master="$1" grace="$2" eviction="$3"
  cluster::start_scheduler "$master"
  cluster::start_controller_manager "$master" --configure-routes \
    --node-monitor-period 1s --node-monitor-grace-period "$grace" --pod-eviction-timeout "$eviction"
}

# cluster::ready_nodes MASTER_URL - how many nodes report Ready=True.
cluster::ready_nodes() {
  cluster::curl -fsS --max-time 2 "$1/api/v1/nodes" 2>/dev/null |
    jq '[.items[] | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length' 2>/dev/null ||
    echo 0
}

# cluster::wait_nodes_ready MASTER_URL COUNT SECONDS - until COUNT nodes are
# Ready, failing when a started process dies meanwhile.
cluster::wait_nodes_ready() {
  local master="$1" count="$2" limit="$3" start
  start="$(date +%s)"
  until (($(cluster::ready_nodes "$master") >= count)); do
    cluster::check_alive
    if (($(date +%s) - start > limit)); then
      util::die "fewer than $count nodes Ready after ${limit}s (logs: $CLUSTER_LOGS)"
    fi
    sleep 0.2
  done
}

# cluster::write_kubeconfig SERVER PATH - a kubeconfig for ctl and kubectl
# (the admin's, with CLUSTER_PKI).
cluster::write_kubeconfig() {
  # A secure cluster's: the admin's identity (system:masters).
  if [[ -n "${CLUSTER_PKI:-}" ]]; then
    cp "$(cluster::kubeconfig_for "$1" admin admin system:masters)" "$2"
    chmod 0600 "$2"
    return 0
  fi
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

# cluster::unmount_under DIR - lazily unmount what a killed dockerd left
# mounted below DIR (deepest first), so that DIR can be removed.
cluster::unmount_under() {
  local dir="$1" mnt
  [[ -d "$dir" ]] || return 0
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
}

# cluster::remove_state - delete CLUSTER_STATE (after teardown).
cluster::remove_state() {
  cluster::unmount_under "$CLUSTER_STATE"
  rm -rf "$CLUSTER_STATE"
}

# --- The cluster DNS, beside the master ---

# cluster::start_cluster_dns MASTER_URL BIND_IP - cluster-dns answering on
# BIND_IP:53 (UDP and TCP; an address the pods reach, e.g. the bridge's),
# its /readyz on 127.0.0.1:10054; waits until its caches are filled, then
# publishes it as the Service kube-system/kube-dns on CLUSTER_DNS_IP with a
# selectorless Endpoints at BIND_IP (cluster::publish_cluster_dns).
cluster::start_cluster_dns() {
  local master="$1" bind="$2"
  cluster::port_free 10054 127.0.0.1 || util::die "port 127.0.0.1:10054 is taken: is another cluster-dns running?"
  cluster::identity "$master" cluster-dns system:kube-dns
  cluster::spawn cluster-dns "" "$CLUSTER_BIN/cluster-dns" --master "$master" "${CLUSTER_IDENTITY[@]}" \
    --dns-bind-address "$bind:53" --healthz-bind-address 127.0.0.1:10054 --cluster-domain "$CLUSTER_DOMAIN"
  cluster::wait_http "http://127.0.0.1:10054/readyz" 30 cluster-dns
  cluster::publish_cluster_dns "$master" "$bind"
}

# cluster::publish_cluster_dns MASTER_URL DNS_IP - the Service
# kube-system/kube-dns (portal CLUSTER_DNS_IP, ports dns 53/UDP and dns-tcp
# 53/TCP) and its Endpoints at DNS_IP, which the endpoints controller leaves
# alone (the Service has no selector). Idempotent.
cluster::publish_cluster_dns() {
  local master="$1" ip="$2" code
  local service endpoints
  service="$(jq -n --arg ip "$CLUSTER_DNS_IP" '{apiVersion: "v1", kind: "Service",
    metadata: {name: "kube-dns", namespace: "kube-system", labels: {"k8s-app": "kube-dns"}},
    spec: {clusterIP: $ip, ports: [{name: "dns", port: 53, protocol: "UDP"}, {name: "dns-tcp", port: 53, protocol: "TCP"}]}}')"
  endpoints="$(jq -n --arg ip "$ip" '{apiVersion: "v1", kind: "Endpoints",
    metadata: {name: "kube-dns", namespace: "kube-system", labels: {"k8s-app": "kube-dns"}},
    subsets: [{addresses: [{ip: $ip}], ports: [{name: "dns", port: 53, protocol: "UDP"}, {name: "dns-tcp", port: 53, protocol: "TCP"}]}]}')"
  code="$(cluster::curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data "$service" "$master/api/v1/namespaces/kube-system/services")"
  [[ "$code" == 201 || "$code" == 409 ]] || util::die "creating Service kube-system/kube-dns: HTTP $code"
  code="$(cluster::curl -sS -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
    --data "$endpoints" "$master/api/v1/namespaces/kube-system/endpoints/kube-dns")"
  if [[ "$code" == 404 ]]; then
    code="$(cluster::curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
      --data "$endpoints" "$master/api/v1/namespaces/kube-system/endpoints")"
  fi
  [[ "$code" == 200 || "$code" == 201 ]] || util::die "writing Endpoints kube-system/kube-dns: HTTP $code"
}

# --- Identities (issue #13): certificates with `ctl certs` (rcgen) ---

# cluster::ctl ARGS... - the cluster's ctl binary.
cluster::ctl() { "$CLUSTER_BIN/ctl" "$@"; }

# cluster::pki_init MASTER_IP - in CLUSTER_PKI (0700; keys 0600): the CA,
# the apiserver's serving certificate (127.0.0.1, MASTER_IP, the
# `kubernetes` portal IP, kubernetes.default.svc...), its client identity
# toward kubelets (kube-apiserver-kubelet-client, bound to
# system:kubelet-api-admin), the admin's (admin in system:masters) and the
# token file (one token, user `demo`, no roles: what an authenticated
# stranger may do). Kept if present (a restarted master keeps its CA).
cluster::pki_init() {
  local master_ip="$1" portal_ip="${CLUSTER_PORTAL_RANGE%.*}.1"
  mkdir -p "$CLUSTER_PKI"
  chmod 0700 "$CLUSTER_PKI"
  cluster::ctl certs ca "$CLUSTER_PKI"
  [[ -f "$CLUSTER_PKI/apiserver.crt" ]] ||
    cluster::ctl certs issue "$CLUSTER_PKI" apiserver --cn kube-apiserver --serving \
      --ip 127.0.0.1 --ip "$master_ip" --ip "$portal_ip" --dns localhost --dns kubernetes \
      --dns kubernetes.default --dns kubernetes.default.svc \
      --dns "kubernetes.default.svc.${CLUSTER_DOMAIN:-cluster.local}"
  cluster::client_cert apiserver-kubelet-client kube-apiserver-kubelet-client
  cluster::client_cert admin admin system:masters
  if [[ ! -f "$CLUSTER_PKI/tokens.csv" ]]; then
    (
      umask 077
      echo "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n'),demo,demo" >"$CLUSTER_PKI/tokens.csv"
    )
  fi
}

# cluster::client_cert NAME USER [GROUP] - CLUSTER_PKI/NAME.{crt,key}, a
# client certificate of the cluster's CA for USER (its CN) in GROUP (its
# O), made once.
cluster::client_cert() {
  local name="$1" user="$2" group="${3:-}" org=()
  [[ -f "$CLUSTER_PKI/$name.crt" ]] && return 0
  [[ -n "$group" ]] && org=(--org "$group")
  cluster::ctl certs issue "$CLUSTER_PKI" "$name" --cn "$user" "${org[@]}" --client
}

# cluster::serving_cert NAME CN IP - CLUSTER_PKI/NAME.{crt,key}, a serving
# certificate for IP, made once.
cluster::serving_cert() {
  [[ -f "$CLUSTER_PKI/$1.crt" ]] && return 0
  cluster::ctl certs issue "$CLUSTER_PKI" "$1" --cn "$2" --ip "$3" --serving
}

# cluster::kubeconfig_for SERVER NAME USER [GROUP] - prints the path of
# CLUSTER_PKI/NAME.kubeconfig: SERVER, the cluster's CA, and a client
# certificate for USER in GROUP (made once). The one way a component gets
# an identity: a new component calls this (or cluster::identity) and gets
# a ClusterRole bound to USER (apiserver/src/authz/bootstrap.rs).
cluster::kubeconfig_for() {
  local server="$1" name="$2" user="$3" group="${4:-}" file
  cluster::client_cert "$name" "$user" "$group"
  file="$CLUSTER_PKI/$name.kubeconfig"
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: mini-k8s-local
  cluster:
    server: $server
    certificate-authority: $CLUSTER_PKI/ca.crt
users:
- name: $user
  user:
    client-certificate: $CLUSTER_PKI/$name.crt
    client-key: $CLUSTER_PKI/$name.key
contexts:
- name: mini-k8s-local
  context:
    cluster: mini-k8s-local
    user: $user
    namespace: default
current-context: mini-k8s-local
KUBECONFIG
  chmod 0600 "$file"
  echo "$file"
}

# cluster::identity SERVER NAME USER [GROUP] - sets CLUSTER_IDENTITY to the
# flags (`--kubeconfig FILE`) that give a component that identity; empty
# without CLUSTER_PKI.
cluster::identity() {
  CLUSTER_IDENTITY=()
  [[ -n "${CLUSTER_PKI:-}" ]] || return 0
  local file
  file="$(cluster::kubeconfig_for "$@")"
  CLUSTER_IDENTITY=(--kubeconfig "$file")
}

# cluster::curl ARGS... - curl as the admin (CA, client certificate) when
# the cluster is secure, plain curl otherwise.
cluster::curl() {
  if [[ -n "${CLUSTER_PKI:-}" && -f "$CLUSTER_PKI/admin.crt" ]]; then
    curl --cacert "$CLUSTER_PKI/ca.crt" --cert "$CLUSTER_PKI/admin.crt" --key "$CLUSTER_PKI/admin.key" "$@"
  else
    curl "$@"
  fi
}
