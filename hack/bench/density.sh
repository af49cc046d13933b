#!/usr/bin/env bash
# The scheduler and controller-manager at scale: hollow nodes (the kubelet
# library with its hollow runtime, in the benchmark's process, as kubemark
# runs them), pods created through replication controllers, and the real
# etcd, apiserver, scheduler and controller-manager as processes. Two runs:
#
#   1. the whole pipeline: RCs created, the replication manager creates the
#      pods, the scheduler binds them as they come, the hollow kubelets run
#      them and report Running (with their events and heartbeats);
#   2. the scheduler on its own, as Kubernetes' scheduler_perf measures it:
#      bare Node objects (no kubelets), every pod created first, then the
#      scheduler started and timed until all are bound.
#
#   hack/bench/density.sh                     # 1000 nodes, 10000 pods
#   NODES=100 PODS=1000 hack/bench/density.sh
#
# Extra arguments go to both `mini-k8s-bench scheduler-density` runs (see
# its --help). Everything listens on loopback; the whole run is bounded.
set -euo pipefail

cd "$(dirname "$0")/../.."

NODES=${NODES:-1000}
PODS=${PODS:-10000}
# Each run is bounded by the benchmark (--timeout) and the whole by this.
LIMIT_SECONDS=${LIMIT_SECONDS:-1800}

cargo build --release --quiet -p mini-k8s-bench -p apiserver -p scheduler -p controller-manager

bench=target/release/mini-k8s-bench
echo "== the whole pipeline: $NODES hollow nodes, $PODS pods through RCs"
timeout "$LIMIT_SECONDS" "$bench" scheduler-density --nodes "$NODES" --pods "$PODS" "$@"
echo
echo "== the scheduler alone: $NODES bare nodes, $PODS pending pods, then the scheduler"
timeout "$LIMIT_SECONDS" "$bench" scheduler-density --nodes "$NODES" --pods "$PODS" \
  --bare-nodes --scheduler-late "$@"
