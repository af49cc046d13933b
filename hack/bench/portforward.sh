#!/usr/bin/env bash
# Port-forward throughput: one download of a large file (64 MiB by default)
# through `kubectl port-forward` (SPDY tunneled in a WebSocket, kubectl
# 1.32's default, and its plain SPDY fallback) next to the same download
# straight from the pod's IP, alternating, in one run (median MiB/s and the
# ratio; the goal is >= 0.5 of direct). Starts a private dockerd (the test
# harness's), etcd, an in-process apiserver and kubelet; removes everything
# at the end.
#
#   hack/bench/portforward.sh
#   MIB=64 ROUNDS=5 hack/bench/portforward.sh --out hack/bench/results/portforward-$(date +%F).txt
#
# Needs root (the private dockerd), dockerd, docker, etcd, kubectl.
set -euo pipefail

cd "$(dirname "$0")/../.."

MIB=${MIB:-64}
ROUNDS=${ROUNDS:-5}
LIMIT_SECONDS=${LIMIT_SECONDS:-900}

cargo build --release --quiet -p mini-k8s-bench --bin portforward-throughput

timeout --signal=TERM --kill-after=60 "$LIMIT_SECONDS" \
    target/release/portforward-throughput --mib "$MIB" --rounds "$ROUNDS" "$@"
