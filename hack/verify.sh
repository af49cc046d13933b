#!/usr/bin/env bash
# Static checks: formatting, clippy with warnings as errors, rustdoc with
# warnings as errors, shellcheck of the scripts.
# Runs every check and fails if any failed.
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
util::cargo_path
cd "$MK8S_ROOT"

failed=()

# verify::step NAME COMMAND... - run one check, remember a failure, go on.
verify::step() {
  local name="$1" start
  shift
  start="$(date +%s)"
  util::log "$name: $*"
  if "$@"; then
    util::log "$name: ok ($(util::seconds_since "$start")s)"
  else
    util::warn "$name: FAILED ($(util::seconds_since "$start")s)"
    failed+=("$name")
  fi
}

verify::step fmt cargo fmt --all -- --check
verify::step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
verify::step doc env RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked
# The scripts too (hack/install-deps.sh installs shellcheck).
mapfile -t scripts < <(find hack cluster .ci -type f \( -name '*.sh' -o -path .ci/run \) | sort)
verify::step shellcheck shellcheck -x "${scripts[@]}"
# The Vagrantfile cannot be run here (no VirtualBox); its syntax can be checked.
if util::have ruby; then
  verify::step vagrantfile ruby -c Vagrantfile
else
  util::log "vagrantfile: ruby not installed; syntax check skipped (apt-get install ruby)"
fi

if ((${#failed[@]})); then
  util::die "verify failed: ${failed[*]}"
fi
util::log "verify: all checks passed"
