#!/usr/bin/env bash
# End-to-end tests (issue 7) on a local cluster of 3 minions: brings it up
# with `hack/local-cluster.sh up 3`, runs the scenarios below with `ctl`,
# and always takes the cluster down again (`down`, on any exit).
#
#   walkthrough   the 2014 v1beta1 files; the consumer reaches db and msg
#                 through their portal IPs (its log); hostDir gets the log
#   guestbook     3 frontends + backend; answers through the publicIP from
#                 the host and through the portal IP from other minions;
#                 requests spread over every frontend pod
#   resize        `ctl resize rc frontend --replicas=5`, then 2
#   rolling       `ctl rolling-update` to a new image tag while a bounded
#                 loop of requests runs: no request may fail
#   minion-down   a minion stopped (`local-cluster.sh stop-minion`: its
#                 kubelet, kube-proxy, containers and dockerd): its frontend
#                 pods come back on the others after the eviction timeout,
#                 and the service answers throughout, but for the seconds
#                 the cluster needs to notice (DETECTION_SECONDS; those
#                 failures are printed)
#   restart       apiserver and etcd restarted: every object is still
#                 there and the cluster carries on (a new pod runs)
#   ingress       two services behind an Ingress (a.example: / and /b);
#                 `curl -H 'Host: a.example' http://<minion>/` and `.../b`
#                 reach the two services through the ingress proxy on each
#                 of the 3 minions, another host gets a 404 saying why, and
#                 the Ingress's status lists every minion's address
#   dns           from a pod (busybox nslookup through the cluster DNS on
#                 the portal 10.0.0.10), `db` and `db.default.svc.cluster.local`
#                 resolve to db's portal IP, a service created after the pod
#                 resolves too, and the app container's resolv.conf is
#                 Kubernetes' ClusterFirst one (db is the walk-through's, or
#                 one the scenario makes when it runs alone)
#   daemonset     a DaemonSet has exactly one Running pod on each of the 3
#                 minions; a 4th minion (`local-cluster.sh start-minion 4`)
#                 gets one; minion 4 stopped, past the eviction timeout its
#                 pod is still bound to it (not evicted) and none is made
#                 elsewhere (runs last: it leaves minion 4 stopped)
#   health        `kubectl get cs` (stock kubectl, else ctl): etcd-0,
#                 scheduler and controller-manager Healthy; after
#                 `local-cluster.sh stop-scheduler` the scheduler Unhealthy
#                 (the others still Healthy); started again, Healthy; the
#                 scheduler's /readyz?verbose lists its checks
#   secure        the API on 10.245.1.1 only over TLS (plain HTTP on its
#                 port fails, nothing on 8080), 401 over TLS without a
#                 credential, 403 for the token of `demo` (no roles); each
#                 minion's kubelet (10250) answers 401 without a credential
#                 and 403 to `demo`; the admin reads logs through the
#                 apiserver's client identity; minion 1's kubelet identity
#                 lists only its own pods and cannot change minion 2's
#                 node (issue #13)
#
# Each scenario prints what it checked; the run ends with "N passed, M
# failed" and exits 1 if any failed (2 if the cluster did not come up).
# Only addresses the cluster made are ever contacted: 10.245.1.0/24 (the
# apiserver on 10.245.1.1, the minions), 10.0.0.0/24 (portal IPs, from
# inside minions).
#
# Environment:
#   BUILD_PROFILE  dev (default: target/debug, as hack/test.sh builds) or
#                  release; SKIP_BUILD=1 uses what is built (local-cluster.sh)
#   E2E_ONLY       scenarios to run, e.g. "walkthrough guestbook" (later
#                  ones need the guestbook: list it too)
#   E2E_KEEP=1     leave the cluster up at the end, for debugging (then
#                  `hack/local-cluster.sh down` yourself)
#   E2E_REPLACE_CLUSTER=1  take down a local cluster that is already up
#                  (by default e2e refuses: it may be someone else's)
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
# shellcheck source=hack/lib/cluster.sh
source "$MK8S_ROOT/hack/lib/cluster.sh"
util::cargo_path
cd "$MK8S_ROOT"

export BUILD_PROFILE="${BUILD_PROFILE:-dev}"
CTL="$MK8S_ROOT/target/${BUILD_PROFILE/#dev/debug}/ctl"
LOCAL_CLUSTER="$MK8S_ROOT/hack/local-cluster.sh"
# local-cluster.sh's state dir (its default) and the kubeconfig it writes there.
CLUSTER_STATE="${CLUSTER_STATE:-/tmp/mini-k8s-cluster}"
export CLUSTER_STATE
KUBECONFIG="$CLUSTER_STATE/kubeconfig"
MINIONS=3
# Minion K has 10.245.1.(K+1) on the bridge (DESIGN.md); minion 1 carries
# the guestbook's publicIP (examples/guestbook/frontend-service.json).
PUBLIC_IP=10.245.1.2
FRONTEND_PORT=8000
# Where the walk-through's hostDir volume writes (examples/walkthrough).
WALKTHROUGH_LOGS=/tmp/mini-k8s-example-logs
# How long after a minion stops the cluster may still send it requests:
# local-cluster.sh's node monitor grace period (10s) and monitor period
# (1s), then the endpoints change reaching every kube-proxy (5s).
DETECTION_SECONDS=16
# The image tag the rolling update moves the frontend to.
NEW_IMAGE=mini-k8s/busybox:v2

[[ "$(id -u)" == 0 ]] || util::die "run as root: the cluster makes network namespaces and routes"
[[ -x "$LOCAL_CLUSTER" ]] || util::die "$LOCAL_CLUSTER is missing"
for tool in curl jq; do
  util::have "$tool" || util::die "$tool is missing (hack/install-deps.sh)"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/mk8s-e2e.XXXXXX")"
walkthrough_logs_were_there=0
[[ -e "$WALKTHROUGH_LOGS" ]] && walkthrough_logs_were_there=1
loop_pid=""

# ---------------------------------------------------------------------------
# Cluster access. Everything that depends on how hack/local-cluster.sh lays
# the cluster out is here.

# kc ARGS... - ctl against the cluster.
kc() {
  "$CTL" --kubeconfig "$KUBECONFIG" "$@"
}

# e2e::in_minion K COMMAND... - COMMAND (a host binary) inside minion K's
# network namespace.
e2e::in_minion() {
  "$LOCAL_CLUSTER" exec "$@"
}

# e2e::minion_docker K ARGS... - the docker CLI against minion K's dockerd.
e2e::minion_docker() {
  "$LOCAL_CLUSTER" docker "$@"
}

