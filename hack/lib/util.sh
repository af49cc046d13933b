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
