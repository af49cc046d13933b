#!/usr/bin/env bash
# Proves the Vagrant cluster's provisioning without VirtualBox: three fresh
# Debian 12 roots (hack/lib/fresh.sh) stand in for the VMs of the
# Vagrantfile, a master and two minions, and cluster/provision-*.sh run in
# them unchanged, then the 2014 walk-through (examples/walkthrough) runs on
# that cluster with hack/e2e.sh's checks.
#
#   bash hack/verify-vagrant-fresh.sh   (root; not in CI: over 30 min on 2 shared
#                                       cores with a cold /vagrant/target, mostly the
#                                       master's release build)
#
# What stands in for what:
#   VM disk           a copy of the cached debootstrap root, one per VM
#   VM network        a network namespace per VM, its eth1 on a bridge with
#                     the Vagrantfile's address (master 10.245.1.2, minion-K
#                     10.245.1.(K+2)); the bridge lives in a namespace of its
#                     own with 10.245.1.1, VirtualBox's host-only address
#                     ("the host"), so this host's routes and firewall and
#                     other clusters on 10.245.1.0/24 are not touched. The
#                     namespaces are files under the work directory, not
#                     /var/run/netns (whose listing other engineers' leftover
#                     checks watch); daemons enter them with
#                     `nsenter --net=FILE`, as DESIGN.md says.
#   /vagrant          one clone of this repository's HEAD, bound into all
#                     three (the synced folder: the minions run what the
#                     master built into /vagrant/target)
#   vagrant provision the script copied to /tmp/vagrant-shell in the VM and
#                     run there as root with the Vagrantfile's arguments,
#                     master first, then each minion
#   Rust on the VM    this host's toolchain, lent read-only where rustup
#                     puts it (/root/.rustup, /root/.cargo/bin), in the
#                     master only (the minions build nothing)
#   the VMs' internet the packages (deps::ensure_packages, the function the
#                     provisioning calls) and the master's crates
#                     (`cargo fetch --locked`) are downloaded before the
#                     roots enter their namespaces, which reach nothing
#                     outside; the provisioning then finds them there and
#                     builds offline (CARGO_NET_OFFLINE).
# Not proven: what VirtualBox itself does (booting a kernel and systemd,
# the NAT interface, the synced folder's vboxsf), and the rustup install
# that provision-master.sh does when the VM has no cargo.
#
# Before anything starts the host gets `unreachable` routes for the pod and
# portal ranges (cluster::safety_routes_up); at exit every process, mount,
# namespace, the bridge, the routes and the roots are gone. Bounded by
# VAGRANT_FRESH_TIMEOUT seconds (3600). VAGRANT_FRESH_KEEP=1 keeps the roots.
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
# shellcheck source=hack/lib/deps.sh
source "$MK8S_ROOT/hack/lib/deps.sh"
# shellcheck source=hack/lib/cluster.sh
source "$MK8S_ROOT/hack/lib/cluster.sh"
# shellcheck source=hack/lib/fresh.sh
source "$MK8S_ROOT/hack/lib/fresh.sh"

MK8S_ROOT_ENV="FRESH_CACHE VAGRANT_FRESH_TIMEOUT VAGRANT_FRESH_KEEP VAGRANT_FRESH_TARGET" util::reexec_as_root "$0" "$@"
TIMEOUT="${VAGRANT_FRESH_TIMEOUT:-3600}"
# The Vagrantfile's layout (NUM_MINIONS=2).
MINIONS=2
MASTER_IP=10.245.1.2
HOST_IP=10.245.1.1
vf::minion_ip() { echo "10.245.1.$(($1 + 2))"; }
VMS=(master minion-1 minion-2)