# e2e::node_of_minion K - the Node name of minion K (by its InternalIP).
e2e::node_of_minion() {
  kc get nodes -o json | jq -r --arg ip "10.245.1.$(($1 + 1))" \
    '.items[] | select(any(.status.addresses[]?; .address == $ip)) | .metadata.name'
}

# e2e::minion_registered K - minion K's Node exists (a command e2e::poll
# can repeat: the lookup runs on every attempt).
e2e::minion_registered() {
  test -n "$(e2e::node_of_minion "$1")"
}

# ---------------------------------------------------------------------------
# Reporting and polling.

scenario_failed=0
passed=0
failed=0
summary=()

# e2e::ok TEXT / e2e::fail TEXT - one checked fact. fail also marks the
# scenario failed and returns 1, so `... || return 1` ends the scenario.
e2e::ok() { echo "  ok    $*"; }
e2e::fail() {
  echo "  FAIL  $*"
  scenario_failed=1
  return 1
}

# e2e::check TEXT COMMAND... - run COMMAND once; ok or fail with its output.
e2e::check() {
  local text="$1" out
  shift
  if out="$("$@" 2>&1)"; then
    e2e::ok "$text"
  else
    e2e::fail "$text"
    e2e::indent <<<"$out"
    return 1
  fi
}

# e2e::poll SECONDS TEXT COMMAND... - run COMMAND every second until it
# succeeds; fail with its last output after SECONDS.
e2e::poll() {
  local limit="$1" text="$2" start out
  shift 2
  start="$(date +%s)"
  while true; do
    if out="$("$@" 2>&1)"; then
      e2e::ok "$text ($(util::seconds_since "$start")s)"
      return 0
    fi
    if (($(util::seconds_since "$start") >= limit)); then
      e2e::fail "$text: not within ${limit}s; last attempt said:"
      e2e::indent <<<"$out"
      return 1
    fi
    sleep 1
  done
}

# e2e::indent - stdin, indented, at most 15 lines.
e2e::indent() {
  head -n 15 | sed 's/^/          /'
}

# e2e::scenario NAME - run e2e::scenario_NAME (unless E2E_ONLY leaves it out).
e2e::scenario() {
  local name="$1" start
  if [[ -n "${E2E_ONLY:-}" && " $E2E_ONLY " != *" $name "* ]]; then
    return 0
  fi
  echo
  echo "=== $name"
  start="$(date +%s)"
  scenario_failed=0
  "e2e::scenario_${name//-/_}" || scenario_failed=1
  if ((scenario_failed)); then
    e2e::diagnose
    failed=$((failed + 1))
    summary+=("FAIL $name ($(util::seconds_since "$start")s)")
    echo "--- FAIL $name ($(util::seconds_since "$start")s)"
  else
    passed=$((passed + 1))
    summary+=("pass $name ($(util::seconds_since "$start")s)")
    echo "--- pass $name ($(util::seconds_since "$start")s)"
  fi
}

# e2e::diagnose - what a failed scenario leaves to read, since CI keeps
# only this output: every pod's node, IP, phase and readiness, every
# service's endpoints, and the warnings and errors of the components that
# decide where traffic goes (each bounded).
e2e::diagnose() {
  local log
  echo "  --- state after the failure"
  kc get pods -o json 2>&1 | jq -r '.items[]? | "pod \(.metadata.name) node=\(.spec.nodeName // "-") ip=\(.status.podIP // "-") phase=\(.status.phase // "-") ready=\([.status.conditions[]? | select(.type == "Ready") | .status] | first // "-") deleting=\(.metadata.deletionTimestamp != null)"' 2>&1 | e2e::indent_all 40 || true
  kc get endpoints -o json 2>&1 | jq -r '.items[]? | "endpoints \(.metadata.name): ready=\([.subsets[]?.addresses[]?.ip] | join(",")) not-ready=\([.subsets[]?.notReadyAddresses[]?.ip] | join(","))"' 2>&1 | e2e::indent_all 20 || true
  for log in "$CLUSTER_STATE"/logs/{controller-manager,apiserver,kube-proxy-*,kubelet-*}.log; do
    [[ -f "$log" ]] || continue
    echo "  --- $(basename "$log"): its last warnings and errors"
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -aE ' (WARN|ERROR) ' | tail -n 8 | cut -c1-300 | e2e::indent_all 8 || true
  done
}

# e2e::indent_all N - stdin indented, at most N lines.
e2e::indent_all() {
  head -n "$1" | sed 's/^/          /'
}

# ---------------------------------------------------------------------------
# Facts about the cluster.

# e2e::pods SELECTOR - "NAME NODE PHASE" of the live (not terminating) pods.
e2e::pods() {
  kc get pods -l "$1" -o json | jq -r '.items[]
    | select(.metadata.deletionTimestamp == null)
    | "\(.metadata.name) \(.spec.nodeName // "-") \(.status.phase // "-")"'
}

# e2e::running_exactly SELECTOR N - exactly N live pods match, all Running.
e2e::running_exactly() {
  local list
  list="$(e2e::pods "$1")" || return 1
  echo "want $2 Running, have:"
  echo "${list:-(none)}"
  [[ "$(grep -c . <<<"$list")" == "$2" ]] && ! grep -qv ' Running$' <<<"$list"
}

# e2e::portal_ip SERVICE - its portal IP, which must be in 10.0.0.0/24.
e2e::portal_ip() {
  local ip
  ip="$(kc get svc "$1" -o json | jq -r '.spec.clusterIP // empty')"
  [[ "$ip" =~ ^10\.0\.0\.[0-9]+$ ]] || {
    echo "service $1 has portal IP '$ip', not one of 10.0.0.0/24" >&2
    return 1
  }
  echo "$ip"
}

# e2e::page URL [MINION] - one guestbook request (from minion K's netns if
# given): prints the page; fails unless it is a whole page with the
# backend's answer.
e2e::page() {
  local url="$1" minion="${2:-}" page
  if [[ -n "$minion" ]]; then
    page="$(e2e::in_minion "$minion" curl -sS -f -m 5 "$url" 2>&1)" || {
      echo "$page"
      return 1
    }
  else
    page="$(curl -sS -f -m 5 "$url" 2>&1)" || {
      echo "$page"
      return 1
    }
  fi
  echo "$page"
  grep -q '^guestbook frontend ' <<<"$page" && grep -q '^backend .* entries$' <<<"$page"
}

# e2e::log_has POD TEXT - the pod's log has a line containing TEXT.
e2e::log_has() {
  local log
  log="$(kc logs "$1" 2>&1)" || {
    echo "$log"
    return 1
  }
  tail -n 4 <<<"$log"
  grep -qF -- "$2" <<<"$log"
}

