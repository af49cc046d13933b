#!/usr/bin/env bash
# Fresh Debian 12 root file systems standing in for a newcomer's machine or
# a VM, for hack/verify-fresh.sh and hack/verify-vagrant-fresh.sh.
#   fresh::base                 the cached `debootstrap --variant=minbase bookworm`
#   fresh::new_root DIR         a copy of it, with what this host lends (below)
#   fresh::mount_system DIR     /proc, /sys, /dev, a tmpfs /tmp
#   fresh::bind SRC DIR [ro|rec]
#   fresh::teardown PREFIX      every process, mount and file under PREFIX gone
# What a root gets from this host, and nothing else: resolv.conf, this
# network's extra CA certificates (/usr/local/share/ca-certificates/*.crt,
# through which crates.io and the Debian mirror are reached here) and the apt
# sources file (the mirror). Callers may lend the Rust toolchain read-only.
# Mounts are remembered in FRESH_MOUNTED. Source after hack/lib/util.sh,
# hack/lib/deps.sh and hack/lib/cluster.sh (cluster::unmount_under).

FRESH_CACHE="${FRESH_CACHE:-/var/tmp/mk8s-fresh-base}"
FRESH_MOUNTED=()

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

# fresh::new_root DIR - a copy of the base at DIR with what is lent.
fresh::new_root() {
  local root="$1" crt
  cp -a "$FRESH_CACHE" "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mkdir -p "$root/usr/local/share/ca-certificates"
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [[ ! -e "$crt" ]] || cp "$crt" "$root/usr/local/share/ca-certificates/"
  done
  # The host's sources replace debootstrap's one-line file (the same mirror,
  # plus updates and security; both would make apt warn of duplicates).
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
    rm -f "$root/etc/apt/sources.list"
  fi
  # A chroot has no init: without this, installing docker.io or etcd-server
  # would start their daemons through invoke-rc.d, in the host's network.
  # (Debian's container images do the same.)
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
}

# fresh::mount ARGS... DIR - mount, remembering DIR for the teardown.
fresh::mount() {
  mount "$@"
  FRESH_MOUNTED+=("${*: -1}")
}

# fresh::bind SRC DIR [ro|rec] - bind SRC at DIR (a full path). `rec` (for
# /dev and /sys, whose submounts dockerd needs) is recursive and a slave,
# so that nothing done below it propagates back to the host.
fresh::bind() {
  local src="$1" dst="$2"
  mkdir -p "$dst"
  if [[ "${3:-}" == rec ]]; then
    fresh::mount --rbind "$src" "$dst"
    mount --make-rslave "$dst"
  else
    fresh::mount --bind "$src" "$dst"
    [[ "${3:-}" != ro ]] || mount -o remount,bind,ro "$dst"
  fi
}

# fresh::mount_system ROOT - /proc, /sys and /dev of the host (dockerd and
# its containers need them; the kernel is the host's anyway), a tmpfs /tmp.
fresh::mount_system() {
  local root="$1"
  # The root is a mount point of its own, as / is on a machine: dockerd's
  # `docker import` remounts / (MS_REC|MS_SLAVE) and fails with EINVAL in
  # a chroot whose / is a plain directory. Private: what is mounted below
  # it stays out of the host's mount table's peers.
  fresh::mount --bind "$root" "$root"
  mount --make-private "$root"
  fresh::mount -t proc proc "$root/proc"
  fresh::bind /sys "$root/sys" rec
  fresh::bind /dev "$root/dev" rec
  fresh::mount -t tmpfs tmpfs "$root/tmp"
}

# fresh::pids_under PREFIX - PIDs of processes whose root directory is
# PREFIX or below it: what ran in a root, daemons and their containers
# (whose root is an overlay below it) included.
fresh::pids_under() {
  local prefix="$1" link pid target
  for link in /proc/[0-9]*/root; do
    target="$(readlink "$link" 2>/dev/null)" || continue
    [[ "$target" == "$prefix" || "$target" == "$prefix/"* ]] || continue
    pid="${link#/proc/}"
    echo "${pid%/root}"
  done
}

# fresh::kill_under PREFIX - SIGTERM, then SIGKILL, every process of
# fresh::pids_under, by PID (bounded: 20 rounds).
fresh::kill_under() {
  local prefix="$1" pids i
  for ((i = 0; i < 20; i++)); do
    mapfile -t pids < <(fresh::pids_under "$prefix")
    ((${#pids[@]})) || return 0
    if ((i == 0)); then
      util::warn "stopping ${#pids[@]} process(es) left under $prefix: ${pids[*]}"
      kill -TERM "${pids[@]}" 2>/dev/null || true
      sleep 3
    else
      kill -KILL "${pids[@]}" 2>/dev/null || true
      sleep 0.5
    fi
  done
  util::warn "processes under $prefix survive: $(fresh::pids_under "$prefix" | tr '\n' ' ')"
  return 1
}

# fresh::teardown PREFIX [KEEP] - kill what runs under PREFIX, unmount
# everything below it (what the run mounted inside, then ours), and remove
# it (unless KEEP is 1). Refuses to remove while a mount remains, and never
# crosses into another file system.
fresh::teardown() {
  local prefix="$1" keep="${2:-0}" i
  [[ -n "$prefix" && "$prefix" != / ]] || return 0
  fresh::kill_under "$prefix" || true
  cluster::unmount_under "$prefix"
  for ((i = ${#FRESH_MOUNTED[@]} - 1; i >= 0; i--)); do
    umount -R -l "${FRESH_MOUNTED[i]}" 2>/dev/null || true
  done
  FRESH_MOUNTED=()
  if grep -qF " $prefix/" /proc/self/mounts; then
    util::warn "mounts remain under $prefix; not removing it:"
    grep -F " $prefix/" /proc/self/mounts >&2 || true
    return 1
  fi
  [[ "$keep" == 1 ]] || rm -rf --one-file-system "$prefix"
}

# fresh::chroot_env - the clean environment of a command in a root:
# root's login environment as a VM or a new machine would give it.
fresh::chroot_env() {
  printf '%s\0' HOME=/root USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8 "CI=${CI:-}" \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
}
