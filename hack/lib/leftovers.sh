#!/usr/bin/env bash
# Finding what tests leave behind: processes pointing into test temp dirs,
# test-labelled Docker containers, network namespaces, iptables rules.
# Source after hack/lib/util.sh. Usage (see hack/test.sh):
#   leftovers::snapshot STATE_DIR          before the tests
#   leftovers::check STATE_DIR RUN_TMPDIR  after; returns 1 if tests left something
# Only what appeared between the two counts against the run, so another
# engineer's cluster on the same machine does not fail it; what was already
# there is shown as a warning.

# Prefix of every temp dir the test harnesses make (tests/src/etcd.rs TEMP_PREFIX).
LEFTOVERS_TEMP_PREFIX="mk8s-test-"
# Label every container started by a test carries.
LEFTOVERS_DOCKER_LABEL="io.mini-k8s.test"
# iptables chains and rules of ours.
LEFTOVERS_IPTABLES_PATTERN='MK8S|KUBE-'

# leftovers::processes - "PID CMDLINE" of live processes whose command line
# mentions a test temp dir or runs one of this checkout's binaries (a
# component the end-to-end cluster started and did not stop). Zombies have
# an empty cmdline and are skipped.
leftovers::processes() {
  local file pid cmdline
  # One grep over every cmdline instead of a process per pid.
  while IFS= read -r file; do
    pid="${file#/proc/}"
    pid="${pid%/cmdline}"
    [[ "$pid" == "$$" || "$pid" == "${BASHPID:-}" ]] && continue
    cmdline="$(tr '\0' ' ' 2>/dev/null <"$file")" || continue
    [[ -n "$cmdline" ]] || continue
    # Skip grep/tr of this very function.
    [[ "$cmdline" == grep\ * ]] && continue
    # Of this checkout's target dir, only its binaries count (not a rustc
    # writing into it).
    [[ "$cmdline" == *"/$LEFTOVERS_TEMP_PREFIX"* || "$cmdline" == "$MK8S_ROOT/target/"* ]] || continue
    echo "$pid ${cmdline% }"
  done < <(grep -lsaF -e "/$LEFTOVERS_TEMP_PREFIX" -e "$MK8S_ROOT/target/" \
    /proc/[0-9]*/cmdline 2>/dev/null || true)
}

# leftovers::processes_under DIR - the lines of leftovers::processes that
# mention DIR (filtered in bash: a filter process given DIR would match too).
leftovers::processes_under() {
  local line
  while IFS= read -r line; do
    [[ "$line" == *"$1"* ]] && echo "$line"
  done < <(leftovers::processes)
  return 0
}

# leftovers::docker_answers - whether a Docker daemon answers on the default socket.
leftovers::docker_answers() {
  util::have docker && timeout 10 docker info >/dev/null 2>&1
}

# leftovers::containers - "ID NAME STATUS" of containers with the test label.
leftovers::containers() {
  leftovers::docker_answers || return 0
  timeout 20 docker ps -a --filter "label=$LEFTOVERS_DOCKER_LABEL" \
    --format '{{.ID}} {{.Names}} {{.Status}}' 2>/dev/null || true
}

# leftovers::netns - names of network namespaces.
leftovers::netns() {
  util::have ip || return 0
  ip netns list 2>/dev/null | awk '{print $1}' || true
}

# leftovers::iptables - "TABLE RULE" lines of ours, counters stripped.
leftovers::iptables() {
  util::have iptables-save || return 0
  iptables-save 2>/dev/null |
    awk '/^\*/ {table = substr($0, 2); next} {print table " " $0}' |
    grep -E -- "$LEFTOVERS_IPTABLES_PATTERN" |
    sed -E 's/\[[0-9]+:[0-9]+\]//g' || true
}

# leftovers::snapshot STATE_DIR - record what exists before the tests.
leftovers::snapshot() {
  local dir="$1"
  mkdir -p "$dir"
  leftovers::processes | awk '{print $1}' | sort >"$dir/pids.before"
  leftovers::containers | awk '{print $1}' | sort >"$dir/containers.before"
  leftovers::netns | sort >"$dir/netns.before"
  leftovers::iptables | sort >"$dir/iptables.before"
  leftovers::docker_answers && echo yes >"$dir/docker.before" || echo no >"$dir/docker.before"
}

# leftovers::_report KIND NEW_FILE OLD_FILE HINT - print new entries as
# errors and old ones as warnings; return 1 if there are new ones.
leftovers::_report() {
  local kind="$1" new="$2" old="$3" hint="$4"
  if [[ -s "$old" ]]; then
    util::warn "$kind already there before the tests (not counted):"
    sed 's/^/    /' "$old" >&2
  fi
  if [[ -s "$new" ]]; then
    util::warn "LEFTOVER $kind created by the tests:"
    sed 's/^/    /' "$new" >&2
    [[ -n "$hint" ]] && util::warn "  clean up with: $hint"
    return 1
  fi
  return 0
}