# e2e::frontends_spread URL MINION REQUESTS WANT - REQUESTS requests reach
# WANT different frontend pods.
e2e::frontends_spread() {
  local url="$1" minion="$2" requests="$3" want="$4" hosts="" page i
  for ((i = 0; i < requests; i++)); do
    page="$(e2e::page "$url" "$minion")" || true
    hosts+="$(sed -n 's/^guestbook frontend //p' <<<"$page")"$'\n'
  done
  echo "answers per frontend hostname over $requests requests:"
  grep . <<<"$hosts" | sort | uniq -c
  [[ "$(grep . <<<"$hosts" | sort -u | grep -c .)" -ge "$want" ]]
}

# e2e::start_requests URL NAME - a background loop of requests (at most
# 1500, at most 10 minutes) recording "ok EPOCH HOST" or "fail EPOCH TIME
# WHAT" per request in $work/NAME.log until e2e::stop_requests.
e2e::start_requests() {
  local url="$1" log="$work/$2.log"
  : >"$log"
  rm -f "$work/stop"
  (
    end=$(($(date +%s) + 600))
    for ((i = 0; i < 1500; i++)); do
      [[ -e "$work/stop" || "$(date +%s)" -ge "$end" ]] && break
      sent="$(date +%s.%3N)"
      page="$(curl -sS -m 5 -w '\nHTTP %{http_code}' "$url" 2>&1)" || true
      if grep -qx 'HTTP 200' <<<"$page" && grep -q '^backend .* entries$' <<<"$page"; then
        echo "ok $sent $(sed -n 's/^guestbook frontend //p' <<<"$page")" >>"$log"
      else
        echo "fail $sent $(date -d "@$sent" +%T.%3N) $(grep -v '^$' <<<"$page" | tr '\n' ' ' | cut -c1-200)" >>"$log"
      fi
      sleep 0.2
    done
  ) &
  loop_pid=$!
}

# e2e::stop_requests NAME [TOLERATED_UNTIL] - stop the loop; check that no
# request failed, or none sent after the epoch TOLERATED_UNTIL (a window in
# which failures are expected and only reported).
e2e::stop_requests() {
  local log="$work/$1.log" until="${2:-0}" total failures tolerated hosts
  touch "$work/stop"
  if [[ -n "$loop_pid" ]]; then
    wait "$loop_pid" 2>/dev/null || true
  fi
  loop_pid=""
  total="$(grep -c . "$log" || true)"
  tolerated="$(awk -v u="$until" '$1 == "fail" && $2 < u' "$log" | grep -c . || true)"
  failures="$(awk -v u="$until" '$1 == "fail" && $2 >= u' "$log" | grep -c . || true)"
  hosts="$(awk '$1 == "ok" {print $3}' "$log" | sort -u | grep -c . || true)"
  if ((tolerated > 0)); then
    e2e::ok "$tolerated of $total requests failed while the cluster could not yet know (before $(date -d "@$until" +%T)):"
    awk -v u="$until" '$1 == "fail" && $2 < u {$1 = ""; $2 = ""; print}' "$log" | e2e::indent
  fi
  if ((total > 0 && failures == 0)); then
    if ((tolerated > 0)); then
      e2e::ok "the service answered all $((total - tolerated)) later requests ($hosts frontend hostnames)"
    else
      e2e::ok "the service answered all $total requests ($hosts frontend hostnames)"
    fi
  else
    e2e::fail "the service failed $failures of $total requests:"
    awk -v u="$until" '$1 == "fail" && $2 >= u {$1 = ""; $2 = ""; print}' "$log" | e2e::indent
    return 1
  fi
}

# e2e::frontend_replicas - the replicas the frontend's controller(s) want.
e2e::frontend_replicas() {
  kc get rc -o json | jq '[.items[] | select(.spec.selector.name == "frontend") | .spec.replicas] | add // 0'
}

# ---------------------------------------------------------------------------
# Scenarios.

e2e::scenario_walkthrough() {
  local dir=examples/walkthrough db_ip msg_ip
  e2e::check "created the v1beta1 services db and msg" \
    kc create -f "$dir/db-service.json" -f "$dir/msg-service.json" || return 1
  e2e::check "created the v1beta1 pods db, msg and consumer" \
    kc create -f "$dir/db-pod.json" -f "$dir/msg-pod.json" -f "$dir/consumer-pod.json" || return 1
  e2e::poll 120 "db, msg and consumer are Running" \
    e2e::running_exactly 'name in (db,msg,consumer)' 3 || return 1
  db_ip="$(e2e::portal_ip db)" || e2e::fail "db has a portal IP" || return 1
  msg_ip="$(e2e::portal_ip msg)" || e2e::fail "msg has a portal IP" || return 1
  e2e::ok "portal IPs: db $db_ip, msg $msg_ip"
  e2e::poll 60 "consumer's log: db answered at $db_ip:27017" \
    e2e::log_has consumer "db at $db_ip:27017 says: db " || return 1
  e2e::poll 60 "consumer's log: msg answered at $msg_ip:5672" \
    e2e::log_has consumer "msg at $msg_ip:5672 says: msg " || return 1
  e2e::check "db and msg wrote through their hostDir volume ($WALKTHROUGH_LOGS)" \
    e2e::host_dir_logs || return 1
}

# The pod the dns scenario asks from: every second (600 times at most) one
# line per name, `lookup NAME: <nslookup's output on one line>`, and its
# resolv.conf on one line.
# shellcheck disable=SC2016 # expanded by the pod's shell, not this one
DNS_CLIENT_SCRIPT='i=0; while [ $i -lt 600 ]; do for n in db db.default.svc.cluster.local dns-late; do echo "lookup $n: $(nslookup $n 2>&1 | tr "\n" " ")"; done; echo "resolv: $(tr "\n" " " </etc/resolv.conf)"; i=$((i + 1)); sleep 1; done'

# e2e::dns_answers NAME IP - dns-client's latest lookup of NAME gave IP.
e2e::dns_answers() {
  local line
  line="$(kc logs dns-client 2>&1 | grep -F "lookup $1:" | tail -n 1)"
  echo "${line:-no lookup of $1 in the log of dns-client yet}"
  grep -qE "Address:[[:space:]]+${2//./\\.}([^0-9:]|$)" <<<"$line"
}