started="$(date +%s)"
work=""
# Ours only: never a caller's cluster state from the environment.
CLUSTER_STATE=""
lan_holder=""
# shellcheck disable=SC2317 # called by the trap
vf::cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  util::log "tearing down"
  [[ -z "$lan_holder" ]] || kill -KILL "$lan_holder" 2>/dev/null || true
  if [[ -n "$work" ]]; then
    # The provisioning's own teardown first (containers, kube-proxy rules,
    # daemons), as a re-provision would do it; then whatever is left.
    local vm
    for vm in "${VMS[@]}"; do
      [[ -d "$work/$vm/var/lib/mini-k8s" && -e "$work/netns/$vm" ]] || continue
      timeout 120 nsenter "--net=$work/netns/$vm" chroot "$work/$vm" /bin/bash -c \
        'source /vagrant/cluster/common.sh && vm::stop_previous' >>"$work/teardown.log" 2>&1 ||
        util::warn "$vm: vm::stop_previous failed (see $work/teardown.log)"
    done
    # The netns files are mounts below $work: unmounting them frees the
    # namespaces (no process is left in them), their links and the bridge.
    fresh::teardown "$work" "${VAGRANT_FRESH_KEEP:-0}" || rc=1
  fi
  # The host's safety routes (only those this run added).
  [[ -z "${CLUSTER_STATE:-}" ]] || cluster::run_undo
  [[ -z "${CLUSTER_STATE:-}" ]] || rm -rf "$CLUSTER_STATE"
  util::log "done in $(util::seconds_since "$started")s (exit $rc)"
  exit "$rc"
}
trap vf::cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# vf::left - seconds left of the run's budget (fails when none is left).
vf::left() {
  local left=$((TIMEOUT - $(util::seconds_since "$started")))
  ((left > 0)) || util::die "out of time (VAGRANT_FRESH_TIMEOUT=${TIMEOUT}s)"
  echo "$left"
}

# vf::in_net NAME COMMAND... - COMMAND in namespace NAME (host binaries).
vf::in_net() {
  local name="$1"
  shift
  nsenter "--net=$work/netns/$name" "$@"
}

# vf::in_vm VM [--net] SCRIPT - bash -c SCRIPT as root in VM's root, with
# the host's network (--net: in VM's own namespace), a clean login
# environment, bounded by the run's budget.
vf::in_vm() {
  local vm="$1" pre=() envs
  shift
  if [[ "$1" == --net ]]; then
    pre=(nsenter "--net=$work/netns/$vm")
    shift
  fi
  mapfile -d '' -t envs < <(fresh::chroot_env)
  timeout --kill-after=30 "$(vf::left)" "${pre[@]}" chroot "$work/$vm" /usr/bin/env -i "${envs[@]}" \
    ${VF_EXTRA_ENV:+"$VF_EXTRA_ENV"} bash -c "set -euo pipefail; $1"
}

# vf::netns NAME - a network namespace bound to $work/netns/NAME, lo up.
vf::netns() {
  local file="$work/netns/$1"
  touch "$file"
  unshare "--net=$file" true
  FRESH_MOUNTED+=("$file")
  vf::in_net "$1" ip link set lo up
}

# vf::attach VM IP - VM's eth1 (as VirtualBox names the private network's
# interface) on the bridge, with IP. No default route: a VM here reaches
# nothing outside the cluster.
vf::attach() {
  local vm="$1" ip="$2" holder
  vf::in_net lan ip link add "vf-$vm" type veth peer name eth1
  # `ip link set ... netns` takes a PID or a /var/run/netns name: a process
  # held in the VM's namespace for the move.
  nsenter "--net=$work/netns/$vm" sleep 30 &
  holder=$!
  sleep 0.2
  vf::in_net lan ip link set eth1 netns "$holder"
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  vf::in_net lan ip link set "vf-$vm" master vfbr0 up
  vf::in_net "$vm" ip addr add "$ip/24" dev eth1
  vf::in_net "$vm" ip link set eth1 up
}

# --- The roots -------------------------------------------------------------
util::cargo_path
fresh::base
# The host's own changes (the safety routes) are recorded apart from the
# roots, which go first at the teardown.
CLUSTER_STATE="$(mktemp -d /var/tmp/mk8s-vagrant-fresh-host.XXXXXX)"
export CLUSTER_STATE CLUSTER_LOGS="$CLUSTER_STATE"
work="$(mktemp -d /var/tmp/mk8s-vagrant-fresh.XXXXXX)"
mkdir -p "$work/netns"
cluster::safety_routes_up

