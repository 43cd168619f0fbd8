# The lab benchmark inside the guest (booted by lab/bench through boot.sh).
# One gadget, BENCH_ROUNDS rounds; each round measures, on the same gadget
# and the same sim, three paths one after another:
#   raw      the sim with --raw (no mux) and bench/usb/raw-libusb: the ceiling
#   usbmuxd  Debian's usbmuxd 1.1.1 and the project's bench client
#   tsmuxd   tsmuxd on real libusb and the same client
# Each measurement is one line of $OUT/bench.jsonl:
#   {"round":R,"path":P,"case":C,"daemonCpuProcSec":X,"simCpuSec":Y,"result":{...}}
# where result is the measuring program's own JSON line and the CPU figures
# come from /proc/PID/stat around the run (the client's own daemonCpuSec,
# when it has one, is preferred by the report).
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
CASES=$(echo "${BENCH_CASES:-up,down,rtt}" | tr , " ")
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

# measure PATH CASE COMMAND...: runs COMMAND (which prints JSON lines) and
# records each line with the daemon's and the sim's CPU over the run.
measure() {
  path=$1 case=$2
  shift 2
  d0=$(cpu_of "$DAEMON_PID") s0=$(cpu_of "$SIM_PID")
  timeout "${BENCH_CASE_TIMEOUT:-600}" "$@" > "$OUT/r$ROUND-$path-$case.out" 2> "$OUT/r$ROUND-$path-$case.err"
  rc=$?
  d1=$(cpu_of "$DAEMON_PID") s1=$(cpu_of "$SIM_PID")
  dcpu=$(cpu_delta "$d0" "$d1") scpu=$(cpu_delta "$s0" "$s1")
  n=0
  while IFS= read -r line; do
    case $line in
      '{'*'}')
        rec="{\"round\":$ROUND,\"path\":\"$path\",\"case\":\"$case\",\"daemonCpuProcSec\":$dcpu,\"simCpuSec\":$scpu,\"result\":$line}"
        echo "$rec" >> "$OUT/bench.jsonl"
        echo "@@BENCH|$rec"
        n=$((n + 1))
        ;;
    esac
  done < "$OUT/r$ROUND-$path-$case.out"
  if [ $rc -ne 0 ] || [ $n -eq 0 ]; then
    err=$(tail -2 "$OUT/r$ROUND-$path-$case.err" | tr '\n"\\' '  /')
    rec="{\"round\":$ROUND,\"path\":\"$path\",\"case\":\"$case\",\"error\":\"exit $rc: $err\"}"
    echo "$rec" >> "$OUT/bench.jsonl"
    echo "@@BENCH|$rec"
  fi
  note "$path $case: exit $rc, $n result line(s)"
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

phase_raw() {
  SIM_TAG=raw
  plug_sim --raw || return 1
  for c in $CASES; do
    measure raw "$c" "$RAW_LIBUSB" --bytes "$BYTES" --rtt-count "$RTT_COUNT" --cases "$c"
  done
  unplug_sim
}

daemon_start() {
  case $1 in
    usbmuxd) usbmuxd -f -v >> "$OUT/usbmuxd.log" 2>&1 & ;;
    # its own lockdown dir: usbmuxd's records stay usbmuxd's
    tsmuxd) node "$P/dist/src/cli/main.js" -f -v -S "$SOCKET" -P NONE -C /var/lib/tsmuxd-lockdown >> "$OUT/tsmuxd.log" 2>&1 & ;;
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
    for c in $CASES; do
      measure "$name" "$c" $CLIENT -S "UNIX:$SOCKET" --json --bytes "$BYTES" --repeats 1 --cases "$c" --daemon-pid "$DAEMON_PID"
    done
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
usbmuxd_version=$(dpkg-query -W -f='${Version}' usbmuxd 2>/dev/null)
libusb_version=$(dpkg-query -W -f='${Version}' libusb-1.0-0 2>/dev/null)
facts="{\"kind\":\"guest\",\"kernel\":\"$(uname -r)\",\"node\":\"$(node -v)\",\"usbmuxd\":\"$usbmuxd_version\",\"libusb\":\"$libusb_version\",\"vcpus\":$(nproc),\"memMiB\":$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)}"
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