# e2e::dns_resolv_conf - dns-client's resolv.conf is the ClusterFirst one.
e2e::dns_resolv_conf() {
  local line
  line="$(kc logs dns-client 2>&1 | grep -F "resolv:" | tail -n 1)"
  echo "$line"
  grep -qF "nameserver 10.0.0.10" <<<"$line" &&
    grep -qF "search default.svc.cluster.local svc.cluster.local cluster.local" <<<"$line" &&
    grep -qF "options ndots:5" <<<"$line"
}

e2e::scenario_dns() {
  local db_ip late_ip made_db=0 dns_ip
  dns_ip="$(kc get svc kube-dns --namespace kube-system -o json | jq -r '.spec.clusterIP // empty')"
  if [[ "$dns_ip" == 10.0.0.10 ]]; then
    e2e::ok "Service kube-system/kube-dns has the portal IP 10.0.0.10"
  else
    e2e::fail "Service kube-system/kube-dns has portal IP '$dns_ip', not 10.0.0.10" || return 1
  fi
  if ! kc get svc db >/dev/null 2>&1; then
    e2e::check "created a service db (the walk-through did not run)" kc create -f - <<<'{"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "db"}, "spec": {"ports": [{"port": 27017}]}}' || return 1
    made_db=1
  fi
  db_ip="$(e2e::portal_ip db)" || e2e::fail "db has a portal IP" || return 1
  e2e::check "created pod dns-client (busybox asking every second)" kc create -f - <<<"$(jq -n --arg script "$DNS_CLIENT_SCRIPT" \
    '{apiVersion: "v1", kind: "Pod", metadata: {name: "dns-client", labels: {name: "dns-client"}},
      spec: {terminationGracePeriodSeconds: 1, containers: [{name: "client", image: "mini-k8s/busybox:latest",
        imagePullPolicy: "IfNotPresent", command: ["/bin/sh", "-c", $script]}]}}')" || return 1
  e2e::poll 120 "dns-client is Running" e2e::running_exactly name=dns-client 1 || return 1
  e2e::poll 60 "nslookup db answers db's portal IP $db_ip" e2e::dns_answers db "$db_ip" || return 1
  e2e::poll 30 "nslookup db.default.svc.cluster.local answers $db_ip" \
    e2e::dns_answers db.default.svc.cluster.local "$db_ip" || return 1
  e2e::check "the app container's resolv.conf: nameserver 10.0.0.10, search default.svc.cluster.local svc.cluster.local cluster.local, ndots:5" \
    e2e::dns_resolv_conf || return 1
  e2e::check "created service dns-late after the pod" kc create -f - <<<'{"apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "dns-late"}, "spec": {"ports": [{"port": 80}]}}' || return 1
  late_ip="$(e2e::portal_ip dns-late)" || e2e::fail "dns-late has a portal IP" || return 1
  e2e::poll 30 "nslookup dns-late from the running pod answers $late_ip" \
    e2e::dns_answers dns-late "$late_ip" || return 1
  kc delete pod dns-client >/dev/null 2>&1 || true
  kc delete svc dns-late >/dev/null 2>&1 || true
  ((made_db == 0)) || kc delete svc db >/dev/null 2>&1 || true
}

# e2e::ds_per_node SELECTOR NODES... - exactly one live pod of SELECTOR on
# each of NODES and none elsewhere; all Running unless a node is marked
# with a trailing `?` (a stopped minion: its pod's phase is not checked).
e2e::ds_per_node() {
  local selector="$1" list node want=()
  shift
  list="$(e2e::pods "$selector")" || return 1
  echo "want one on each of $*; have:"
  echo "${list:-(none)}"
  for node in "$@"; do want+=("${node%\?}"); done
  [[ "$(awk '{print $2}' <<<"$list" | sort | tr '\n' ' ')" == "$(printf '%s\n' "${want[@]}" | sort | tr '\n' ' ')" ]] || return 1
  for node in "$@"; do
    [[ "$node" == *\? ]] && continue
    awk -v n="$node" '$2 == n && $3 == "Running" {found = 1} END {exit !found}' <<<"$list" || return 1
  done
}

# e2e::ds_pod_uid SELECTOR NODE - the uid of SELECTOR's live pod on NODE.
e2e::ds_pod_uid() {
  kc get pods -l "$1" -o json | jq -r --arg n "$2" '.items[]
    | select(.metadata.deletionTimestamp == null and .spec.nodeName == $n) | .metadata.uid'
}

# e2e::cs - `get componentstatuses` as NAME STATUS lines, through the stock
# kubectl when there is one (the "must show" of issue #17), else ctl.
e2e::cs() {
  if command -v kubectl >/dev/null; then
    kubectl --kubeconfig "$KUBECONFIG" get componentstatuses --no-headers 2>/dev/null
  else
    kc get cs --no-headers
  fi | awk '{print $1, $2}' | sort
}

# e2e::cs_is NAME STATUS - componentstatus NAME shows STATUS.
e2e::cs_is() {
  local out
  out="$(e2e::cs)"
  grep -qx "$1 $2" <<<"$out" || {
    echo "$out"
    return 1
  }
}

# e2e::scheduler_checks_listed - the scheduler's verbose readiness names
# its checks, all passing.
e2e::scheduler_checks_listed() {
  local out
  out="$(curl -fsS --max-time 5 "http://127.0.0.1:${SCHEDULER_HEALTHZ_PORT:-10251}/readyz?verbose")"
  if ! grep -qx '\[+\]leader-election ok' <<<"$out" || ! grep -qx 'readyz check passed' <<<"$out"; then
    echo "$out"
    return 1
  fi
}

# e2e::others_healthy - etcd-0 and controller-manager Healthy.
e2e::others_healthy() {
  e2e::cs_is etcd-0 Healthy && e2e::cs_is controller-manager Healthy
}

e2e::scenario_health() {
  local c
  for c in etcd-0 scheduler controller-manager; do
    e2e::poll 30 "get cs: $c Healthy" e2e::cs_is "$c" Healthy || return 1
  done
  e2e::check "scheduler /readyz?verbose lists its checks" e2e::scheduler_checks_listed || return 1
  "$LOCAL_CLUSTER" stop-scheduler >/dev/null
  e2e::poll 30 "scheduler stopped: get cs says Unhealthy" e2e::cs_is scheduler Unhealthy || return 1
  e2e::check "etcd-0 and controller-manager still Healthy" e2e::others_healthy || return 1
  "$LOCAL_CLUSTER" start-scheduler >/dev/null
  e2e::poll 30 "scheduler started again: Healthy" e2e::cs_is scheduler Healthy || return 1
}

