#!/usr/bin/env bash
# Keeps the README's set-up working on a bare machine: runs it in a fresh
# Debian 12 root file system, as a newcomer's machine would be.
#
#   bash hack/verify-fresh.sh          hack/install-deps.sh, then
#                                      cargo build --workspace --bins --locked
#   bash hack/verify-fresh.sh --full   the whole `bash hack/test.sh` in there
#   bash hack/verify-fresh.sh --up     the README's first command,
#                                      `bash hack/local-up-cluster.sh` (a cold
#                                      release build), then pods through it
#
# The root is `debootstrap --variant=minbase bookworm`, built once and cached
# in $FRESH_CACHE (default /var/tmp/mk8s-fresh-base), copied for every run.
# A clone of this repository's HEAD (committed work only, as CI and a
# newcomer see it) is the working directory. Lent from this host, and nothing
# else: the Rust toolchain read-only (rustup home, cargo's bin directory and,
# unless FRESH_BUILD_NEXTEST=1, the machine's cargo-nextest;
# Debian's rustc is too old and rustup cannot be installed from the package
# registries), this network's extra CA certificates
# (/usr/local/share/ca-certificates/*.crt, which reach crates.io and the
# Debian mirror here) and the apt sources file (the mirror to use). Packages
# come from apt, crates from crates.io, both downloaded for real.
#
# With --full and --up, install-deps and `cargo fetch` run first with the
# host's network (downloads; they are what local-up-cluster.sh runs first
# too), then hack/test.sh or local-up-cluster.sh runs in a network namespace
# of its own (own loopback, etcd, dockerd, bridges, iptables; the kernel is
# the host's), so it neither sees nor disturbs clusters on the host.
#
# Everything mounted is unmounted, every process whose root is the fresh root
# is killed (by PID), and the copy is removed at exit (FRESH_KEEP=1 keeps
# the copy). Bounded by FRESH_TIMEOUT seconds (1800; --full 5400).
# Needs root (debootstrap, chroot, mounts); run by a user it goes through sudo.
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
# shellcheck source=hack/lib/deps.sh
source "$MK8S_ROOT/hack/lib/deps.sh"
# shellcheck source=hack/lib/cluster.sh
source "$MK8S_ROOT/hack/lib/cluster.sh"
# shellcheck source=hack/lib/fresh.sh
source "$MK8S_ROOT/hack/lib/fresh.sh"

mode=build
case "${1:-}" in
  --full) mode=full ;;
  --up) mode=up ;;
  "") ;;
  *) util::die "usage: $0 [--full | --up]" ;;
esac
MK8S_ROOT_ENV="FRESH_CACHE FRESH_TIMEOUT FRESH_KEEP FRESH_BUILD_NEXTEST CI" util::reexec_as_root "$0" "$@"

if [[ "$mode" != build ]]; then
  FRESH_TIMEOUT="${FRESH_TIMEOUT:-5400}"
else
  FRESH_TIMEOUT="${FRESH_TIMEOUT:-1800}"
fi
# Where the lent toolchain appears inside the root (read-only).
FRESH_RUSTUP=/opt/rustup
FRESH_CARGO_BIN=/opt/cargo-bin
FRESH_NEXTEST_BIN=/opt/nextest-bin

run_dir=""
# shellcheck disable=SC2317 # called by the trap
verify_fresh::cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -z "$run_dir" ]] || fresh::teardown "$run_dir" "${FRESH_KEEP:-0}" || rc=1
  exit "$rc"
}
trap verify_fresh::cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started="$(date +%s)"
# The root, its packages and a cold workspace build: about 7 GiB at the end.
util::need_free_space /var/tmp 8 "a fresh root (Debian 12, its packages and a cold build)"
fresh::base
run_dir="$(mktemp -d /var/tmp/mk8s-fresh-run.XXXXXX)"
root="$run_dir/root"
copy_start="$(date +%s)"
fresh::new_root "$root"
util::log "fresh root: $root (copied in $(util::seconds_since "$copy_start")s)"
fresh::mount_system "$root"
fresh::bind "${RUSTUP_HOME:-$HOME/.rustup}" "$root$FRESH_RUSTUP" ro
fresh::bind "$(dirname "$(command -v cargo)")" "$root$FRESH_CARGO_BIN" ro
# cargo-nextest comes with this machine's toolchain; lent too, so that the
# check does not spend most of its time (~10-25 min on 2 cores) building
# it. FRESH_BUILD_NEXTEST=1 lends none, and install-deps builds it from
# crates.io, as on a machine without it (done once by hand: it works).
if [[ "${FRESH_BUILD_NEXTEST:-0}" != 1 ]] && nextest="$(command -v cargo-nextest)"; then
  mkdir -p "$root$FRESH_NEXTEST_BIN"
  touch "$root$FRESH_NEXTEST_BIN/cargo-nextest"
  fresh::mount --bind "$nextest" "$root$FRESH_NEXTEST_BIN/cargo-nextest"
  mount -o remount,bind,ro "$root$FRESH_NEXTEST_BIN/cargo-nextest"
fi

git clone -q "$MK8S_ROOT" "$root/root/project"
util::log "cloned $(git -C "$MK8S_ROOT" rev-parse --short HEAD) into the fresh root"

