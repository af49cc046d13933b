#!/usr/bin/env bash
# Exec round trip: `kubectl exec p -- true` through the apiserver and the
# kubelet next to `docker exec c true` on the same container, alternating,
# in one run (p50/p99 and their ratio; the goal is p50 within 1.5x).
# Starts a private dockerd (the test harness's), etcd, an in-process
# apiserver and kubelet; removes everything at the end.
#
#   hack/bench/exec.sh                  # 50 of each
#   COUNT=100 hack/bench/exec.sh --out hack/bench/results/exec-$(date +%F).txt
#
# Needs root (the private dockerd), dockerd, docker, etcd, kubectl.
set -euo pipefail

cd "$(dirname "$0")/../.."

COUNT=${COUNT:-50}
LIMIT_SECONDS=${LIMIT_SECONDS:-900}

cargo build --release --quiet -p mini-k8s-bench --bin exec-latency

timeout --signal=TERM --kill-after=60 "$LIMIT_SECONDS" \
    target/release/exec-latency --count "$COUNT" "$@"
