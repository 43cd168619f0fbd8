# What the lab benchmark's rounds share (sourced by bench.sh): CPU readings
# from /proc, the record lines of $OUT/bench.jsonl, and measure, which runs
# one measuring program and stores each JSON line it prints.
#
# Every record carries $REC_TAG, extra JSON members of the round it belongs
# to (',"window":524288' in the wide-window round, ',"phones":4' in the
# four-phone one; empty in the phone-like round), and its files are named
# with $FILE_TAG, so that the rounds' figures and logs stay apart.
REC_TAG=
FILE_TAG=
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)

note() { echo "[bench] $(uptime_s)s $*"; }

# emit JSON: one record, into bench.jsonl and onto the console.
emit() {
  echo "$1" >> "$OUT/bench.jsonl"
  echo "@@BENCH|$1"
}

# cpu_of PID...: user + system seconds so far (all threads), from
# /proc/PID/stat, summed over the pids (the four-phone round's sims); null
# when one cannot be read.
cpu_of() {
  [ $# -gt 0 ] && [ -n "$1" ] || { echo null; return; }
  for p in "$@"; do [ -r "/proc/$p/stat" ] || { echo null; return; }; done
  for p in "$@"; do sed 's/.*) //' "/proc/$p/stat"; done | awk -v t="$TICKS" '{ s += $12 + $13 } END { printf "%.3f", s / t }'
}
cpu_delta() { [ "$1" = null ] || [ "$2" = null ] && { echo null; return; }; awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# threads_of PID > FILE: "tid name ticks" per thread, for thread_cpu.
threads_of() {
  for t in /proc/"$1"/task/*; do
    [ -r "$t/stat" ] || continue
    printf '%s %s ' "${t##*/}" "$(tr ' ' _ < "$t/comm")"
    sed 's/.*) //' "$t/stat" | awk '{ print $12 + $13 }'
  done
}
# thread_cpu BEFORE AFTER: {"thread name": CPU seconds in between, ...}, where
# in the sim the time went (its engine thread, node's main thread...).
thread_cpu() {
  awk -v t="$TICKS" 'NR == FNR { a[$1] = $3; next }
    { s[$2] += $3 - a[$1] }
    END { printf "{"; sep = ""; for (n in s) if (s[n] > 0) { printf "%s\"%s\":%.2f", sep, n, s[n] / t; sep = "," }; printf "}" }' "$1" "$2"
}

# measure PATH COMMAND...: runs COMMAND, which prints one JSON line as each
# case ends, and records each line with the daemon's and the sims' ($SIM_PIDS,
# else $SIM_PID) CPU since the previous line (the first: since the start).
# One run per path: a node client starts in tens of seconds under TCG. The
# sim's per-thread CPU is taken when there is one sim.
measure() {
  local path base sims one_sim d0 s0 n rc err
  path=$1
  shift
  base=$OUT/r$ROUND-$path$FILE_TAG
  sims=${SIM_PIDS:-$SIM_PID}
  one_sim=
  case $sims in *' '*) ;; *) one_sim=$sims ;; esac
  : > "$base.count"
  d0=$(cpu_of "$DAEMON_PID") s0=$(cpu_of $sims)
  [ -n "$one_sim" ] && threads_of "$one_sim" > "$base.threads0"
  # (ash has no PIPESTATUS: the client's exit status goes through a file)
  { timeout "${BENCH_TIMEOUT:-1800}" "$@" 2> "$base.err"; echo $? > "$base.rc"; } | tee "$base.out" | while IFS= read -r line; do
    case $line in '{'*'}') ;; *) continue ;; esac
    d1=$(cpu_of "$DAEMON_PID") s1=$(cpu_of $sims)
    threads='{}'
    if [ -n "$one_sim" ]; then
      threads_of "$one_sim" > "$base.threads1"
      threads=$(thread_cpu "$base.threads0" "$base.threads1")
      mv "$base.threads1" "$base.threads0"
    fi
    case $line in
      *'"kind":"daemon"'*) c=daemon ;;  # which daemon the client found (its first line)
      *'"kind":"rtt"'*) c=rtt ;;
      *'"kind":"connect-rate"'*) c=connect ;;
      *'"direction":"up"'*) c=up ;;
      *'"direction":"down"'*) c=down ;;
      *) c=other ;;
    esac
    emit "{\"round\":$ROUND,\"path\":\"$path\"$REC_TAG,\"case\":\"$c\",\"daemonCpuProcSec\":$(cpu_delta "$d0" "$d1"),\"simCpuSec\":$(cpu_delta "$s0" "$s1"),\"simThreadCpuSec\":$threads,\"result\":$line}"
    echo x >> "$base.count"
    note "$path$FILE_TAG $c done"
    d0=$d1 s0=$s1
  done
  n=$(grep -c x "$base.count")
  rc=$(cat "$base.rc" 2>/dev/null)
  err=$(tail -2 "$base.err" | tr '\n"\\' '  /')
  if [ "$n" -eq 0 ]; then
    emit "{\"round\":$ROUND,\"path\":\"$path\"$REC_TAG,\"case\":\"all\",\"error\":\"no results: $err\"}"
  elif [ "$rc" != 0 ]; then
    # some figures, then the client gave up: the rest are missing, say why
    emit "{\"round\":$ROUND,\"path\":\"$path\"$REC_TAG,\"case\":\"rest\",\"error\":\"the client exited with status $rc after $n line(s): $err\"}"
  fi
  note "$path$FILE_TAG: $n result line(s)"
  [ -n "$one_sim" ] && sim_stats "$path"
}

