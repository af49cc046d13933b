#!/usr/bin/env bash
# The soak: a day of a 100-node cluster in 30 minutes. Hollow nodes (the
# kubelet library's hollow runtime, in the benchmark's process), the real
# etcd, apiserver, scheduler and controller-manager as processes,
# heartbeats, status reports, resyncs, leader-election renewals, etcd
# compaction and event TTL sped up 48x, and a steady churn of bare pods,
# services and RCs (scaled up and down, created and retired) in three
# namespaces. Every 5 s etcd's revision and DB size and each process's RSS
# and open fds go into a CSV; at the end a PNG of them, the flatness
# verdict (mean of the last third within 10% of the middle third) and the
# read-back of every object whose create was acknowledged.
#
#   hack/bench/soak.sh                                  # 30 min, 100 nodes
#   DURATION=3m hack/bench/soak.sh                      # a smoke run
#   OUT=hack/bench/results/soak-$(date -u +%F).csv hack/bench/soak.sh
#
# Extra arguments go to `mini-k8s-bench soak` (see its --help). Everything
# listens on loopback; the run stops by itself after DURATION and this
# script kills it (SIGTERM, through its orderly stop) if it overruns.
set -euo pipefail

cd "$(dirname "$0")/../.."

DURATION=${DURATION:-30m}
NODES=${NODES:-100}
OUT=${OUT:-soak.csv}
# Start-up, the read-back and the stop on top of DURATION.
SLACK_SECONDS=${SLACK_SECONDS:-600}

seconds() {
  local d=$1
  case "$d" in
    *h) echo $((${d%h} * 3600)) ;;
    *m) echo $((${d%m} * 60)) ;;
    *s) echo "${d%s}" ;;
    *) echo "DURATION must be like 30m, 2h or 90s" >&2; return 1 ;;
  esac
}
limit=$(($(seconds "$DURATION") + SLACK_SECONDS))

cargo build --release --quiet -p mini-k8s-bench -p apiserver -p scheduler -p controller-manager

mkdir -p "$(dirname "$OUT")"
timeout --signal=TERM --kill-after=60 "$limit" \
  target/release/mini-k8s-bench soak --duration "$DURATION" --nodes "$NODES" --out "$OUT" "$@"
