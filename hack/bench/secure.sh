#!/usr/bin/env bash
# Pods created per second through the secure port (TLS, a bearer token or a
# client certificate, RBAC deciding) against the plain loopback port, in
# one run (issue #13: at most 10% slower): its own etcd (the test
# harness's, free loopback ports, a temporary directory) and two in-process
# apiservers on it. Everything stays on loopback.
#
#   hack/bench/secure.sh                         # 2000 pods, 8 clients, 3 rounds
#   PODS=1000 CLIENTS=1 ROUNDS=5 hack/bench/secure.sh
set -euo pipefail

cd "$(dirname "$0")/../.."

PODS=${PODS:-2000}
CLIENTS=${CLIENTS:-8}
ROUNDS=${ROUNDS:-3}
# The whole run is bounded; the benchmark also caps --pods and --rounds.
LIMIT_SECONDS=${LIMIT_SECONDS:-900}

cargo build --release --quiet -p mini-k8s-bench --bin secure-create
exec timeout --signal=TERM --kill-after=30 "$LIMIT_SECONDS" \
    target/release/secure-create --pods "$PODS" --clients "$CLIENTS" --rounds "$ROUNDS" "$@"
