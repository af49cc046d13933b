#!/usr/bin/env bash
# ingress-proxy throughput: HTTP requests per second through the ingress
# proxy against the same requests straight to the backend pod, same run,
# same client (keep-alive connections, a fixed count of requests). Runs in
# network namespaces the benchmark makes and deletes (a node with a pod
# bridge, a backend pod, a machine outside the node) plus its own etcd and
# in-process apiserver on loopback; no traffic leaves them.
#
#   sudo hack/bench/ingress.sh                      # 50000 requests, 16 connections, 3 rounds
#   sudo hack/bench/ingress.sh --connections 64 --rounds 5
#
# Extra arguments go to the `ingress` benchmark binary (see its --help).
# Needs root (network namespaces), ip, nsenter, and etcd on PATH (or
# MK8S_ETCD_BIN).
set -euo pipefail

cd "$(dirname "$0")/../.."

# The whole run is bounded; each measurement is bounded by --max-seconds too.
LIMIT_SECONDS=${LIMIT_SECONDS:-900}

if [[ "$(id -u)" != 0 ]]; then
  echo "ingress.sh: needs root (network namespaces)" >&2
  exit 2
fi

cargo build --release --quiet -p ingress-proxy -p mini-k8s-bench --bin ingress-proxy --bin ingress

exec timeout --signal=TERM --kill-after=30 "$LIMIT_SECONDS" \
  target/release/ingress --ingress-proxy target/release/ingress-proxy "$@"
