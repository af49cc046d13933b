#!/usr/bin/env bash
# What mini-k8s needs on a Debian 12 machine, and how to get it.
# Source after hack/lib/util.sh. hack/install-deps.sh calls deps::install_all.

# Debian packages, each with how to tell it is already there:
#   cmd:NAME   a command on PATH (so a non-Debian install also counts)
#   file:PATH  a file exists
#   dpkg       the package itself is installed
# Keep one per line, with why it is needed.
DEPS_PACKAGES=(
  "etcd-server cmd:etcd"                                     # storage; tests start their own
  "docker.io cmd:dockerd"                                    # kubelet runtime (docker-ce counts too)
  "protobuf-compiler cmd:protoc"                             # etcd-client's build script
  "libprotobuf-dev file:/usr/include/google/protobuf/descriptor.proto" # protoc's well-known .proto files (not a recommends-less dependency of protobuf-compiler)
  "busybox-static dpkg"                                      # root fs of the local images
  "iproute2 cmd:ip"                                          # netns, bridge, routes
  "iptables cmd:iptables"                                    # kube-proxy, leftover check
  "curl cmd:curl"                                            # scripts poking the apiserver
  "jq cmd:jq"                                                # scripts reading JSON
  "ca-certificates file:/etc/ssl/certs/ca-certificates.crt"  # TLS roots for apt/cargo
  "build-essential cmd:cc"                                   # linker for cargo
  "pkg-config cmd:pkg-config"                                # native deps of crates
  "procps file:/sbin/sysctl"                                 # sysctl (forwarding), kill (etcd harness); not cmd:kill, a bash builtin
  "util-linux cmd:setpriv"                                   # setpriv (harness), nsenter
  "shellcheck cmd:shellcheck"                                # hack/verify.sh lints hack/
  "ruby cmd:ruby"                                            # hack/verify.sh checks the Vagrantfile's syntax
  "git cmd:git"                                              # hack/verify-fresh.sh clones the repository
  "debootstrap cmd:debootstrap"                              # hack/verify-fresh.sh builds a bare Debian root
  "python3-kubernetes file:/usr/lib/python3/dist-packages/kubernetes/__init__.py" # the Python client, driven by tests as users drive it
)

# Oldest toolchain the workspace accepts (Cargo.toml rust-version).
deps::rust_version() {
  sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$MK8S_ROOT/Cargo.toml" | head -n1
}

# deps::missing_packages - print the packages of DEPS_PACKAGES that are not
# there, one per line. Fast: one dpkg-query for all `dpkg` checks.
deps::missing_packages() {
  local entry pkg check dpkg_pkgs=()
  for entry in "${DEPS_PACKAGES[@]}"; do
    pkg="${entry%% *}"
    check="${entry#* }"
    case "$check" in
      cmd:*) util::have "${check#cmd:}" || echo "$pkg" ;;
      file:*) [[ -e "${check#file:}" ]] || echo "$pkg" ;;
      dpkg) dpkg_pkgs+=("$pkg") ;;
      *) util::die "bad DEPS_PACKAGES entry: $entry" ;;
    esac
  done
  if ((${#dpkg_pkgs[@]})); then
    local installed
    installed="$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${dpkg_pkgs[@]}" 2>/dev/null |
      awk '$2 ~ /^ii/ {print $1}')" || true
    for pkg in "${dpkg_pkgs[@]}"; do
      grep -qx "$pkg" <<<"$installed" || echo "$pkg"
    done
  fi
}

# deps::apt_install PACKAGE... - apt-get update once, then install.
deps::apt_install() {
  util::have apt-get || util::die "apt-get not found (not Debian?): install by hand: $*"
  util::log "installing: $*"
  util::as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    util::die "apt-get update failed"
  util::as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "$@" || util::die "apt-get install failed for: $*"
}

# deps::ensure_packages - install whatever of DEPS_PACKAGES is missing.
deps::ensure_packages() {
  local missing
  mapfile -t missing < <(deps::missing_packages)
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  deps::apt_install "${missing[@]}"
  mapfile -t missing < <(deps::missing_packages)
  if ((${#missing[@]})); then
    util::die "still missing after apt-get install: ${missing[*]}"
  fi
}

# deps::ensure_rust - cargo, rustc >= rust-version, rustfmt and clippy.
# None of these can be installed here (no network but package registries,
# and Debian's rustc is too old): say how to get them instead.
deps::ensure_rust() {
  util::cargo_path
  local need have
  need="$(deps::rust_version)"
  if ! util::have cargo || ! util::have rustc; then
    util::die "cargo not found. Install Rust ${need:-stable} or newer with rustup" \
      "(https://rustup.rs: curl ... | sh, then 'source ~/.cargo/env'); Debian's cargo package is too old"
  fi
  have="$(rustc --version | awk '{print $2}')"
  if [[ -n "$need" && "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]]; then
    util::die "rustc $have is older than the workspace's rust-version $need: 'rustup update stable'"
  fi
  cargo fmt --version >/dev/null 2>&1 ||
    util::die "rustfmt missing: 'rustup component add rustfmt'"
  cargo clippy --version >/dev/null 2>&1 ||
    util::die "clippy missing: 'rustup component add clippy'"
}

# deps::ensure_nextest - cargo-nextest; built from crates.io only if absent
# (it normally is present: building it takes minutes).
deps::ensure_nextest() {
  if util::have cargo-nextest; then
    return 0
  fi
  util::warn "cargo-nextest not found; building it: cargo install --locked cargo-nextest"
  cargo install --locked cargo-nextest || util::die "cargo install cargo-nextest failed"
  util::have cargo-nextest || util::die "cargo-nextest installed but not on PATH ($PATH)"
}

# deps::note_optional - tools some tests use if present; never installed here.
deps::note_optional() {
  if ! util::have kubectl; then
    util::log "note: kubectl not found; the stock-kubectl compatibility test will be skipped" \
      "(it cannot be installed from the package registries reachable here)"
  fi
}

# deps::install_all - everything above; quick when all is there.
deps::install_all() {
  deps::ensure_packages
  deps::ensure_rust
  deps::ensure_nextest
  deps::note_optional
}
