#!/usr/bin/env bash
# kube-proxy throughput and added latency, both modes, against a direct
# connection to the same backend in the same run. Everything runs in network
# namespaces the benchmark makes and deletes (a node with a pod bridge, a
# backend pod, a client pod) plus its own etcd and in-process apiserver on
# loopback; no traffic leaves them and the host's iptables are not touched.
#
#   sudo hack/bench/proxy.sh                       # both modes, 2 GiB or 10 s, 20000 round trips, 3 rounds
#   sudo hack/bench/proxy.sh --modes userspace --rounds 5
#
# Extra arguments go to the `proxy` benchmark binary (see its --help).
# Needs root (network namespaces, iptables inside them), ip, nsenter,
# iptables, and etcd on PATH (or MK8S_ETCD_BIN).
set -euo pipefail

cd "$(dirname "$0")/../.."

# The whole run is bounded; each transfer is bounded by --seconds too.
LIMIT_SECONDS=${LIMIT_SECONDS:-900}

if [[ "$(id -u)" != 0 ]]; then
    echo "proxy.sh: needs root (network namespaces and iptables inside them)" >&2
    exit 2
fi

cargo build --release --quiet -p kube-proxy -p mini-k8s-bench --bin kube-proxy --bin proxy

exec timeout --signal=TERM --kill-after=30 "$LIMIT_SECONDS" \
    target/release/proxy --kube-proxy target/release/kube-proxy "$@"
