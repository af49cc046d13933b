#!/usr/bin/env bash
# Builds the images the kubelet, its tests and the examples use, locally and
# offline (no registry can be reached): `docker import` of root filesystems.
#   mini-k8s/pause:latest    one file, /pause: the workspace's pause/ crate
#                            built as a static binary (exits 0 on SIGTERM)
#   mini-k8s/busybox:latest  Debian's busybox-static with every applet linked
# Talks to the Docker daemon named by DOCKER_HOST (default socket otherwise).
# An image that exists already is kept; --force rebuilds both. The root
# filesystems are cached as tarballs in target/images (rebuilt when their
# source is newer), so loading the images into many daemons (one per minion
# of hack/local-cluster.sh) costs one import each. --tarballs-only builds
# the tarballs and imports nothing (no daemon needed: the Vagrant master
# makes them for the minions, which share target/).
# Needs: docker CLI, rustc, /bin/busybox from busybox-static (install-deps);
# only the docker CLI when the tarballs are fresh.
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
util::cargo_path

force=0
import=1
case "${1:-}" in
  --force) force=1 ;;
  --tarballs-only) import=0 ;;
  "") ;;
  *) util::die "usage: $0 [--force|--tarballs-only]" ;;
esac

work="$(mktemp -d "${TMPDIR:-/tmp}/mk8s-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cache="$MK8S_ROOT/target/images"
mkdir -p "$cache"

# images::fresh TARBALL SOURCE - whether the cached TARBALL is newer than SOURCE.
images::fresh() {
  [[ "$force" == 0 && -s "$1" && "$1" -nt "$2" ]]
}

# images::cache TARBALL - move $work's new TARBALL into the cache atomically
# (several test processes may build at once).
images::cache() {
  mv -f "$work/$1" "$cache/$1.$$" && mv -f "$cache/$1.$$" "$cache/$1"
}

# images::exists NAME - whether the daemon has the image NAME (never, when
# only the tarballs are wanted).
images::exists() {
  [[ "$force" == 0 && "$import" == 1 ]] && docker image inspect "$1" >/dev/null 2>&1
}

if ! images::exists mini-k8s/pause:latest; then
  if ! images::fresh "$cache/pause.tar" "$MK8S_ROOT/pause/src/main.rs"; then
    mkdir -p "$work/pause"
    rustc --edition 2021 -O -C target-feature=+crt-static -C strip=symbols \
      "$MK8S_ROOT/pause/src/main.rs" -o "$work/pause/pause"
    tar -C "$work/pause" -cf "$work/pause.tar" pause
    images::cache pause.tar
  fi
  if [[ "$import" == 1 ]]; then
    docker import --change 'ENTRYPOINT ["/pause"]' "$cache/pause.tar" mini-k8s/pause:latest >/dev/null
    util::log "imported mini-k8s/pause:latest"
  fi
fi

if ! images::exists mini-k8s/busybox:latest; then
  busybox="$(command -v busybox || true)"
  [[ -n "$busybox" ]] || util::die "busybox not found (apt-get install busybox-static)"
  if ldd "$busybox" >/dev/null 2>&1; then
    util::die "$busybox is dynamically linked: install busybox-static"
  fi
fi
if ! images::exists mini-k8s/busybox:latest && ! images::fresh "$cache/busybox.tar" "$busybox"; then
  root="$work/busybox"
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/proc" "$root/sys" "$root/dev"
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -cf "$work/busybox.tar" .
  images::cache busybox.tar
fi
if [[ "$import" == 1 ]] && ! images::exists mini-k8s/busybox:latest; then
  docker import --change 'ENV PATH=/bin' --change 'CMD ["sh"]' \
    "$cache/busybox.tar" mini-k8s/busybox:latest >/dev/null
  util::log "imported mini-k8s/busybox:latest"
fi