# sim_stats PATH: the sim's data-plane counters (SIGHUP prints one JSON line
# with --ffs): transfers and bytes each way, ZLPs, for the report.
sim_stats() {
  before=$(grep -c '"stats"' "$SIM_OUT")
  kill -HUP "$SIM_PID" 2>/dev/null
  i=0
  while [ "$(grep -c '"stats"' "$SIM_OUT")" -le "$before" ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
  stats=$(grep '"stats"' "$SIM_OUT" | tail -1)
  case $stats in '{'*'}') ;; *) return ;; esac
  emit "{\"kind\":\"sim-stats\",\"round\":$ROUND,\"path\":\"$1\"$REC_TAG,\"line\":$stats}"
}

# idle PATH: the host side's and the sim's CPU over BENCH_IDLE_SECONDS with
# the phone connected and nobody using it.
idle() {
  secs=${BENCH_IDLE_SECONDS:-5}
  [ "$secs" -gt 0 ] || return
  d0=$(cpu_of "$DAEMON_PID") s0=$(cpu_of "$SIM_PID")
  sleep "$secs"
  d1=$(cpu_of "$DAEMON_PID") s1=$(cpu_of "$SIM_PID")
  emit "{\"kind\":\"idle\",\"round\":$ROUND,\"path\":\"$1\"$REC_TAG,\"seconds\":$secs,\"daemonCpuSec\":$(cpu_delta "$d0" "$d1"),\"simCpuSec\":$(cpu_delta "$s0" "$s1")}"
}

# settle PATH: before the figures, waits until the daemon is quiet
# (quiet_after, lib.sh) and records how long that took (null: never).
settle() {
  local secs
  secs=$(quiet_after "$DAEMON_PID") || secs=null
  emit "{\"kind\":\"settled\",\"round\":$ROUND,\"path\":\"$1\"$REC_TAG,\"seconds\":$secs}"
}

# listed_record PATH SECONDS PAIRED_BEFORE PAIRED_AFTER: seconds from the
# daemon's start until idevice_id -l listed every phone of the round (null:
# not within the deadline); how many of them had a pair record before the
# start and once listed (usbmuxd and tsmuxd both preflight: a first pairing
# makes the listing slower, and a preflight that gives up lists a phone
# unpaired), and how many preflights failed since preflight_mark.
listed_record() {
  emit "{\"kind\":\"listed\",\"round\":$ROUND,\"path\":\"$1\"$REC_TAG,\"seconds\":$2,\"pairedBefore\":$3,\"pairedAfter\":$4,\"preflightFailures\":$(preflight_failures "$1")}"
}

# preflight_failures NAME: how many preflights the daemon's log says failed
# since preflight_mark NAME (tsmuxd: "preflight of UDID failed: ...";
# usbmuxd: "preflight_worker_handle_device_add: ERROR: ..."). A daemon that
# gives up a preflight lists the phone anyway, so a listing alone hides it.
preflight_lines() { grep -ciE 'preflight.*(failed|error)' "$OUT/$1.log" 2>/dev/null || true; }
preflight_mark() { PREFLIGHT_MARK=$(preflight_lines "$1"); }
preflight_failures() { echo $(($(preflight_lines "$1") - ${PREFLIGHT_MARK:-0})); }

# paired_count DIR UDID...: how many of the UDIDs have a pair record in the
# daemon's lockdown directory DIR.
paired_count() {
  dir=$1
  shift
  n=0
  for u in "$@"; do [ -f "$dir/$u.plist" ] && n=$((n + 1)); done
  echo $n
}
