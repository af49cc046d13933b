#!/usr/bin/env bash
# Pod startup latency on one kubelet next to `docker run` of the same image
# on the same daemon, in one run, and the kubelet's resident memory with
# the pods running. Starts a private dockerd (the test harness's: its own
# bridge, --iptables=false, pulls sent to a closed loopback proxy; or the
# daemon named by MK8S_DOCKER_HOST), etcd and an in-process apiserver, and
# the release kubelet as a process; removes everything at the end.
#
#   hack/bench/kubelet.sh                        # 50 pods, one at a time
#   PODS=100 CONCURRENCY=10 hack/bench/kubelet.sh --json
#
# Extra arguments go to `kubelet-startup` (see its --help). Needs root (the
# private dockerd and its bridge), dockerd, docker, ip, etcd.
set -euo pipefail

cd "$(dirname "$0")/../.."

PODS=${PODS:-50}
CONCURRENCY=${CONCURRENCY:-1}
# The whole run is bounded; the benchmark also bounds each pod start
# (--pod-timeout) and caps --pods.
LIMIT_SECONDS=${LIMIT_SECONDS:-900}

cargo build --release --quiet -p kubelet -p mini-k8s-bench --bin kubelet --bin kubelet-startup

status=0
timeout --signal=TERM --kill-after=60 "$LIMIT_SECONDS" \
    target/release/kubelet-startup --pods "$PODS" --concurrency "$CONCURRENCY" \
    --kubelet target/release/kubelet "$@" || status=$?
exit "$status"
