# The lab benchmark inside the guest (booted by lab/bench through boot.sh).
# BENCH_ROUNDS rounds; each round measures, one after another:
#   raw      the sim with --raw (no mux) and bench/usb/raw-libusb: the ceiling
#   usbmuxd  Debian's usbmuxd 1.1.1 and the project's bench client (up, down,
#            rtt, then BENCH_CONNECT_COUNT Connect cycles with one byte each way)
#   tsmuxd   tsmuxd on real libusb and the same client
# on one gadget with a phone-like sim (128 KiB window); then the two daemons
# again with the sim advertising BENCH_WIDE_WINDOW (the wide-window round: the
# daemons' own ceiling, not the phone's window); then BENCH_PHONES phones at
# once (bench-multi.sh), with the churn check in round 1 (bench-churn.sh).
# Each measurement is one line of $OUT/bench.jsonl:
#   {"round":R,"path":P,"case":C,"daemonCpuProcSec":X,"simCpuSec":Y,"result":{...}}
# (plus "window":W or "phones":N in those rounds) where result is the
# measuring program's own JSON line and the CPU figures come from
# /proc/PID/stat between that line and the one before (the client's own
# daemonCpuSec, over the transfer alone, is preferred by the report; the
# sim's CPU is only known this way).
P=$LAB_PROJECT
G=$P/lab/guest
OUT=${LAB_OUT:?}
mkdir -p "$OUT"
. "$G/lib.sh"
. "$G/gadget.sh"
. "$G/bench-lib.sh"
. "$G/bench-multi.sh"
. "$G/bench-churn.sh"

SERIAL=${LAB_SERIAL:-00008110001C2D3E4F5A6B7C}
UDID=$(echo "$SERIAL" | sed 's/^\(........\)\(................\)$/\1-\2/')
ROUNDS=${BENCH_ROUNDS:-3}
BYTES=${BENCH_BYTES:-67108864}
RTT_COUNT=${BENCH_RTT_COUNT:-1000}
CASES=${BENCH_CASES:-up,down,rtt}
PATHS=$(echo "${BENCH_PATHS:-raw,usbmuxd,tsmuxd}" | tr , " ")
RAW_LIBUSB=${BENCH_RAW_LIBUSB:?the host builds bench/usb/raw-libusb}
# Connect cycles per daemon in the phone-like round (0: none)
CONNECT_COUNT=${BENCH_CONNECT_COUNT:-500}
# the wide-window round's sim window (0: no such round)
WIDE_WINDOW=${BENCH_WIDE_WINDOW:-524288}
SOCKET=/var/run/usbmuxd
CLIENT="node $P/dist/src/cli/main.js bench"
DAEMON_PID=

# plug_sim [SIM_ARG...]: a fresh sim on the gadget, bound and enumerated,
# with udev's usbmuxd rule (configuration 0) applied before anyone opens it.
plug_sim() {
  SIM_OUT=$OUT/sim-r$ROUND-$SIM_TAG$FILE_TAG.out
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
  emit "{\"kind\":\"check\",\"name\":\"raw-refuses-a-bad-command\",\"ok\":$ok}"
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
    # its own lockdown dir: usbmuxd's records stay usbmuxd's; no automatic
    # tunnels (usbmuxd has none: the same work for both; BENCH_TSMUXD_TUNNELS=auto to include them),
    # and no Wi-Fi discovery (usbmuxd has none either)
    tsmuxd) node "$P/dist/src/cli/main.js" -f -v -S "$SOCKET" -P NONE -C /var/lib/tsmuxd-lockdown \
      --tunnels "${BENCH_TSMUXD_TUNNELS:-off}" --wifi off \
      ${BENCH_TSMUXD_WINDOW:+--window "$BENCH_TSMUXD_WINDOW"} >> "$OUT/tsmuxd.log" 2>&1 & ;;
  esac
  DAEMON_PID=$!
}

# daemon_lockdown_dir NAME: where the daemon keeps its pair records.
daemon_lockdown_dir() { [ "$1" = usbmuxd ] && echo /var/lib/lockdown || echo /var/lib/tsmuxd-lockdown; }

daemon_stop() {
  kill "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null
  DAEMON_PID=
  rm -f "$SOCKET"
}

