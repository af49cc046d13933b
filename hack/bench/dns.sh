#!/usr/bin/env bash
# cluster-dns queries per second against a stub DNS server answering the
# same names from memory, same run, same clients (ratio printed). Its own
# etcd and in-process apiserver on loopback; cluster-dns and the stub on
# free loopback ports; nothing else is contacted.
#
#   hack/bench/dns.sh                          # 100 services, 4 clients, 5 s, 3 rounds
#   hack/bench/dns.sh --clients 1 --rounds 5
#
# Extra arguments go to the `dns` benchmark binary (see its --help).
# Needs etcd on PATH (or MK8S_ETCD_BIN).
set -euo pipefail

cd "$(dirname "$0")/../.."

# The whole run is bounded; each measurement is bounded by --seconds too.
LIMIT_SECONDS=${LIMIT_SECONDS:-600}

cargo build --release --quiet -p cluster-dns -p mini-k8s-bench --bin cluster-dns --bin dns

exec timeout --signal=TERM --kill-after=30 "$LIMIT_SECONDS" \
    target/release/dns --cluster-dns target/release/cluster-dns "$@"
