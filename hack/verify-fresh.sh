#!/usr/bin/env bash
# Keeps the README's set-up working on a bare machine: runs it in a fresh
# Debian 12 root file system, as a newcomer's machine would be.
#
#   bash hack/verify-fresh.sh          hack/install-deps.sh, then
#                                      cargo build --workspace --bins --locked
#   bash hack/verify-fresh.sh --full   the whole `bash hack/test.sh` in there
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
# With --full, install-deps and `cargo fetch` run first with the host's
# network (downloads), then hack/test.sh runs in a network namespace of its
# own (own loopback, etcd, dockerd, bridges, iptables; the kernel is the
# host's), so it neither sees nor disturbs clusters on the host.
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
  "") ;;
  *) util::die "usage: $0 [--full]" ;;
esac
MK8S_ROOT_ENV="FRESH_CACHE FRESH_TIMEOUT FRESH_KEEP FRESH_BUILD_NEXTEST CI" util::reexec_as_root "$0" "$@"

if [[ "$mode" == full ]]; then
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

# Each step says how long it took (the report and CI's note quote these).
# shellcheck disable=SC2016 # expanded inside the root, not here
timed() { printf 's=$(date +%%s); %s; echo "[fresh] %s: $(($(date +%%s) - s))s" >&2' "$1" "$2"; }
rc=0
if [[ "$mode" == build ]]; then
  fresh::run "$(timed 'bash hack/install-deps.sh' install-deps); $(timed 'cargo build --workspace --bins --locked' build)" ||
    rc=$?
else
  fresh::run "$(timed 'bash hack/install-deps.sh' install-deps); $(timed 'cargo fetch --locked' fetch)" || rc=$?
  if ((rc == 0)); then
    # Offline from here: the network namespace has only its loopback. The
    # inner test.sh does not run this check again (no debootstrap in a
    # chroot of a chroot).
    fresh::run --netns "ip link set lo up; export CARGO_NET_OFFLINE=true SKIP_FRESH=1;
      $(timed 'bash hack/test.sh' test.sh)" || rc=$?
  fi
fi
if ((rc == 0)); then
  util::log "fresh ($mode): ok in $(util::seconds_since "$started")s"
else
  util::warn "fresh ($mode): FAILED (exit $rc) after $(util::seconds_since "$started")s"
fi
exit "$rc"