# leftovers::check STATE_DIR RUN_TMPDIR - compare with the snapshot. Test
# processes pointing into RUN_TMPDIR (certainly this run's) are killed by
# pid after being reported; everything else is only reported.
leftovers::check() {
  local dir="$1" run_tmp="$2" rc=0 pid rest
  : >"$dir/procs.new"
  : >"$dir/procs.old"
  : >"$dir/procs.other"
  : >"$dir/procs.target"
  while read -r pid rest; do
    if grep -qx "$pid" "$dir/pids.before"; then
      echo "$pid $rest" >>"$dir/procs.old"
    elif [[ "$rest" == *"$run_tmp"* ]]; then
      echo "$pid $rest" >>"$dir/procs.new"
    elif [[ "$rest" == "$MK8S_ROOT/target/"* ]]; then
      # Most likely the end-to-end cluster's, but someone may have started
      # a cluster from this checkout meanwhile: reported, not killed.
      echo "$pid $rest" >>"$dir/procs.target"
    else
      # Started during the run, outside its temp dir: a test that ignores
      # TMPDIR, or another engineer's tests. Shown, not counted.
      echo "$pid $rest" >>"$dir/procs.other"
    fi
  done < <(leftovers::processes)
  leftovers::_report "processes in the run's temp dir $run_tmp" \
    "$dir/procs.new" "$dir/procs.old" "" || rc=1
  leftovers::_report "processes of $MK8S_ROOT/target started during the run" \
    "$dir/procs.target" /dev/null "sudo hack/local-cluster.sh down (or kill the PIDs above)" || rc=1
  if [[ -s "$dir/procs.other" ]]; then
    util::warn "test processes started during the run outside $run_tmp (other tests on this machine?):"
    sed 's/^/    /' "$dir/procs.other" >&2
  fi
  leftovers::kill_pids "$dir/procs.new"

  if leftovers::docker_answers; then
    leftovers::containers | awk '{print $1}' | sort >"$dir/containers.after"
    leftovers::_diff_report "containers labelled $LEFTOVERS_DOCKER_LABEL" containers \
      "$dir" "docker rm -f \$(docker ps -aq --filter label=$LEFTOVERS_DOCKER_LABEL)" || rc=1
  else
    util::log "leftovers: no Docker daemon answers; container check skipped"
  fi
  leftovers::netns | sort >"$dir/netns.after"
  leftovers::_diff_report "network namespaces" netns "$dir" "ip netns delete NAME" || rc=1
  if util::have iptables-save && iptables-save >/dev/null 2>&1; then
    leftovers::iptables | sort >"$dir/iptables.after"
    leftovers::_diff_report "iptables rules matching $LEFTOVERS_IPTABLES_PATTERN" iptables "$dir" \
      "kube-proxy --cleanup, or iptables -t TABLE -F/-X the chains" || rc=1
  else
    util::log "leftovers: iptables-save does not work here; iptables check skipped"
  fi
  return "$rc"
}

# leftovers::_diff_report KIND NAME STATE_DIR HINT - new = after minus before.
leftovers::_diff_report() {
  local kind="$1" name="$2" dir="$3" hint="$4"
  comm -13 "$dir/$name.before" "$dir/$name.after" >"$dir/$name.new"
  comm -12 "$dir/$name.before" "$dir/$name.after" >"$dir/$name.old"
  leftovers::_report "$kind" "$dir/$name.new" "$dir/$name.old" "$hint"
}

# leftovers::_alive PID - running (a zombie's cmdline is empty).
leftovers::_alive() {
  [[ -n "$(tr -d '\0' 2>/dev/null <"/proc/$1/cmdline")" ]]
}

# leftovers::with_descendants PID... - the pids and all their descendants
# (a leaked `sh -c` leaves its children too), one per line.
leftovers::with_descendants() {
  ps -eo pid=,ppid= 2>/dev/null | awk -v roots="$*" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { parent[$1] = $2 }
    END {
      do {
        added = 0
        for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; added = 1 }
      } while (added)
      for (p in keep) print p
    }'
}

# leftovers::kill_pids FILE - SIGTERM, then SIGKILL, the pids in column 1 of
# FILE and their descendants.
leftovers::kill_pids() {
  local file="$1" pid roots=() pids=()
  [[ -s "$file" ]] || return 0
  mapfile -t roots < <(awk '{print $1}' "$file")
  mapfile -t pids < <(leftovers::with_descendants "${roots[@]}")
  util::log "killing leftover test processes: ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in {1..20}; do
    local alive=()
    for pid in "${pids[@]}"; do
      leftovers::_alive "$pid" && alive+=("$pid")
    done
    ((${#alive[@]})) || return 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}