e2e::scenario_daemonset() {
  local nodes=() k node4 uid4 settle
  for k in $(seq 1 "$MINIONS"); do nodes+=("$(e2e::node_of_minion "$k")"); done
  e2e::check "created DaemonSet node-agent (apps/v1)" kc create -f - <<<'{"apiVersion": "apps/v1", "kind": "DaemonSet",
    "metadata": {"name": "node-agent"},
    "spec": {"selector": {"matchLabels": {"name": "node-agent"}},
      "template": {"metadata": {"labels": {"name": "node-agent"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "agent",
          "image": "mini-k8s/busybox:latest", "imagePullPolicy": "IfNotPresent",
          "command": ["sh", "-c", "trap \"exit 0\" TERM; sleep 3600 & wait"]}]}}}}' || return 1
  e2e::poll 120 "exactly one node-agent pod Running on each of ${nodes[*]}" \
    e2e::ds_per_node name=node-agent "${nodes[@]}" || return 1
  e2e::check "hack/local-cluster.sh start-minion 4 (a 4th minion)" "$LOCAL_CLUSTER" start-minion 4 || return 1
  e2e::poll 120 "minion 4 registered" e2e::minion_registered 4 || return 1
  node4="$(e2e::node_of_minion 4)"
  e2e::poll 120 "node $node4 is Ready" e2e::node_ready_is "$node4" True || return 1
  e2e::poll 120 "the 4th minion got its node-agent pod, the others kept theirs" \
    e2e::ds_per_node name=node-agent "${nodes[@]}" "$node4" || return 1
  uid4="$(e2e::ds_pod_uid name=node-agent "$node4")"
  e2e::check "hack/local-cluster.sh stop-minion 4" "$LOCAL_CLUSTER" stop-minion 4 || return 1
  e2e::poll 150 "node $node4 is no longer Ready" e2e::node_not_ready "$node4" || return 1
  # The node lifecycle controller deletes an unready node's pods after the
  # eviction timeout (local-cluster.sh: 20s); a DaemonSet pod tolerates the
  # node's state, so it must still be there after it, and nowhere else.
  settle=30
  e2e::ok "waiting ${settle}s, past the eviction timeout"
  sleep "$settle"
  e2e::check "node $node4's pod is still bound to it (uid $uid4), not evicted" \
    test "$(e2e::ds_pod_uid name=node-agent "$node4")" == "$uid4" || return 1
  e2e::check "no node-agent pod was made elsewhere: one on each of ${nodes[*]} and $node4" \
    e2e::ds_per_node name=node-agent "${nodes[@]}" "$node4?" || return 1
  e2e::check "kubectl-style table: ctl get ds node-agent" kc get ds node-agent || return 1
  kc get ds node-agent 2>&1 | e2e::indent
}

# e2e::ingress_page MINION_IP HOST PATH CODE TEXT - from the host, through
# the ingress proxy on MINION_IP port 80, HOST and PATH answer CODE with a
# page containing TEXT.
e2e::ingress_page() {
  local out code page
  out="$(curl -sS -m 5 -o - -w '\n%{http_code}' -H "Host: $2" "http://$1$3" 2>&1)" || {
    echo "$out"
    return 1
  }
  code="${out##*$'\n'}"
  page="${out%$'\n'*}"
  echo "$code $page"
  [[ "$code" == "$4" ]] && grep -qF -- "$5" <<<"$page"
}

# e2e::ingress_addresses WANT - the Ingress web's status lists WANT (its
# load balancer IPs, sorted, space-separated).
e2e::ingress_addresses() {
  local have
  have="$(kc get ingress web -o json | jq -r '[.status.loadBalancer.ingress[]?.ip] | sort | join(" ")')"
  echo "status.loadBalancer.ingress: ${have:-(none)}"
  [[ "$have" == "$1" ]]
}

e2e::scenario_ingress() {
  local name k ip ips=()
  for name in a b; do
    e2e::check "created pod and service ingress-$name (busybox httpd answering 'ingress backend $name')" \
      kc create -f - <<<"$(jq -n --arg name "$name" '{apiVersion: "v1", kind: "List", items: [
        {apiVersion: "v1", kind: "Pod", metadata: {name: "ingress-\($name)", labels: {name: "ingress-\($name)"}},
          spec: {terminationGracePeriodSeconds: 1, containers: [{name: "web", image: "mini-k8s/busybox:latest",
            imagePullPolicy: "IfNotPresent", ports: [{name: "http", containerPort: 80}],
            command: ["/bin/sh", "-c", "mkdir -p /www && echo \"ingress backend \($name) $(hostname)\" >/www/index.html && cp /www/index.html /www/b && trap \"exit 0\" TERM; httpd -f -p 80 -h /www & wait"]}]}},
        {apiVersion: "v1", kind: "Service", metadata: {name: "ingress-\($name)"},
          spec: {selector: {name: "ingress-\($name)"}, ports: [{name: "http", port: 80, targetPort: 80}]}}]}')" || return 1
  done
  e2e::check "created Ingress web: a.example / → ingress-a (port 80), /b → ingress-b (port http)" \
    kc create -f - <<<'{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
      "spec": {"rules": [{"host": "a.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "ingress-a", "port": {"number": 80}}}},
        {"path": "/b", "pathType": "Prefix", "backend": {"service": {"name": "ingress-b", "port": {"name": "http"}}}}]}}]}}' || return 1
  e2e::poll 120 "ingress-a and ingress-b are Running" \
    e2e::running_exactly 'name in (ingress-a,ingress-b)' 2 || return 1
  for k in $(seq 1 "$MINIONS"); do
    ip="10.245.1.$((k + 1))"
    ips+=("$ip")
    e2e::poll 60 "minion $k: curl -H 'Host: a.example' http://$ip/ reaches ingress-a" \
      e2e::ingress_page "$ip" a.example / 200 "ingress backend a" || return 1
    e2e::check "minion $k: curl -H 'Host: a.example' http://$ip/b reaches ingress-b" \
      e2e::ingress_page "$ip" a.example /b 200 "ingress backend b" || return 1
    e2e::check "minion $k: another host is a 404 that says why" \
      e2e::ingress_page "$ip" other.example / 404 "no Ingress rule matches host" || return 1
  done
  e2e::poll 30 "the Ingress's status lists every minion: ${ips[*]}" \
    e2e::ingress_addresses "${ips[*]}" || return 1
  e2e::check "ctl get ing" kc get ing || return 1
  kc get ing 2>&1 | e2e::indent
  kc delete ingress web >/dev/null 2>&1 || true
  kc delete pod ingress-a ingress-b >/dev/null 2>&1 || true
  kc delete svc ingress-a ingress-b >/dev/null 2>&1 || true
}

