#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. hack/install-deps.sh  what is missing gets installed
#   2. hack/verify.sh        fmt, clippy -D warnings, rustdoc -D warnings
#   3. cargo nextest         every workspace test (profile `ci`, .config/nextest.toml)
#   4. hack/e2e.sh          end-to-end on a local cluster of 3 minions (root; ~1.5 min)
#   5. hack/verify-fresh.sh  the README's set-up (install-deps, workspace build) in a bare
#                            Debian 12 root (root; apt and a cold workspace build; the
#                            machine's cargo-nextest is lent; SKIP_FRESH=1 skips it)
#   6. leftover check        tests must leave no process, container, netns or iptables rule
# Steps 4 and 5 need root: run by a user, they go through sudo.
# Needs no etcd or dockerd running beforehand: tests start their own etcd.
# A failed verify does not stop the tests (both results are useful); the run
# fails at the end if any step failed. Extra arguments go to nextest
# (e.g. `bash hack/test.sh -E 'package(api-types)'`).
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
# shellcheck source=hack/lib/leftovers.sh
source "$MK8S_ROOT/hack/lib/leftovers.sh"
util::cargo_path
cd "$MK8S_ROOT"

run_start="$(date +%s)"
results=()
failed=0

# test::result NAME STATUS - remember a step's outcome for the summary
# (ok, skipped or FAILED; only FAILED fails the run).
test::result() {
  results+=("$1=$2")
  [[ "$2" == ok || "$2" == skipped ]] || failed=1
}

# 0. Room on disk. A cold run fills about 10 GiB with target/ (the debug
# build and its tests) and 7 more with the fresh root of step 5, which
# verify-fresh.sh checks for itself; a warm target/ already holds most of
# the former. A full disk halfway fails as a score of unrelated-looking
# tests (etcd's WAL, apt's archives); say it up front instead.
target_gib=$(($(du -sk "$MK8S_ROOT/target" 2>/dev/null | cut -f1 || echo 0) / 1024 / 1024))
util::need_free_space "$MK8S_ROOT" "$((target_gib >= 9 ? 2 : 11 - target_gib))" \
  "the build and tests (target/ holds ${target_gib} GiB of a cold run's ~10)"

# 1. Dependencies: nothing else can work without them; stop on failure.
step_start="$(date +%s)"
bash hack/install-deps.sh
util::log "install-deps: ok ($(util::seconds_since "$step_start")s)"

# 2. Static checks.
step_start="$(date +%s)"
if bash hack/verify.sh; then
  test::result verify ok
else
  test::result verify FAILED
fi

# Tests get a temp dir of their own (TMPDIR, which tempfile honours), so
# the leftover check can tell this run's processes from anyone else's.
# (The state dir name must not start with the test prefix: tee writes there.)
state_dir="$(mktemp -d "${TMPDIR:-/tmp}/mk8s-teststate.XXXXXX")"
run_tmp="$(mktemp -d "${TMPDIR:-/tmp}/mk8s-test-run.XXXXXX")"
# shellcheck disable=SC2317 # called by the trap
test::cleanup() {
  # Interrupted or done: no test process of this run may survive it.
  if [[ -d "$run_tmp" ]]; then
    leftovers::processes_under "$run_tmp" >"$state_dir/procs.exit" || true
    leftovers::kill_pids "$state_dir/procs.exit"
  fi
  rm -rf "$run_tmp" "$state_dir"
}
trap test::cleanup EXIT
leftovers::snapshot "$state_dir"

# 3. Unit and integration tests. Tests that run our binaries (apiserver,
# ctl...) find them in target/debug, so build those first.
step_start="$(date +%s)"
util::log "building the binaries tests run: cargo build --workspace --bins --locked"
cargo build --workspace --bins --locked
nextest_log="$state_dir/nextest.log"
util::log "nextest: cargo nextest run --workspace --locked --profile ci $*"
if TMPDIR="$run_tmp" cargo nextest run --workspace --locked --profile ci --no-tests=fail "$@" \
  2>&1 | tee "$nextest_log"; then
  test::result nextest ok
else
  test::result nextest FAILED
fi
util::log "nextest: done ($(util::seconds_since "$step_start")s)"

# 4. End-to-end tests.
# >>> E2E: hack/e2e.sh brings up a local cluster of 3 minions from the
# target/debug binaries built above (SKIP_BUILD: a build of only the
# cluster's crates could unify features differently and rebuild), runs the
# scenarios and takes it down.
# Under the run's TMPDIR, so the leftover check below sees any of its
# processes that outlived `down`.
step_start="$(date +%s)"
util::log "e2e: hack/e2e.sh"
if (util::as_root env TMPDIR="$run_tmp" BUILD_PROFILE=dev SKIP_BUILD=1 bash hack/e2e.sh); then
  test::result e2e ok
else
  test::result e2e FAILED
fi
util::log "e2e: done ($(util::seconds_since "$step_start")s)"
# <<< E2E

# 5. A bare machine: the README's set-up in a fresh Debian 12 root (see the
# script). SKIP_FRESH=1 is for quick local runs and for the run inside such
# a root (verify-fresh.sh --full), where it cannot nest.
step_start="$(date +%s)"
if [[ "${SKIP_FRESH:-0}" == 1 ]]; then
  util::log "fresh: skipped (SKIP_FRESH=1)"
  test::result fresh skipped
elif (util::as_root env CI="${CI:-}" bash hack/verify-fresh.sh); then
  test::result fresh ok
else
  test::result fresh FAILED
fi
util::log "fresh: done ($(util::seconds_since "$step_start")s)"

# 6. Leftovers.
if leftovers::check "$state_dir" "$run_tmp"; then
  test::result leftovers ok
else
  test::result leftovers FAILED
fi
left_files="$(find "$run_tmp" -mindepth 1 -maxdepth 1 -printf '    %f\n' 2>/dev/null || true)"
if [[ -n "$left_files" ]]; then
  util::warn "tests left files in their temp dir (removed now):"
  echo "$left_files" >&2
fi

# Summary: nextest's own counts, from its closing "Summary" line.
summary="$(sed 's/\x1b\[[0-9;]*m//g' "$nextest_log" | grep -E '^ *Summary \[' | tail -n1 || true)"
count() { grep -oE "[0-9]+ $1" <<<"$summary" | grep -oE '^[0-9]+' || echo 0; }
passed="$(count passed)"
failed_tests=$(($(count failed) + $(count 'timed out')))
skipped="$(count skipped)"

util::log "summary: ${results[*]} in $(util::seconds_since "$run_start")s"
if [[ -n "$summary" ]]; then
  echo "tests: $passed passed, $failed_tests failed, $skipped skipped"
else
  echo "tests: nextest printed no summary (build failure?)"
fi
exit "$failed"