git clone -q "$MK8S_ROOT" "$work/vagrant"
# `vagrant up` makes .vagrant/ in the project; the master copies the
# kubeconfig there for the host.
mkdir -p "$work/vagrant/.vagrant"
# The synced folder is the host's checkout, so its target/ outlives the
# VMs: the master's build is cold on the first run only, as on a first
# `vagrant up` (VAGRANT_FRESH_TARGET, default below; remove it for a cold
# build). Everything else is fresh every run.
target_cache="${VAGRANT_FRESH_TARGET:-/var/tmp/mk8s-vagrant-fresh-target}"
mkdir -p "$target_cache" "$work/vagrant/target"
fresh::bind "$target_cache" "$work/vagrant/target"
util::log "cloned $(git -C "$MK8S_ROOT" rev-parse --short HEAD) as /vagrant"
for vm in "${VMS[@]}"; do
  fresh::new_root "$work/$vm"
  fresh::mount_system "$work/$vm"
  fresh::bind "$work/vagrant" "$work/$vm/vagrant" rec
done
fresh::bind "${RUSTUP_HOME:-$HOME/.rustup}" "$work/master/root/.rustup" ro
fresh::bind "$(dirname "$(command -v cargo)")" "$work/master/root/.cargo/bin" ro

# The VMs' internet, before they lose it (see the header): in parallel.
step="$(date +%s)"
prep_pids=()
for vm in "${VMS[@]}"; do
  vf::in_vm "$vm" 'source /vagrant/hack/lib/util.sh; source /vagrant/hack/lib/deps.sh; deps::ensure_packages' \
    >"$work/$vm.packages.log" 2>&1 &
  prep_pids+=($!)
done
for i in "${!prep_pids[@]}"; do
  wait "${prep_pids[i]}" || util::die "${VMS[i]}: installing packages failed: $(tail -n 5 "$work/${VMS[i]}.packages.log")"
done
util::log "packages in 3 roots: $(util::seconds_since "$step")s"
step="$(date +%s)"
vf::in_vm master 'cd /vagrant && cargo fetch --locked' >"$work/master.fetch.log" 2>&1 ||
  util::die "cargo fetch failed: $(tail -n 5 "$work/master.fetch.log")"
util::log "crates fetched: $(util::seconds_since "$step")s"

# --- The private network ---------------------------------------------------
vf::netns lan
vf::in_net lan ip link add vfbr0 type bridge
vf::in_net lan ip addr add "$HOST_IP/24" dev vfbr0
vf::in_net lan ip link set vfbr0 up
# Keep the lan namespace alive even if its file mount were lost early.
nsenter "--net=$work/netns/lan" sleep "$TIMEOUT" &
lan_holder=$!
for vm in "${VMS[@]}"; do vf::netns "$vm"; done
vf::attach master "$MASTER_IP"
for ((k = 1; k <= MINIONS; k++)); do vf::attach "minion-$k" "$(vf::minion_ip "$k")"; done

# --- vagrant up: provisioning, unchanged -----------------------------------
# vf::provision VM SCRIPT ARGS... - what Vagrant's shell provisioner does:
# upload to /tmp/vagrant-shell, run it as root with the arguments.
vf::provision() {
  local vm="$1" script="$2" step
  shift 2
  cp "$work/vagrant/$script" "$work/$vm/tmp/vagrant-shell"
  chmod +x "$work/$vm/tmp/vagrant-shell"
  step="$(date +%s)"
  util::log "$vm: $script $*"
  if ! VF_EXTRA_ENV=CARGO_NET_OFFLINE=true vf::in_vm "$vm" --net "/tmp/vagrant-shell $(printf '%q ' "$@")" \
    >"$work/$vm.provision.log" 2>&1; then
    tail -n 30 "$work/$vm.provision.log" >&2
    util::die "$vm: provisioning failed (above: the end of its log)"
  fi
  util::log "$vm: provisioned in $(util::seconds_since "$step")s"
}
vf::provision master cluster/provision-master.sh "$MASTER_IP" "$MINIONS"
for ((k = 1; k <= MINIONS; k++)); do
  vf::provision "minion-$k" cluster/provision-minion.sh "$MASTER_IP" "$k" "$(vf::minion_ip "$k")"
done

