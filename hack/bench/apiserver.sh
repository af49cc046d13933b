#!/usr/bin/env bash
# Pods created per second through the apiserver next to etcd's own put rate
# for values of the same size, in one run: starts its own etcd (the test
# harness's, on free loopback ports, in a temporary directory) and an
# in-process apiserver, measures, prints the table, and stops both.
#
#   hack/bench/apiserver.sh                       # 2000 pods, 1 and 8 clients, 3 rounds
#   PODS=5000 CLIENTS=1,4,8 ROUNDS=5 hack/bench/apiserver.sh --json
#   ETCD_FSYNC_DELAY_US=3000 hack/bench/apiserver.sh   # emulate a slow disk
#
# Extra arguments go to `mini-k8s-bench apiserver-create` (see its --help).
# ETCD_FSYNC_DELAY_US runs etcd under strace, adding that many microseconds
# to each fsync/fdatasync, to show how the ratio behaves when etcd is
# bound by its disk (as on the machines the goal was set on) rather than by
# CPU. Needs strace and setpriv; not for measuring etcd itself.
set -euo pipefail

cd "$(dirname "$0")/../.."

PODS=${PODS:-2000}
CLIENTS=${CLIENTS:-1,8}
ROUNDS=${ROUNDS:-3}
# The whole run is bounded; the benchmark also bounds each measurement
# (--phase-timeout) and caps --pods.
LIMIT_SECONDS=${LIMIT_SECONDS:-1800}

cargo build --release --quiet -p mini-k8s-bench

if [[ -n "${ETCD_FSYNC_DELAY_US:-}" ]]; then
    [[ "$ETCD_FSYNC_DELAY_US" =~ ^[0-9]+$ ]] || {
        echo "ETCD_FSYNC_DELAY_US must be a number of microseconds" >&2
        exit 2
    }
    for tool in strace setpriv; do
        command -v "$tool" >/dev/null || {
            echo "ETCD_FSYNC_DELAY_US needs $tool" >&2
            exit 2
        }
    done
    etcd_bin=${MK8S_ETCD_BIN:-$(command -v etcd)}
    wrapper_dir=$(mktemp -d -t mk8s-bench-XXXXXX)
    trap 'rm -rf "$wrapper_dir"' EXIT
    # etcd gets SIGKILL if strace dies (setpriv), so nothing outlives the run.
    cat >"$wrapper_dir/etcd" <<EOF
#!/bin/sh
exec strace -f -qq --seccomp-bpf -o /dev/null -e trace=fdatasync,fsync \\
    -e inject=fdatasync,fsync:delay_exit=${ETCD_FSYNC_DELAY_US} \\
    setpriv --pdeathsig KILL -- "$etcd_bin" "\$@"
EOF
    chmod +x "$wrapper_dir/etcd"
    export MK8S_ETCD_BIN="$wrapper_dir/etcd"
    echo "etcd runs with ${ETCD_FSYNC_DELAY_US} us added to every fsync" >&2
fi

status=0
timeout --signal=TERM --kill-after=30 "$LIMIT_SECONDS" \
    target/release/mini-k8s-bench apiserver-create \
    --pods "$PODS" --clients "$CLIENTS" --rounds "$ROUNDS" "$@" || status=$?
exit "$status"
