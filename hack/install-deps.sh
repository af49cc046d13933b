#!/usr/bin/env bash
# Install what building and testing mini-k8s needs on Debian 12 (apt-get for
# system packages; cargo-nextest from crates.io only if missing). Idempotent:
# with everything present it only checks, in well under 2 s.
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
# shellcheck source=hack/lib/deps.sh
source "$MK8S_ROOT/hack/lib/deps.sh"

deps::install_all
util::log "all dependencies present"