# --- The 2014 walk-through, from the host (10.245.1.1) ---------------------
# With the ctl the master built and the kubeconfig it left for the host, as
# the README's Vagrant section says; the checks are hack/e2e.sh's.
CTL="$work/vagrant/target/release/ctl"
KCFG="$work/vagrant/.vagrant/mini-k8s-kubeconfig"
kc() { vf::in_net lan "$CTL" --kubeconfig "$KCFG" "$@"; }
failures=0
ok() { echo "  ok    $*"; }
fail() {
  echo "  FAIL  $*"
  failures=$((failures + 1))
}
# poll SECONDS TEXT COMMAND... - until COMMAND succeeds (bounded).
poll() {
  local limit="$1" text="$2" start out
  shift 2
  start="$(date +%s)"
  until out="$("$@" 2>&1)"; do
    if (($(util::seconds_since "$start") >= limit)); then
      fail "$text: not within ${limit}s; last attempt said:"
      # shellcheck disable=SC2001 # indents every line
      sed "s/^/        /" <<<"$out"
      return 1
    fi
    sleep 1
  done
  ok "$text ($(util::seconds_since "$start")s)"
}
pods() {
  kc get pods -l "$1" -o json | jq -r '.items[] | select(.metadata.deletionTimestamp == null)
    | "\(.metadata.name) \(.spec.nodeName // "-") \(.status.phase // "-")"'
}
running_exactly() {
  local list
  list="$(pods "$1")" || return 1
  echo "${list:-(none)}"
  [[ "$(grep -c . <<<"$list")" == "$2" ]] && ! grep -qv ' Running$' <<<"$list"
}
portal_ip() {
  local ip
  ip="$(kc get svc "$1" -o json | jq -r '.spec.clusterIP // empty')"
  [[ "$ip" =~ ^10\.0\.0\.[0-9]+$ ]] && echo "$ip"
}
log_has() {
  local log
  log="$(kc logs "$1" 2>&1)" || {
    echo "$log"
    return 1
  }
  tail -n 4 <<<"$log"
  grep -qF -- "$2" <<<"$log"
}
# host_dir_log POD - its hostDir log on the minion (root) it runs on.
host_dir_log() {
  local node
  node="$(kc get pod "$1" -o json | jq -r '.spec.nodeName')"
  tail -n 2 "$work/$node/tmp/mini-k8s-example-logs/$1.log" && grep -q "^$1 " "$work/$node/tmp/mini-k8s-example-logs/$1.log"
}

nodes_ready() {
  kc get nodes -o json | jq -e --argjson n "$MINIONS" \
    '[.items[] | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length == $n'
}

util::log "the walk-through (examples/walkthrough), from $HOST_IP"
dir="$work/vagrant/examples/walkthrough"
poll 60 "$MINIONS nodes Ready" nodes_ready || true
if kc create -f "$dir/db-service.json" -f "$dir/msg-service.json"; then
  ok "created the v1beta1 services db and msg"
else
  fail "created the v1beta1 services db and msg"
fi
if kc create -f "$dir/db-pod.json" -f "$dir/msg-pod.json" -f "$dir/consumer-pod.json"; then
  ok "created the v1beta1 pods db, msg and consumer"
else
  fail "created the v1beta1 pods db, msg and consumer"
fi
if poll 180 "db, msg and consumer are Running" running_exactly 'name in (db,msg,consumer)' 3; then
  pods 'name in (db,msg,consumer)' | sed 's/^/        /'
  db_ip="$(portal_ip db)" || fail "db has a portal IP"
  msg_ip="$(portal_ip msg)" || fail "msg has a portal IP"
  ok "portal IPs: db ${db_ip:-?}, msg ${msg_ip:-?}"
  poll 90 "consumer's log: db answered at ${db_ip:-?}:27017" log_has consumer "db at ${db_ip:-?}:27017 says: db " || true
  poll 90 "consumer's log: msg answered at ${msg_ip:-?}:5672" log_has consumer "msg at ${msg_ip:-?}:5672 says: msg " || true
  for pod in db msg; do
    poll 30 "$pod wrote through its hostDir volume on its minion" host_dir_log "$pod" || true
  done
fi
total="$(util::seconds_since "$started")"
if ((failures == 0)); then
  util::log "vagrant-fresh: walk-through passed; ${total}s so far"
else
  util::warn "vagrant-fresh: $failures check(s) failed; logs in $work (kept only with VAGRANT_FRESH_KEEP=1)"
  exit 1
fi
