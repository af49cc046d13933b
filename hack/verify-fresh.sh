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
# else: the Rust toolchain read-only (rustup home and cargo's bin directory;
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

mode=build
case "${1:-}" in
  --full) mode=full ;;
  "") ;;
  *) util::die "usage: $0 [--full]" ;;
esac
MK8S_ROOT_ENV="FRESH_CACHE FRESH_TIMEOUT FRESH_KEEP CI" util::reexec_as_root "$0" "$@"

FRESH_CACHE="${FRESH_CACHE:-/var/tmp/mk8s-fresh-base}"
if [[ "$mode" == full ]]; then
  FRESH_TIMEOUT="${FRESH_TIMEOUT:-5400}"
else
  FRESH_TIMEOUT="${FRESH_TIMEOUT:-1800}"
fi
# Where the lent toolchain appears inside the root (read-only).
FRESH_RUSTUP=/opt/rustup
FRESH_CARGO_BIN=/opt/cargo-bin

# fresh::mirror - the Debian mirror this host's apt uses (deb822 or one-line).
fresh::mirror() {
  local m
  m="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)"
  [[ -n "$m" ]] || m="$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
  echo "${m:-http://deb.debian.org/debian}"
}

# fresh::base - the cached minimal root; built once, under a lock, so that
# two runs at once (two engineers' test.sh) neither build it twice nor see a
# half-built one. A root is complete only once its marker exists.
fresh::base() {
  mkdir -p "$(dirname "$FRESH_CACHE")"
  exec 8>"$FRESH_CACHE.lock"
  flock -w 900 8 || util::die "waited 15 min for $FRESH_CACHE.lock"
  if [[ ! -e "$FRESH_CACHE/.mk8s-complete" ]]; then
    util::have debootstrap || deps::apt_install debootstrap
    local tmp="$FRESH_CACHE.tmp" start
    start="$(date +%s)"
    rm -rf --one-file-system "$FRESH_CACHE" "$tmp"
    util::log "debootstrap --variant=minbase bookworm ($(fresh::mirror)) into $FRESH_CACHE"
    timeout 900 debootstrap --variant=minbase bookworm "$tmp" "$(fresh::mirror)" >"$FRESH_CACHE.log" 2>&1 ||
      util::die "debootstrap failed (log: $FRESH_CACHE.log)"
    touch "$tmp/.mk8s-complete"
    mv "$tmp" "$FRESH_CACHE"
    util::log "debootstrap: $(util::seconds_since "$start")s"
  fi
  exec 8>&-
}

run_dir=""
root=""
# fresh::mount ARGS... DIR - mount, remembering DIR for the teardown.
mounted=()
fresh::mount() {
  mount "$@"
  mounted+=("${*: -1}")
}

# fresh::bind SRC DIR [ro|rec] - bind SRC at DIR inside the root. `rec`
# (for /dev and /sys, whose submounts dockerd needs) is recursive and a
# slave, so that nothing done inside propagates back to the host.
fresh::bind() {
  local src="$1" dst="$root$2"
  mkdir -p "$dst"
  if [[ "${3:-}" == rec ]]; then
    fresh::mount --rbind "$src" "$dst"
    mount --make-rslave "$dst"
  else
    fresh::mount --bind "$src" "$dst"
    [[ "${3:-}" != ro ]] || mount -o remount,bind,ro "$dst"
  fi
}

# shellcheck disable=SC2317 # called by the trap
# fresh::root_pids - PIDs of the processes whose root directory is the
# fresh root (whatever the run started, daemons included).
fresh::root_pids() {
  local link pid
  [[ -n "$root" ]] || return 0
  for link in /proc/[0-9]*/root; do
    [[ "$(readlink "$link" 2>/dev/null)" == "$root" ]] || continue
    pid="${link#/proc/}"
    echo "${pid%/root}"
  done
}