# e2e::host_dir_logs - db.log and msg.log in the walk-through's hostDir
# (on this host: minions share its filesystem) have their pods' lines.
e2e::host_dir_logs() {
  tail -n 2 "$WALKTHROUGH_LOGS/db.log" "$WALKTHROUGH_LOGS/msg.log" &&
    grep -q '^db ' "$WALKTHROUGH_LOGS/db.log" && grep -q '^msg ' "$WALKTHROUGH_LOGS/msg.log"
}

e2e::scenario_guestbook() {
  local dir=examples/guestbook portal entry minion
  e2e::check "created services backend and frontend (publicIP $PUBLIC_IP)" \
    kc create -f "$dir/backend-service.json" -f "$dir/frontend-service.json" || return 1
  e2e::check "created pod backend and controller frontend (3 replicas)" \
    kc create -f "$dir/backend-pod.json" -f "$dir/frontend-controller.json" || return 1
  e2e::poll 120 "backend is Running" e2e::running_exactly name=backend 1 || return 1
  e2e::poll 120 "3 frontend pods are Running" e2e::running_exactly name=frontend 3 || return 1
  e2e::pods name=frontend | e2e::indent
  portal="$(e2e::portal_ip frontend)" || e2e::fail "frontend has a portal IP" || return 1
  e2e::poll 60 "answers through the publicIP $PUBLIC_IP:$FRONTEND_PORT from the host" \
    e2e::page "http://$PUBLIC_IP:$FRONTEND_PORT/" || return 1
  entry="e2e-$RANDOM"
  e2e::check "stores an entry through the publicIP (?msg=$entry)" \
    e2e::page_has "http://$PUBLIC_IP:$FRONTEND_PORT/?msg=$entry" "" "$entry" || return 1
  for minion in 2 3; do
    e2e::poll 60 "answers through the portal IP $portal:$FRONTEND_PORT from minion $minion, with the entry" \
      e2e::page_has "http://$portal:$FRONTEND_PORT/" "$minion" "$entry" || return 1
  done
  e2e::check "30 requests through the portal IP reach all 3 frontend pods" \
    e2e::frontends_spread "http://$portal:$FRONTEND_PORT/" 2 30 3 || return 1
}

# e2e::page_has URL MINION TEXT - a whole page (from MINION, or the host if
# empty) that contains TEXT.
e2e::page_has() {
  local page
  page="$(e2e::page "$1" "$2")" || {
    echo "$page"
    return 1
  }
  echo "$page"
  grep -qF -- "$3" <<<"$page"
}

e2e::scenario_resize() {
  e2e::check "ctl resize rc frontend --replicas=5" kc resize rc frontend --replicas=5 || return 1
  e2e::poll 120 "5 frontend pods Running" e2e::running_exactly name=frontend 5 || return 1
  e2e::check "ctl resize rc frontend --replicas=2" kc resize rc frontend --replicas=2 || return 1
  e2e::poll 120 "2 frontend pods Running, the others gone or terminating" \
    e2e::running_exactly name=frontend 2 || return 1
  e2e::poll 30 "the controller reports 2 replicas" e2e::rc_replicas frontend 2 || return 1
  e2e::poll 90 "the 3 pods scaled away are gone (their kubelets finished the deletion)" \
    e2e::pod_count name=frontend 2 || return 1
  e2e::poll 30 "the service still answers through the publicIP" \
    e2e::page "http://$PUBLIC_IP:$FRONTEND_PORT/" || return 1
}

# e2e::pod_count SELECTOR N - N pods match, terminating ones included.
e2e::pod_count() {
  local names
  names="$(kc get pods -l "$1" -o name)" || return 1
  echo "${names:-(none)}"
  [[ "$(grep -c . <<<"$names")" == "$2" ]]
}

# e2e::rc_replicas RC N - status.replicas is N.
e2e::rc_replicas() {
  local have
  have="$(kc get rc "$1" -o json | jq -r '.status.replicas // 0')" || return 1
  echo "status.replicas: $have"
  [[ "$have" == "$2" ]]
}

# e2e::images_are SELECTOR IMAGE - every live matching pod runs IMAGE.
e2e::images_are() {
  local images
  images="$(kc get pods -l "$1" -o json | jq -r '.items[]
    | select(.metadata.deletionTimestamp == null)
    | "\(.metadata.name) \(.spec.containers[].image)"')" || return 1
  echo "$images"
  [[ -n "$images" ]] && ! awk '{print $2}' <<<"$images" | grep -qvxF -- "$2"
}

e2e::scenario_rolling() {
  local minion out rc=0
  for ((minion = 1; minion <= MINIONS; minion++)); do
    e2e::check "minion $minion has $NEW_IMAGE (tagged from mini-k8s/busybox:latest)" \
      e2e::minion_docker "$minion" tag mini-k8s/busybox:latest "$NEW_IMAGE" || return 1
  done
  e2e::start_requests "http://$PUBLIC_IP:$FRONTEND_PORT/" rolling
  out="$(timeout 300 "$CTL" --kubeconfig "$KUBECONFIG" rolling-update frontend frontend-v2 \
    --image="$NEW_IMAGE" --update-period=5s --poll-interval=1s --timeout=2m 2>&1)" || rc=$?
  if ((rc == 0)); then
    e2e::ok "ctl rolling-update frontend frontend-v2 --image=$NEW_IMAGE"
  else
    e2e::fail "ctl rolling-update frontend frontend-v2 --image=$NEW_IMAGE (exit $rc):"
  fi
  e2e::indent <<<"$out"
  e2e::poll 120 "2 frontend pods Running, all of $NEW_IMAGE" \
    e2e::running_and_image name=frontend 2 "$NEW_IMAGE" || true
  e2e::stop_requests rolling || true
  ((scenario_failed == 0)) || return 1
  e2e::check "controller frontend is gone, frontend-v2 has 2 replicas" \
    e2e::rc_names_are "frontend-v2" || return 1
}

# e2e::running_and_image SELECTOR N IMAGE
e2e::running_and_image() {
  e2e::running_exactly "$1" "$2" && e2e::images_are "$1" "$3"
}

# e2e::rc_names_are NAMES - the replication controllers are exactly NAMES.
e2e::rc_names_are() {
  local have
  have="$(kc get rc -o name | sort | tr '\n' ' ')"
  echo "controllers: $have"
  [[ "$have" == "replicationcontroller/$1 " ]]
}