# phase_daemon NAME [SIM_ARG...]: a fresh sim (with SIM_ARGs), the daemon,
# the seconds from its start until the phone is listed, the idle CPU, then
# the client: up, down, rtt, and in the phone-like round the Connect cycles.
phase_daemon() {
  name=$1
  shift
  if [ "$name" = usbmuxd ] && ! command -v usbmuxd > /dev/null; then
    note "usbmuxd is not installed"
    return 1
  fi
  SIM_TAG=$name
  # the sim keeps its pair records in a state dir, so each daemon pairs once per boot
  plug_sim --state-dir /var/lib/sim-state "$@" || return 1
  paired=$(paired_count "$(daemon_lockdown_dir "$name")" "$UDID")
  preflight_mark "$name"
  t0=$(uptime_s)
  daemon_start "$name"
  if wait_until 120 test -S "$SOCKET" && wait_until 120 listed; then
    secs=$(elapsed "$t0")
    note "$name lists $UDID $secs s after its start"
    listed_record "$name" "$secs" "$paired" "$(paired_count "$(daemon_lockdown_dir "$name")" "$UDID")"
    idle "$name"
    settle "$name"
    set -- $CLIENT -S "UNIX:$SOCKET" --json --bytes "$BYTES" --rtt-count "$RTT_COUNT" --repeats 1 --daemon-pid "$DAEMON_PID"
    if [ -z "$REC_TAG" ] && [ "$CONNECT_COUNT" -gt 0 ]; then
      # one client for both daemons: socket, Connect to the echo, 1 byte each way, close
      set -- "$@" --cases "$CASES,connect" --connect-count "$CONNECT_COUNT" --connect-echo --concurrency 1
    else
      set -- "$@" --cases "$CASES"
    fi
    measure "$name" "$@"
  else
    note "$name never listed $UDID"
    listed_record "$name" null "$paired" "$(paired_count "$(daemon_lockdown_dir "$name")" "$UDID")"
    emit "{\"round\":$ROUND,\"path\":\"$name\"$REC_TAG,\"case\":\"all\",\"error\":\"the daemon never listed the phone\"}"
  fi
  daemon_stop
  unplug_sim
}

# phase_wide NAME: phase_daemon with the sim's window at WIDE_WINDOW; its
# records carry "window" and its files "-wWINDOW".
phase_wide() {
  REC_TAG=",\"window\":$WIDE_WINDOW" FILE_TAG=-w$WIDE_WINDOW
  phase_daemon "$1" --window "$WIDE_WINDOW"
  rc=$?
  REC_TAG= FILE_TAG=
  return $rc
}

# ---- main ---------------------------------------------------------------------

note "bench start: $ROUNDS round(s) of $BYTES bytes, cases '$CASES', paths '$PATHS', wide window $WIDE_WINDOW, $PHONES phones; output in $OUT"
: > "$OUT/bench.jsonl"
ln -sf "$P/lab/.cache/udev/bin/udevadm" /run/systemd-udevd
/run/systemd-udevd --daemon 2>> "$OUT/udevd.log"
mkdir -p /var/lib/lockdown /var/lib/tsmuxd-lockdown /var/lib/sim-state
# (package versions come from the host: the guest has its /usr, not its dpkg database)
emit "{\"kind\":\"guest\",\"kernel\":\"$(uname -r)\",\"node\":\"$(node -v)\",\"vcpus\":$(nproc),\"memMiB\":$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo),\"udcs\":$(ls /sys/class/udc | wc -l)}"

if ! gadget_create "$SERIAL" > "$OUT/gadget.log" 2>&1; then
  note "the gadget could not be made: $(tail -1 "$OUT/gadget.log")"
else
  multi=0
  if [ "$PHONES" -ge 2 ]; then
    if why=$(phones_create 2>&1); then multi=1
    else
      note "no $PHONES-phone round: $why"
      emit "{\"round\":1,\"path\":\"all\",\"phones\":$PHONES,\"case\":\"all\",\"error\":\"$(echo "$why" | tail -1 | tr '"\\' "'/")\"}"
    fi
  fi
  for ROUND in $(seq 1 "$ROUNDS"); do
    note "round $ROUND"
    for p in $PATHS; do
      case $p in
        raw) phase_raw || unplug_sim ;;
        usbmuxd | tsmuxd) phase_daemon "$p" || unplug_sim ;;
        *) note "unknown path $p" ;;
      esac
    done
    if [ "$WIDE_WINDOW" -gt 0 ]; then
      for p in $(daemon_paths); do phase_wide "$p" || unplug_sim; done
    fi
    [ "$multi" = 1 ] && round_phones
  done
fi
dmesg > "$OUT/dmesg.txt"
note "bench done"