# shellcheck disable=SC2317 # called by the trap
# fresh::kill_root_processes - SIGTERM, then SIGKILL, every process of the
# root, by PID (bounded: 20 rounds).
fresh::kill_root_processes() {
  local pids i
  for ((i = 0; i < 20; i++)); do
    mapfile -t pids < <(fresh::root_pids)
    ((${#pids[@]})) || return 0
    if ((i == 0)); then
      util::warn "stopping ${#pids[@]} process(es) left in the fresh root: ${pids[*]}"
      kill -TERM "${pids[@]}" 2>/dev/null || true
      sleep 3
    else
      kill -KILL "${pids[@]}" 2>/dev/null || true
      sleep 0.5
    fi
  done
  util::warn "processes of the fresh root survive: $(fresh::root_pids | tr '\n' ' ')"
}

# shellcheck disable=SC2317 # called by the trap
fresh::cleanup() {
  local i rc=$?
  trap - EXIT INT TERM
  fresh::kill_root_processes
  # What the run mounted inside (dockerd's overlays, netns files), then ours.
  [[ -z "$root" ]] || cluster::unmount_under "$root"
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R -l "${mounted[i]}" 2>/dev/null || true
  done
  if [[ -n "$root" ]] && grep -qF " $root/" /proc/self/mounts; then
    util::warn "mounts remain under $root; not removing it:"
    grep -F " $root/" /proc/self/mounts >&2 || true
  elif [[ -n "$run_dir" && "${FRESH_KEEP:-0}" != 1 ]]; then
    rm -rf --one-file-system "$run_dir"
  fi
  exit "$rc"
}
trap fresh::cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started="$(date +%s)"
fresh::base
run_dir="$(mktemp -d /var/tmp/mk8s-fresh-run.XXXXXX)"
root="$run_dir/root"
copy_start="$(date +%s)"
cp -a "$FRESH_CACHE" "$root"
util::log "fresh root: $root (copied in $(util::seconds_since "$copy_start")s)"

# What is lent (see the header), and no more.
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/usr/local/share/ca-certificates"
for crt in /usr/local/share/ca-certificates/*.crt; do
  [[ -e "$crt" ]] && cp "$crt" "$root/usr/local/share/ca-certificates/"
done
[[ ! -f /etc/apt/sources.list.d/debian.sources ]] ||
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
# A chroot has no init: without this, installing docker.io or etcd-server
# would start their daemons through invoke-rc.d, in the host's network.
# (debootstrap's own chroots and Debian's container images do the same.)
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"

fresh::mount -t proc proc "$root/proc"
fresh::bind /sys /sys rec
fresh::bind /dev /dev rec
fresh::mount -t tmpfs tmpfs "$root/tmp"
fresh::bind "${RUSTUP_HOME:-$HOME/.rustup}" "$FRESH_RUSTUP" ro
fresh::bind "$(dirname "$(command -v cargo)")" "$FRESH_CARGO_BIN" ro

git clone -q "$MK8S_ROOT" "$root/root/project"
util::log "cloned $(git -C "$MK8S_ROOT" rev-parse --short HEAD) into the fresh root"

# fresh::run [--netns] SCRIPT - bash -c SCRIPT in the root, in the project,
# with a clean environment; --netns in a new network namespace (loopback
# only). In a session of its own, so that timeout stops all of it.
fresh::run() {
  local pre=()
  if [[ "$1" == --netns ]]; then
    pre=(unshare --net --)
    shift
  fi
  local left=$((FRESH_TIMEOUT - $(util::seconds_since "$started")))
  ((left > 0)) || util::die "out of time (FRESH_TIMEOUT=${FRESH_TIMEOUT}s)"
  timeout --kill-after=30 "$left" setsid "${pre[@]}" chroot "$root" /usr/bin/env -i \
    HOME=/root TERM=dumb LANG=C.UTF-8 CI="${CI:-}" USER=root \
    PATH="/root/.cargo/bin:$FRESH_CARGO_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
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