e2e::scenario_minion_down() {
  local minion node backend_node pods_there victim="" replicas tolerated_until
  backend_node="$(kc get pod backend -o json | jq -r '.spec.nodeName // empty')"
  # A minion with frontend pods but not the backend (a bare pod, which
  # nothing would recreate); minion 1 last, as it carries the publicIP.
  for minion in 2 3 1; do
    node="$(e2e::node_of_minion "$minion")"
    [[ -n "$node" && "$node" != "$backend_node" ]] || continue
    if e2e::pods name=frontend | awk -v n="$node" '$2 == n {found = 1} END {exit !found}'; then
      victim="$minion"
      break
    fi
  done
  [[ -n "$victim" ]] || {
    e2e::fail "no minion runs a frontend pod without the backend:"
    e2e::pods app=guestbook | e2e::indent
    return 1
  }
  node="$(e2e::node_of_minion "$victim")"
  pods_there="$(kc get pods -o json | jq -r --arg n "$node" \
    '.items[] | select(.spec.nodeName == $n) | .metadata.name' | tr '\n' ' ')"
  e2e::ok "stopping minion $victim (node $node), which runs: $pods_there"
  replicas="$(e2e::frontend_replicas)"
  e2e::start_requests "http://$PUBLIC_IP:$FRONTEND_PORT/" minion-down
  # Until the node is found silent and its pods not ready, iptables-mode
  # kube-proxy still sends a share of connections to the dead pods.
  tolerated_until=$(($(date +%s) + DETECTION_SECONDS))
  e2e::ok "requests through the publicIP running; stopping minion $victim at $(date +%T); failures tolerated until $(date -d "@$tolerated_until" +%T) (${DETECTION_SECONDS}s)"
  e2e::check "hack/local-cluster.sh stop-minion $victim" "$LOCAL_CLUSTER" stop-minion "$victim" || {
    e2e::stop_requests minion-down "$tolerated_until" || true
    return 1
  }
  e2e::poll 150 "node $node is no longer Ready" e2e::node_not_ready "$node" || true
  e2e::poll 180 "no pod is left on node $node (evicted)" e2e::no_pods_on "$node" || true
  e2e::poll 120 "$replicas frontend pods Running on the other minions" \
    e2e::running_not_on name=frontend "$replicas" "$node" || true
  e2e::stop_requests minion-down "$tolerated_until" || true
  e2e::check "hack/local-cluster.sh start-minion $victim" "$LOCAL_CLUSTER" start-minion "$victim" || return 1
  e2e::poll 120 "node $node is Ready again" e2e::node_ready_is "$node" True || return 1
  ((scenario_failed == 0))
}

# e2e::node_ready_is NODE STATUS - its Ready condition has STATUS.
e2e::node_ready_is() {
  local have
  have="$(kc get node "$1" -o json | jq -r '.status.conditions[]? | select(.type == "Ready") | .status')" || return 1
  echo "Ready: $have"
  [[ "$have" == "$2" ]]
}

# e2e::node_not_ready NODE - its Ready condition is False or Unknown.
e2e::node_not_ready() {
  ! e2e::node_ready_is "$1" True
}

# e2e::no_pods_on NODE - no pod is bound to NODE any more.
e2e::no_pods_on() {
  local left
  left="$(kc get pods -o json | jq -r --arg n "$1" '.items[] | select(.spec.nodeName == $n) | .metadata.name')" || return 1
  echo "still there: ${left:-(none)}"
  [[ -z "$left" ]]
}

# e2e::running_not_on SELECTOR N NODE - N Running, none of them on NODE.
e2e::running_not_on() {
  e2e::running_exactly "$1" "$2" || return 1
  ! e2e::pods "$1" | awk -v n="$3" '$2 == n {found = 1} END {exit !found}'
}

# e2e::object_names - every pod, service, controller and node by name.
e2e::object_names() {
  kc get pods,services,replicationcontrollers,nodes -o name | sort
}

e2e::scenario_restart() {
  local before after
  before="$work/names.before"
  after="$work/names.after"
  e2e::object_names >"$before" || e2e::fail "listed the objects" || return 1
  e2e::ok "$(grep -c . "$before") objects before: $(tr '\n' ' ' <"$before" | cut -c1-300)"
  e2e::check "hack/local-cluster.sh restart-master (etcd and apiserver)" \
    "$LOCAL_CLUSTER" restart-master || return 1
  e2e::poll 60 "the apiserver answers again" kc get nodes || return 1
  e2e::object_names >"$after" || e2e::fail "listed the objects again" || return 1
  e2e::check "no object lost or added across the restart" diff "$before" "$after" || return 1
  e2e::check "created pod after-restart" e2e::create_pod_after_restart || return 1
  e2e::poll 120 "pod after-restart is Running" e2e::running_exactly name=after-restart 1 || return 1
  e2e::poll 60 "its log says it is alive" e2e::log_has after-restart "alive after restart" || return 1
  e2e::check "ctl resize rc frontend-v2 --replicas=3" kc resize rc frontend-v2 --replicas=3 || return 1
  e2e::poll 120 "3 frontend pods Running" e2e::running_exactly name=frontend 3 || return 1
  e2e::poll 30 "the guestbook answers through the publicIP" \
    e2e::page "http://$PUBLIC_IP:$FRONTEND_PORT/" || return 1
}

# e2e::create_pod_after_restart - a v1 pod through stdin, like a user would.
e2e::create_pod_after_restart() {
  kc create -f - <<'POD'
{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "after-restart", "labels": {"name": "after-restart"}},
  "spec": {
    "containers": [{
      "name": "main",
      "image": "mini-k8s/busybox:latest",
      "imagePullPolicy": "IfNotPresent",
      "command": ["sh", "-c", "echo alive after restart; trap 'exit 0' TERM; sleep 3600 & wait"]
    }]
  }
}
POD
}

# ---------------------------------------------------------------------------
# secure: every listener authenticated (issue #13).

# e2e::http_code ARGS... - the HTTP status curl gets (000: no HTTP answer).
e2e::http_code() {
  curl -sS -o /dev/null -m 5 -w '%{http_code}' "$@" 2>/dev/null || true
}

# e2e::expect_code WANT TEXT CURL_ARGS... - one fact: that status.
e2e::expect_code() {
  local expected="$1" text="$2" got
  shift 2
  got="$(e2e::http_code "$@")"
  if [[ "$got" == "$expected" ]]; then
    e2e::ok "$text: HTTP $got"
  else
    e2e::fail "$text: HTTP $got, not $expected"
  fi
}

