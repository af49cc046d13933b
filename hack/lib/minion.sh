#!/usr/bin/env bash
# Minions as network namespaces on this host, for hack/local-cluster.sh:
# the namespace, its link to the bridge mk8s0, its dockerd, kubelet and
# kube-proxy. The daemons are started by hack/lib/cluster.sh's functions,
# the same ones the Vagrant VMs use (cluster/provision-minion.sh).
# Source after hack/lib/util.sh and hack/lib/cluster.sh; needs CLUSTER_STATE,
# CLUSTER_LOGS, CLUSTER_BIN.

MINION_BRIDGE="mk8s0"
MINION_MASTER_IP="10.245.1.1"
MINION_NETNS_PREFIX="mk8s-minion-"
# The processes a cluster runs; only these are ever killed by
# minion::kill_strays, and only when their command line points into
# CLUSTER_STATE.
MINION_DAEMONS="dockerd containerd containerd-shim containerd-shim-runc-v2 docker-proxy etcd apiserver scheduler controller-manager kubelet kube-proxy ingress-proxy"

# minion::netns K / minion::ip K / minion::pod_cidr K / minion::dir K
minion::netns() { echo "$MINION_NETNS_PREFIX$1"; }
minion::ip() { echo "10.245.1.$(($1 + 1))"; }
minion::pod_cidr() { echo "10.244.$1.0/24"; }
minion::dir() { echo "$CLUSTER_STATE/minion-$1"; }
# minion::docker_host K - the socket of minion K's dockerd.
minion::docker_host() { echo "unix://$(minion::dir "$1")/docker/docker.sock"; }

# minion::host_network - the bridge the minions hang off, forwarding on
# the host, and the firewall hole between minions (host's Docker drops
# forwarded traffic by default).
minion::host_network() {
  cluster::make_bridge "$MINION_BRIDGE" "$MINION_MASTER_IP/24"
  if [[ "$(sysctl -n net.ipv4.ip_forward)" != 1 ]]; then
    sysctl -qw net.ipv4.ip_forward=1
    cluster::undo sysctl -qw net.ipv4.ip_forward=0
  fi
  cluster::allow_forward "$MINION_BRIDGE"
}

# minion::network K - the namespace of minion K: eth0 on the bridge with
# 10.245.1.(K+1), lo, the other minions' pods through the master, the portal
# range local, forwarding on. No default route: a minion reaches nothing
# outside the cluster.
minion::network() {
  local k="$1" ns ip veth
  ns="$(minion::netns "$k")"
  ip="$(minion::ip "$k")"
  veth="mk8s-v$k"
  ip netns add "$ns"
  cluster::undo ip netns del "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$MINION_BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  cluster::node_routes "$ns" "$MINION_MASTER_IP" "$ip"
}

# minion::start_dockerd K - minion K's dockerd in its namespace, pods on
# its docker0 in 10.244.K.0/24.
minion::start_dockerd() {
  cluster::start_node_dockerd "dockerd-minion-$1" "$(minion::netns "$1")" "$(minion::dir "$1")/docker" \
    "$(minion::pod_cidr "$1")"
}

# minion::wait_dockerd K
minion::wait_dockerd() {
  cluster::wait_dockerd "dockerd-minion-$1" "$(minion::docker_host "$1")"
}

# minion::start_agents K MASTER_URL - minion K's kubelet and kube-proxy.
minion::start_agents() {
  local k="$1"
  cluster::start_node_agents "-minion-$k" "$(minion::netns "$k")" "$2" "minion-$k" "$(minion::ip "$k")" \
    "$(minion::pod_cidr "$k")" "$(minion::docker_host "$k")" "$(minion::dir "$k")/kubelet"
}

# minion::stop [--remove] K... - stop minions as if they lost power: their
# kube-proxy and kubelet, every container (SIGKILL) and dockerd. With
# --remove the containers are removed, not only killed. Minions stop in
# parallel.
minion::stop() {
  local remove=0 k host ids names=()
  if [[ "${1:-}" == --remove ]]; then
    remove=1
    shift
  fi
  for k in "$@"; do names+=("ingress-proxy-minion-$k" "kube-proxy-minion-$k" "kubelet-minion-$k"); done
  cluster::stop_many 10 "${names[@]}"
  names=()
  for k in "$@"; do
    names+=("dockerd-minion-$k")
    [[ -n "$(cluster::pid_of "dockerd-minion-$k")" ]] || continue
    host="$(minion::docker_host "$k")"
    if ((remove)); then
      cluster::remove_containers "$host"
    else
      ids="$(docker -H "$host" ps -q 2>/dev/null || true)"
      # shellcheck disable=SC2086 # one id per word
      [[ -z "$ids" ]] || docker -H "$host" kill $ids >/dev/null 2>&1 || true
    fi
  done
  cluster::stop_many 30 "${names[@]}"
}

# minion::kill_strays - processes of a cluster daemon whose command line
# points into CLUSTER_STATE but that no PID file names any more (e.g. the
# containerd of a dockerd that was killed): SIGKILL, by PID.
minion::kill_strays() {
  local file pid comm
  while IFS= read -r file; do
    pid="${file#/proc/}"
    pid="${pid%/cmdline}"
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || continue
    if [[ " $MINION_DAEMONS " == *" $comm "* ]]; then
      util::warn "killing stray $comm (pid $pid) of $CLUSTER_STATE"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done < <(grep -lsaF -- "$CLUSTER_STATE/" /proc/[0-9]*/cmdline 2>/dev/null || true)
}

# minion::leftovers_exist - whether a namespace or link of ours is there.
minion::leftovers_exist() {
  grep -q "^$MINION_NETNS_PREFIX" <<<"$(ip netns list 2>/dev/null)" ||
    ip link show "$MINION_BRIDGE" >/dev/null 2>&1
}

# minion::remove_leftovers - what a run whose state directory was lost may
# have left under our names: stray daemons, namespaces, veths, the bridge,
# the route controller's routes (proto 109), the forwarding rule.
minion::remove_leftovers() {
  local ns link chain
  minion::kill_strays
  for ns in $(ip netns list 2>/dev/null | awk -v p="$MINION_NETNS_PREFIX" 'index($1, p) == 1 {print $1}'); do
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^mk8s-v[0-9]+$'); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$MINION_BRIDGE" 2>/dev/null || true
  ip route flush proto 109 2>/dev/null || true
  for chain in DOCKER-USER FORWARD; do
    while iptables -w -D "$chain" -i "$MINION_BRIDGE" -o "$MINION_BRIDGE" \
      -m comment --comment "mini-k8s $MINION_BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  done
}