# fresh::run [--netns] SCRIPT - bash -c SCRIPT in the root, in the project,
# with a clean environment; --netns in a new network namespace (loopback
# only). timeout signals its whole process group; what escapes it (a
# daemon in a session of its own) is killed at the teardown.
fresh::run() {
  local pre=()
  if [[ "$1" == --netns ]]; then
    pre=(unshare --net --)
    shift
  fi
  local left=$((FRESH_TIMEOUT - $(util::seconds_since "$started")))
  ((left > 0)) || util::die "out of time (FRESH_TIMEOUT=${FRESH_TIMEOUT}s)"
  local envs
  mapfile -d '' -t envs < <(fresh::chroot_env)
  timeout --kill-after=30 "$left" "${pre[@]}" chroot "$root" /usr/bin/env -i "${envs[@]}" \
    PATH="/root/.cargo/bin:$FRESH_CARGO_BIN:$FRESH_NEXTEST_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    RUSTUP_HOME="$FRESH_RUSTUP" CARGO_HOME=/root/.cargo \
    bash -c "set -euo pipefail; cd /root/project; $1"
}

# --up, inside the root: the README's first command as typed, in the
# background; once it says the node is Ready, the walk-through's pods and
# services through the cluster it made (its own images, hostDir volume,
# service environment), then SIGTERM (a background job ignores SIGINT),
# and it must say it left nothing behind.
# shellcheck disable=SC2016 # expanded inside the root, not here
FRESH_UP_CHECK='
up_log=/root/local-up-cluster.log
s=$(date +%s)
bash hack/local-up-cluster.sh >"$up_log" 2>&1 &
up=$!
until grep -q "^mini-k8s is up" "$up_log"; do
  if ! kill -0 "$up" 2>/dev/null; then
    tail -n 40 "$up_log" >&2
    echo "[fresh] local-up-cluster.sh exited before the node was Ready" >&2
    exit 1
  fi
  sleep 5
done
echo "[fresh] local-up-cluster.sh: node Ready after $(($(date +%s) - s))s: $(grep "^mini-k8s is up" "$up_log")" >&2
export KUBECONFIG=/tmp/mini-k8s-local/kubeconfig PATH="/root/project/target/release:$PATH"
fail() {
  echo "[fresh] $*" >&2
  ctl get pods -o wide >&2 || true
  kill -TERM "$up"
  wait "$up" || true
  exit 1
}
ctl get nodes
ctl create -f examples/walkthrough/db-service.json -f examples/walkthrough/msg-service.json
ctl create -f examples/walkthrough/consumer-pod.json -f examples/walkthrough/db-pod.json -f examples/walkthrough/msg-pod.json
for _ in $(seq 1 60); do
  running=$(ctl get pods -o json | jq "[.items[] | select(.status.phase == \"Running\")] | length")
  [[ "$running" == 3 ]] && break
  sleep 2
done
[[ "$running" == 3 ]] || fail "the walk-through pods did not all reach Running in 120s"
ctl get pods -o wide
# The consumer reaches db through its portal IP, which it has from the
# service environment variables; db logs through its hostDir volume.
for _ in $(seq 1 30); do
  ctl logs consumer 2>/dev/null | grep -q "says: db " && break
  sleep 2
done
ctl logs consumer | grep "says: db " | tail -n 1 || fail "the consumer got no answer from db through its service in 60s"
[[ -s /tmp/mini-k8s-example-logs/db.log ]] || fail "the db pod wrote nothing to its hostDir volume"
kill -TERM "$up"
wait "$up" || true
tail -n 3 "$up_log" >&2
grep -q "nothing left behind" "$up_log" || { echo "[fresh] local-up-cluster.sh did not say it cleaned up" >&2; exit 1; }
'

# Each step says how long it took (the report and CI's note quote these).
# shellcheck disable=SC2016 # expanded inside the root, not here
timed() { printf 's=$(date +%%s); %s; echo "[fresh] %s: $(($(date +%%s) - s))s" >&2' "$1" "$2"; }
rc=0
if [[ "$mode" == build ]]; then
  fresh::run "$(timed 'bash hack/install-deps.sh' install-deps); $(timed 'cargo build --workspace --bins --locked' build)" ||
    rc=$?
else
  fresh::run "$(timed 'bash hack/install-deps.sh' install-deps); $(timed 'cargo fetch --locked' fetch)" || rc=$?
  # Offline from here: the network namespace has only its loopback.
  if ((rc == 0)) && [[ "$mode" == full ]]; then
    # The inner test.sh does not run this check again (no debootstrap in a
    # chroot of a chroot).
    fresh::run --netns "ip link set lo up; export CARGO_NET_OFFLINE=true SKIP_FRESH=1;
      $(timed 'bash hack/test.sh' test.sh)" || rc=$?
  elif ((rc == 0)); then
    fresh::run --netns "ip link set lo up; export CARGO_NET_OFFLINE=true; $FRESH_UP_CHECK" || rc=$?
  fi
fi
if ((rc == 0)); then
  util::log "fresh ($mode): ok in $(util::seconds_since "$started")s"
else
  util::warn "fresh ($mode): FAILED (exit $rc) after $(util::seconds_since "$started")s"
fi
exit "$rc"
