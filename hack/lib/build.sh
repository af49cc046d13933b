#!/usr/bin/env bash
# Building the cluster's binaries, for the scripts that start clusters.
# Source after hack/lib/util.sh.

# build::bin_dir PROFILE - where cargo puts PROFILE's binaries (dev → debug).
build::bin_dir() {
  local profile="$1"
  echo "$MK8S_ROOT/target/${profile/#dev/debug}"
}

# build::packages - the crates whose binaries a cluster runs; kube-proxy
# once it is a workspace member.
build::packages() {
  local pkgs=(apiserver ctl scheduler controller-manager kubelet)
  if grep -q '"kube-proxy"' "$MK8S_ROOT/Cargo.toml"; then
    pkgs+=(kube-proxy)
  fi
  # The cluster DNS, run beside the master (cluster::start_cluster_dns).
  pkgs+=(cluster-dns)
  # The ingress proxy on every node (cluster::start_ingress_proxy).
  pkgs+=(ingress-proxy)
  echo "${pkgs[@]}"
}

# build::binaries PROFILE - cargo build --locked of those crates.
build::binaries() {
  local profile="$1" args=() pkg start
  for pkg in $(build::packages); do args+=(-p "$pkg"); done
  util::cargo_path
  start="$(date +%s)"
  util::log "building ($profile): cargo build --locked --profile $profile ${args[*]}"
  (cd "$MK8S_ROOT" && cargo build --locked --profile "$profile" "${args[@]}") ||
    util::die "build failed"
  util::log "built in $(util::seconds_since "$start")s"
}
