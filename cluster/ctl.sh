#!/usr/bin/env bash
# ctl against the Vagrant cluster, from inside any of its VMs:
#   vagrant ssh master -c '/vagrant/cluster/ctl.sh get nodes'
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$root/target/release/ctl" --kubeconfig /var/lib/mini-k8s/kubeconfig "$@"
