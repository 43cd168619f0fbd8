# The lab benchmark inside the guest (booted by lab/bench through boot.sh).
# One gadget, BENCH_ROUNDS rounds; each round measures, on the same gadget
# and the same sim, three paths one after another:
#   raw      the sim with --raw (no mux) and bench/usb/raw-libusb: the ceiling
#   usbmuxd  Debian's usbmuxd 1.1.1 and the project's bench client
#   tsmuxd   tsmuxd on real libusb and the same client
# Each measurement is one line of $OUT/bench.jsonl:
#   {"round":R,"path":P,"case":C,"daemonCpuProcSec":X,"simCpuSec":Y,"result":{...}}
# where result is the measuring program's own JSON line and the CPU figures
# come from /proc/PID/stat between that line and the one before (the
# client's own daemonCpuSec, over the transfer alone, is preferred by the
# report; the sim's CPU is only known this way).
P=$LAB_PROJECT
G=$P/lab/guest
OUT=${LAB_OUT:?}
mkdir -p "$OUT"
. "$G/lib.sh"
. "$G/gadget.sh"

SERIAL=${LAB_SERIAL:-00008110001C2D3E4F5A6B7C}
UDID=$(echo "$SERIAL" | sed 's/^\(........\)\(................\)$/\1-\2/')
ROUNDS=${BENCH_ROUNDS:-3}
BYTES=${BENCH_BYTES:-67108864}
RTT_COUNT=${BENCH_RTT_COUNT:-1000}
CASES=${BENCH_CASES:-up,down,rtt}
PATHS=$(echo "${BENCH_PATHS:-raw,usbmuxd,tsmuxd}" | tr , " ")
RAW_LIBUSB=${BENCH_RAW_LIBUSB:?the host builds bench/usb/raw-libusb}
SOCKET=/var/run/usbmuxd
CLIENT="node $P/dist/src/cli/main.js bench"
DAEMON_PID=
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)

# cpu_of PID: user + system seconds so far (all threads), from /proc/PID/stat.
cpu_of() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo null; return; }
  sed 's/.*) //' "/proc/$1/stat" | awk -v t="$TICKS" '{ printf "%.3f", ($12 + $13) / t }'
}
cpu_delta() { [ "$1" = null ] || [ "$2" = null ] && { echo null; return; }; awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

note() { echo "[bench] $(uptime_s)s $*"; }

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
# case ends, and records each line with the daemon's and the sim's CPU since
# the previous line (the first: since the start). One run per path: a node
# client starts in tens of seconds under TCG.
measure() {
  path=$1
  shift
  base=$OUT/r$ROUND-$path
  : > "$base.count"
  d0=$(cpu_of "$DAEMON_PID") s0=$(cpu_of "$SIM_PID")
  threads_of "$SIM_PID" > "$base.threads0"
  timeout "${BENCH_TIMEOUT:-1800}" "$@" 2> "$base.err" | tee "$base.out" | while IFS= read -r line; do
    case $line in '{'*'}') ;; *) continue ;; esac
    d1=$(cpu_of "$DAEMON_PID") s1=$(cpu_of "$SIM_PID")
    threads_of "$SIM_PID" > "$base.threads1"
    case $line in
      *'"kind":"rtt"'*) c=rtt ;;
      *'"direction":"up"'*) c=up ;;
      *'"direction":"down"'*) c=down ;;
      *) c=other ;;
    esac
    rec="{\"round\":$ROUND,\"path\":\"$path\",\"case\":\"$c\",\"daemonCpuProcSec\":$(cpu_delta "$d0" "$d1"),\"simCpuSec\":$(cpu_delta "$s0" "$s1"),\"simThreadCpuSec\":$(thread_cpu "$base.threads0" "$base.threads1"),\"result\":$line}"
    echo "$rec" >> "$OUT/bench.jsonl"
    echo "@@BENCH|$rec"
    echo x >> "$base.count"
    note "$path $c done"
    d0=$d1 s0=$s1
    mv "$base.threads1" "$base.threads0"
  done
  n=$(grep -c x "$base.count")
  if [ "$n" -eq 0 ]; then
    err=$(tail -2 "$base.err" | tr '\n"\\' '  /')
    rec="{\"round\":$ROUND,\"path\":\"$path\",\"case\":\"all\",\"error\":\"no results: $err\"}"
    echo "$rec" >> "$OUT/bench.jsonl"
    echo "@@BENCH|$rec"
  fi
  note "$path: $n result line(s)"
  sim_stats "$path"
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
  rec="{\"kind\":\"sim-stats\",\"round\":$ROUND,\"path\":\"$1\",\"line\":$stats}"
  echo "$rec" >> "$OUT/bench.jsonl"
  echo "@@BENCH|$rec"
}

# idle PATH: the host side's and the sim's CPU over BENCH_IDLE_SECONDS with
# the phone connected and nobody using it.
idle() {
  secs=${BENCH_IDLE_SECONDS:-5}
  [ "$secs" -gt 0 ] || return
  d0=$(cpu_of "$DAEMON_PID") s0=$(cpu_of "$SIM_PID")
  sleep "$secs"
  d1=$(cpu_of "$DAEMON_PID") s1=$(cpu_of "$SIM_PID")
  rec="{\"kind\":\"idle\",\"round\":$ROUND,\"path\":\"$1\",\"seconds\":$secs,\"daemonCpuSec\":$(cpu_delta "$d0" "$d1"),\"simCpuSec\":$(cpu_delta "$s0" "$s1")}"
  echo "$rec" >> "$OUT/bench.jsonl"
  echo "@@BENCH|$rec"
}