e2e::scenario_secure() {
  local api="10.245.1.1:6443" pki="$CLUSTER_STATE/pki" demo k ip ok=1
  demo="$(cut -d, -f1 "$pki/tokens.csv")"
  e2e::expect_code 000 "plain HTTP to the API port $api gets no HTTP answer" \
    "http://$api/api/v1/pods" || ok=0
  e2e::expect_code 000 "nothing listens on 10.245.1.1:8080 (no insecure port)" \
    "http://10.245.1.1:8080/api/v1/pods" || ok=0
  e2e::expect_code 401 "TLS without a credential" --cacert "$pki/ca.crt" \
    "https://$api/api/v1/pods" || ok=0
  e2e::expect_code 403 "the token of demo (no roles) lists pods" --cacert "$pki/ca.crt" \
    -H "Authorization: Bearer $demo" "https://$api/api/v1/pods" || ok=0
  e2e::expect_code 200 "the admin's certificate lists pods" --cacert "$pki/ca.crt" \
    --cert "$pki/admin.crt" --key "$pki/admin.key" "https://$api/api/v1/pods" || ok=0
  for k in $(seq 1 "$MINIONS"); do
    ip="10.245.1.$((k + 1))"
    e2e::expect_code 401 "curl -k https://$ip:10250/pods without a credential" -k \
      "https://$ip:10250/pods" || ok=0
    e2e::expect_code 403 "the kubelet of minion $k refuses demo's token" -k \
      -H "Authorization: Bearer $demo" "https://$ip:10250/pods" || ok=0
    e2e::expect_code 000 "plain HTTP to the kubelet of minion $k gets no HTTP answer" \
      "http://$ip:10250/pods" || ok=0
  done
  e2e::expect_code 200 "the apiserver's kubelet-client identity reads a kubelet's /pods" \
    --cacert "$pki/ca.crt" --cert "$pki/apiserver-kubelet-client.crt" \
    --key "$pki/apiserver-kubelet-client.key" "https://10.245.1.2:10250/pods" || ok=0
  # Node restriction: minion 1's kubelet identity (system:node:NAME) reaches
  # its own pods and node only.
  local n1 n2
  n1="$(e2e::node_of_minion 1)" n2="$(e2e::node_of_minion 2)"
  local as_kubelet=(--cacert "$pki/ca.crt" --cert "$pki/kubelet-$n1.crt" --key "$pki/kubelet-$n1.key")
  e2e::expect_code 403 "minion 1's kubelet identity lists kube-system's pods" \
    "${as_kubelet[@]}" "https://$api/api/v1/namespaces/kube-system/pods" || ok=0
  e2e::expect_code 403 "minion 1's kubelet identity lists every pod" \
    "${as_kubelet[@]}" "https://$api/api/v1/pods" || ok=0
  e2e::expect_code 200 "minion 1's kubelet identity lists its own pods (spec.nodeName=$n1)" \
    "${as_kubelet[@]}" "https://$api/api/v1/pods?fieldSelector=spec.nodeName%3D$n1" || ok=0
  e2e::expect_code 403 "minion 1's kubelet identity patches minion 2's node" \
    "${as_kubelet[@]}" -X PATCH -H 'Content-Type: application/merge-patch+json' \
    --data '{"metadata":{"labels":{"stolen":"yes"}}}' "https://$api/api/v1/nodes/$n2" || ok=0
  e2e::expect_code 200 "minion 1's kubelet identity reads its own node" \
    "${as_kubelet[@]}" "https://$api/api/v1/nodes/$n1" || ok=0
  ((ok))
}

# ---------------------------------------------------------------------------

# shellcheck disable=SC2317 # called by the trap
e2e::teardown() {
  trap - EXIT INT TERM
  if [[ -n "$loop_pid" ]]; then
    touch "$work/stop"
    kill "$loop_pid" 2>/dev/null || true
    wait "$loop_pid" 2>/dev/null || true
  fi
  if [[ "${E2E_KEEP:-0}" == 1 ]]; then
    util::warn "E2E_KEEP=1: the cluster stays up; take it down with: $LOCAL_CLUSTER down"
  else
    util::log "taking the cluster down"
    "$LOCAL_CLUSTER" down >"$work/down.log" 2>&1 || {
      util::warn "hack/local-cluster.sh down failed:"
      cat "$work/down.log" >&2
    }
    # The walk-through's hostDir, made by its pods' dockerd on this host.
    ((walkthrough_logs_were_there)) || rm -rf "$WALKTHROUGH_LOGS"
  fi
  rm -rf "$work"
}
trap e2e::teardown EXIT INT TERM

# `up` would take down a cluster that is already there: on a shared
# machine a running one may be someone else's, so refuse unless told
# otherwise. What a cluster left when it was killed (SIGKILL, a power cut:
# its state dir and namespaces, none of its processes alive) is nobody's
# cluster; `up` removes it from its undo log, so go on.
if cluster::any_alive; then
  if [[ "${E2E_REPLACE_CLUSTER:-0}" != 1 ]]; then
    trap - EXIT INT TERM
    rm -rf "$work"
    util::die "a local cluster is already up ($CLUSTER_STATE): take it down with '$LOCAL_CLUSTER down' (or E2E_REPLACE_CLUSTER=1 to let e2e replace it)"
  fi
  util::warn "E2E_REPLACE_CLUSTER=1: replacing the cluster that is already up"
elif [[ -e "$CLUSTER_STATE" ]] || ip netns list 2>/dev/null | grep -q '^mk8s-minion-'; then
  util::warn "a local cluster was left behind with none of its processes running ($CLUSTER_STATE, mk8s-minion-* namespaces): 'up' removes it first"
fi

run_start="$(date +%s)"
util::log "bringing up the cluster: $LOCAL_CLUSTER up $MINIONS (BUILD_PROFILE=$BUILD_PROFILE)"
if ! "$LOCAL_CLUSTER" up "$MINIONS" >"$work/up.log" 2>&1; then
  util::warn "hack/local-cluster.sh up $MINIONS failed:"
  tail -n 40 "$work/up.log" >&2
  echo "0 passed, 1 failed (the cluster did not come up)"
  exit 2
fi
util::log "cluster up in $(util::seconds_since "$run_start")s: $(grep -m1 'minions Ready' "$work/up.log" || true)"
[[ -x "$CTL" ]] || util::die "$CTL is missing although the cluster is up (BUILD_PROFILE=$BUILD_PROFILE)"

e2e::scenario walkthrough
e2e::scenario guestbook
e2e::scenario resize
e2e::scenario rolling
e2e::scenario minion-down
e2e::scenario restart
e2e::scenario ingress
e2e::scenario dns
e2e::scenario health
e2e::scenario secure
e2e::scenario daemonset

echo
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed ($(util::seconds_since "$run_start")s)"
((failed == 0))
