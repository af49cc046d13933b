#!/usr/bin/env bash
# Shared helpers for hack/ scripts: logging, the repo root, PATH set-up.
# Source it; it defines functions and MK8S_ROOT and changes nothing else.

# The repository root (this file is hack/lib/util.sh).
MK8S_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export MK8S_ROOT

# Name of the running script, for messages.
MK8S_SCRIPT="$(basename "${0:-hack}")"

# util::log MESSAGE... - a progress line on stderr.
util::log() {
  echo "[$MK8S_SCRIPT] $*" >&2
}

# util::warn MESSAGE... - a warning on stderr.
util::warn() {
  echo "[$MK8S_SCRIPT] WARNING: $*" >&2
}

# util::die MESSAGE... - an error on stderr, then exit 1.
util::die() {
  echo "[$MK8S_SCRIPT] ERROR: $*" >&2
  exit 1
}

# util::have COMMAND - whether COMMAND is on PATH.
util::have() {
  command -v "$1" >/dev/null 2>&1
}

# util::cargo_path - put rustup's ~/.cargo/bin on PATH when cargo is not
# found (CI shells may not have sourced ~/.cargo/env).
util::cargo_path() {
  if ! util::have cargo && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    export PATH
  fi
}

# util::seconds_since EPOCH_SECONDS - elapsed whole seconds.
util::seconds_since() {
  echo $(($(date +%s) - $1))
}

# util::need_free_space DIR GIB WHAT - die, saying so, unless the file system
# holding DIR has at least GIB GiB free for WHAT. A run that fills the disk
# halfway fails as dozens of unrelated-looking tests (etcd's WAL, apt's
# archives); one line up front says what is wrong and what would fix it.
util::need_free_space() {
  local dir="$1" need_gib="$2" what="$3" free_kib
  free_kib="$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')"
  [[ "$free_kib" =~ ^[0-9]+$ ]] || util::die "cannot read the free space under $dir (df -Pk $dir)"
  if ((free_kib < need_gib * 1024 * 1024)); then
    util::die "$what needs about ${need_gib} GiB free under $dir; $((free_kib / 1024 / 1024)) GiB is free there. Free some space (old clones' target/ directories are the usual culprit) and run it again"
  fi
}

# util::root_env - `env` arguments that carry the caller's Rust toolchain
# across sudo (which resets PATH and HOME): PATH, RUSTUP_HOME, CARGO_HOME.
util::root_env() {
  printf '%s\0' "PATH=$PATH" "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}"
}

# util::as_root COMMAND... - run COMMAND as root: as it is when root, else
# through sudo with the caller's toolchain (util::root_env). Without sudo
# (a bare Debian has none) it says what to do instead.
util::as_root() {
  if ((EUID == 0)); then
    "$@"
    return
  fi
  util::have sudo || util::die "not root and no sudo: run this as root (su -), or install sudo: $*"
  local envs
  mapfile -d '' -t envs < <(util::root_env)
  sudo env "${envs[@]}" "$@"
}

# util::reexec_as_root SCRIPT ARG... - when not root, run SCRIPT again as
# root through sudo (with the caller's toolchain, and the environment
# variables named in MK8S_ROOT_ENV, e.g. "SKIP_BUILD BUILD_PROFILE") and exit
# with its status; when root, return. Without sudo, exit saying what to do.
util::reexec_as_root() {
  ((EUID != 0)) || return 0
  local script="$1" name envs
  shift
  util::have sudo || util::die "this needs root and there is no sudo: run it from a root shell: bash $script $*"
  mapfile -d '' -t envs < <(util::root_env)
  for name in ${MK8S_ROOT_ENV:-}; do
    [[ -z "${!name+set}" ]] || envs+=("$name=${!name}")
  done
  util::log "not root: running again through sudo"
  exec sudo env "${envs[@]}" bash "$script" "$@"
}