# plug_sim [SIM_ARG...]: a fresh sim on the gadget, bound and enumerated,
# with udev's usbmuxd rule (configuration 0) applied before anyone opens it.
plug_sim() {
  SIM_OUT=$OUT/sim-r$ROUND-$SIM_TAG.out
  gadget_start_sim "$SERIAL" "$@" >> "$OUT/gadget.log" 2>&1 || { note "sim did not start: $(tail -1 "$OUT/gadget.log")"; return 1; }
  gadget_bind
  wait_until 30 gadget_usbfs_ready "$SERIAL" || { note "05ac:12a8 never enumerated"; return 1; }
  "$P/lab/.cache/udev/bin/udevadm" settle -t 10
}

unplug_sim() {
  gadget_unbind 2>/dev/null
  gadget_stop_sim
}

listed() { idevice_id -l 2>/dev/null | grep -qx "$UDID"; }

refused_logged() { grep -q '"raw: a command is 16 bytes, got a transfer of 17' "$SIM_OUT"; }
check_raw_refuses() {
  "$RAW_LIBUSB" --cases bad-command > "$OUT/r$ROUND-raw-bad-command.out" 2>&1
  ok=false
  wait_until 10 refused_logged && kill -0 "$SIM_PID" 2>/dev/null && ok=true
  rec="{\"kind\":\"check\",\"name\":\"raw-refuses-a-bad-command\",\"ok\":$ok}"
  echo "$rec" >> "$OUT/bench.jsonl"
  echo "@@BENCH|$rec"
  note "raw device refuses a 17-byte command and stays up: $ok"
}

phase_raw() {
  SIM_TAG=raw
  plug_sim --raw || return 1
  measure raw "$RAW_LIBUSB" --bytes "$BYTES" --rtt-count "$RTT_COUNT" --cases "$CASES"
  # Once per boot, last (it ends the raw session): hostile input is logged
  # and refused, and the sim lives on.
  [ "$ROUND" = 1 ] && check_raw_refuses
  unplug_sim
}

daemon_start() {
  case $1 in
    usbmuxd) usbmuxd -f -v >> "$OUT/usbmuxd.log" 2>&1 & ;;
    # its own lockdown dir: usbmuxd's records stay usbmuxd's
    tsmuxd) node "$P/dist/src/cli/main.js" -f -v -S "$SOCKET" -P NONE -C /var/lib/tsmuxd-lockdown \
      ${BENCH_TSMUXD_WINDOW:+--window "$BENCH_TSMUXD_WINDOW"} >> "$OUT/tsmuxd.log" 2>&1 & ;;
  esac
  DAEMON_PID=$!
}

daemon_stop() {
  kill "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null
  DAEMON_PID=
  rm -f "$SOCKET"
}

phase_daemon() {
  name=$1
  if [ "$name" = usbmuxd ] && ! command -v usbmuxd > /dev/null; then
    note "usbmuxd is not installed"
    return 1
  fi
  SIM_TAG=$name
  # the sim keeps its pair records in a state dir, so each daemon pairs once per boot
  plug_sim --state-dir /var/lib/sim-state || return 1
  daemon_start "$name"
  if wait_until 120 test -S "$SOCKET" && wait_until 120 listed; then
    note "$name lists $UDID"
    idle "$name"
    measure "$name" $CLIENT -S "UNIX:$SOCKET" --json --bytes "$BYTES" --rtt-count "$RTT_COUNT" --repeats 1 --cases "$CASES" --daemon-pid "$DAEMON_PID"
  else
    note "$name never listed $UDID"
    rec="{\"round\":$ROUND,\"path\":\"$name\",\"case\":\"all\",\"error\":\"the daemon never listed the phone\"}"
    echo "$rec" >> "$OUT/bench.jsonl"
    echo "@@BENCH|$rec"
  fi
  daemon_stop
  unplug_sim
}

# ---- main ---------------------------------------------------------------------

note "bench start: $ROUNDS round(s) of $BYTES bytes, cases '$CASES', paths '$PATHS'; output in $OUT"
: > "$OUT/bench.jsonl"
ln -sf "$P/lab/.cache/udev/bin/udevadm" /run/systemd-udevd
/run/systemd-udevd --daemon 2>> "$OUT/udevd.log"
mkdir -p /var/lib/lockdown /var/lib/tsmuxd-lockdown /var/lib/sim-state
# (package versions come from the host: the guest has its /usr, not its dpkg database)
facts="{\"kind\":\"guest\",\"kernel\":\"$(uname -r)\",\"node\":\"$(node -v)\",\"vcpus\":$(nproc),\"memMiB\":$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)}"
echo "$facts" >> "$OUT/bench.jsonl"
echo "@@BENCH|$facts"

if ! gadget_create "$SERIAL" > "$OUT/gadget.log" 2>&1; then
  note "the gadget could not be made: $(tail -1 "$OUT/gadget.log")"
else
  for ROUND in $(seq 1 "$ROUNDS"); do
    note "round $ROUND"
    for p in $PATHS; do
      case $p in
        raw) phase_raw || unplug_sim ;;
        usbmuxd | tsmuxd) phase_daemon "$p" || unplug_sim ;;
        *) note "unknown path $p" ;;
      esac
    done
  done
fi
dmesg > "$OUT/dmesg.txt"
note "bench done"
