# Profiling tsmuxd's USB data path in the lab guest: native builds measured
# against each other in one boot, on one gadget and one sim, so that the
# only difference between two figures is the build.
#   lab/boot.sh lab/guest/usb-profile.sh LAB_OUT=DIR PROF_STAGES=a=DIR,b=DIR [K=V...]
# (lab/usb-profile does that for you.) Each stage DIR holds package.json and
# build/Release/tsmuxd.node, and reaches the daemon as TSMUXD_NATIVE_DIR; the
# sim keeps the project's own addon throughout.
#   PROF_ORDER    stages in run order (default: a,b,a,b over PROF_STAGES' names;
#                 none: only the tool runs)
#   PROF_BYTES    bytes per case (64M), PROF_CASES (up,down; none; also connect
#                 and rtt: PROF_CONNECTS Connect cycles with a 1-byte echo,
#                 one at a time (300), PROF_RTT_COUNT 64-byte round trips (1000))
#   PROF_STARTS   timed starts per run before its cases (0): seconds from
#                 the daemon's start to its socket and to the phone Attached
#                 (start-probe.mjs); a stage "usbmuxd" is Debian's usbmuxd
#   PROF_CPU_PROF 1: each tsmuxd run under node --cpu-prof ($LAB_OUT/cpuprof/)
#   PROF_WINDOW   the sim's receive window (524288, as issue 20 measured)
#   PROF_CASE_SECONDS  a case's deadline (600); a case that misses it leaves
#                 run*.stall (the daemon's kernel stacks, the sim's counters,
#                 dmesg) and is tried once more
#   PROF_TOOL     none | perf | strace: after the timed runs, one more run per
#                 stage in PROF_TOOL_STAGES (default: all), per case, with the
#                 tool attached to the daemon (never during a timed run):
#                 perf-STAGE-CASE.data (reported on the host, with the guest's
#                 kallsyms saved here) or strace-STAGE-CASE (strace -c -f)
# Output: $LAB_OUT/profile.jsonl, one line per case and run:
#   {"run":N,"stage":S,"case":C,"utimeSec":U,"stimeSec":K,"threads":{...},"result":{bench line}}
# utime/stime are the daemon's, from /proc/PID/stat between the bench's lines
# (the first includes its Connect); the bench's own cpuSecPerGiB covers only
# the transfer. Console lines "@@PROF|..." carry the same.
P=$LAB_PROJECT
G=$P/lab/guest
# The daemon's and the bench's JavaScript: PROF_APP's copy of dist/ (made by
# lab/usb-profile at boot), so a TypeScript build on the host mid-boot cannot
# pair new JavaScript with the stages' older native code.
APP=${PROF_APP:-$P}
OUT=${LAB_OUT:?}
mkdir -p "$OUT"
. "$G/lib.sh"
. "$G/gadget.sh"

SERIAL=00008110001C2D3E4F5A6B7C
UDID=00008110-001C2D3E4F5A6B7C
SOCKET=/var/run/usbmuxd
BYTES=${PROF_BYTES:-64M}
CASES=${PROF_CASES:-up,down}
[ "$CASES" = none ] && CASES=  # timed starts only (PROF_STARTS)
TOOL=${PROF_TOOL:-none}
PERF=$P/lab/.cache/perf/usr/bin/perf
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)
DAEMON_PID=

note() { echo "[prof] $(uptime_s)s $*"; }
emit() { echo "$1" >> "$OUT/profile.jsonl"; echo "@@PROF|$1"; }

# stage_dir NAME: the directory PROF_STAGES gives NAME.
stage_dir() { echo "${PROF_STAGES:?}" | tr , '\n' | sed -n "s|^$1=||p"; }
stage_names() { echo "${PROF_STAGES:?}" | tr , '\n' | sed 's/=.*//'; }

# times_of PID: "utime stime" in ticks, all threads.
times_of() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }
# threads_of PID: "tid name utime stime" per thread.
threads_of() {
  for t in /proc/"$1"/task/*; do
    [ -r "$t/stat" ] || continue
    printf '%s %s ' "${t##*/}" "$(tr ' ' _ < "$t/comm")"
    sed 's/.*) //' "$t/stat" | awk '{ print $12, $13 }'
  done
}
# thread_split BEFORE AFTER: {"name":[user,sys],...} seconds in between.
thread_split() {
  awk -v t="$TICKS" 'NR == FNR { u[$1] = $3; s[$1] = $4; next }
    { du[$2] += $3 - u[$1]; ds[$2] += $4 - s[$1] }
    END { printf "{"; sep = ""; for (n in du) if (du[n] + ds[n] > 0) { printf "%s\"%s\":[%.2f,%.2f]", sep, n, du[n] / t, ds[n] / t; sep = "," }; printf "}" }' "$1" "$2"
}

# daemon_start STAGE_DIR: the stage's daemon: Debian's usbmuxd for the
# stage directory "usbmuxd"; tsmuxd with the stage's native addon, and with
# the stage's own JavaScript when it has a dist/ (a TypeScript change
# measured against another), else PROF_APP's.
daemon_start() {
  if [ "$1" = usbmuxd ]; then
    usbmuxd -f -v >> "$OUT/usbmuxd.log" 2>&1 &
  else
    local app=$APP
    [ -f "$1/dist/src/cli/main.js" ] && app=$1
    # PROF_CPU_PROF=1: V8's CPU profile of each tsmuxd run, written at its exit
    local prof=
    [ "${PROF_CPU_PROF:-0}" = 1 ] && prof="--cpu-prof --cpu-prof-dir=$OUT/cpuprof"
    TSMUXD_NATIVE_DIR=$1 node $prof "$app/dist/src/cli/main.js" -f -v -S "$SOCKET" -P NONE -C /var/lib/tsmuxd-lockdown \
      --tunnels off --wifi off >> "$OUT/tsmuxd.log" 2>&1 &
  fi
  DAEMON_PID=$!
}
daemon_stop() {
  kill "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null
  DAEMON_PID=
  rm -f "$SOCKET"
}
listed() { idevice_id -l 2>/dev/null | grep -qx "$UDID"; }

# tmpfs_copy NAME DIR: the stage as a package in the guest's tmpfs (its
# JavaScript or PROF_APP's, package.json, the production packages and the
# stage's addon); prints the copy's directory. Stages named *-tmpfs run from
# it, so their start reads no file over virtio-9p.
tmpfs_copy() {
  local to=/tmp/stage-$1 app=$APP m
  [ -f "$2/dist/src/cli/main.js" ] && app=$2
  if [ ! -d "$to" ]; then
    mkdir -p "$to/build/Release" "$to/node_modules"
    cp -a "$app/dist" "$app/package.json" "$to/"
    cp "$2/build/Release/tsmuxd.node" "$to/build/Release/"
    while read -r m; do [ -e "$to/$m" ] || { mkdir -p "$to/$(dirname "$m")"; cp -a "$P/$m" "$to/$m"; }; done < "$APP/prod-modules.txt"
  fi
  echo "$to"
}

# timed_start RUN STAGE DIR: starts the stage's daemon with start-probe.mjs
# polling its socket from before the start, and records seconds from the
# start to the socket and to the phone Attached on a Listen connection
# (kind "start"; pairedBefore: the daemon had the phone's pair record).
timed_start() {
  local run=$1 stage=$2 dir=$3 lockdown=/var/lib/tsmuxd-lockdown paired=false probe_out=$OUT/start-probe.out line
  [ "$dir" = usbmuxd ] && lockdown=/var/lib/lockdown
  [ -f "$lockdown/$UDID.plist" ] && paired=true
  : > "$probe_out"
  node "$G/start-probe.mjs" "$SOCKET" "$OUT/start-t0" > "$probe_out" 2>&1 &
  local probe=$!
  wait_until 60 grep -q '^ready' "$probe_out"
  /usr/bin/date +%s%3N > "$OUT/start-t0"  # coreutils: busybox date has no %N
  daemon_start "$dir"
  wait "$probe"
  line=$(grep '^{' "$probe_out" | tail -1)
  emit "{\"run\":\"$run\",\"stage\":\"$stage\",\"case\":\"start\",\"pairedBefore\":$paired,\"result\":{\"kind\":\"start\",${line#\{}}"
}
# daemon_settle: waits until the daemon is quiet (quiet_after, lib.sh),
# so that its one-off work after the listing is neither charged to the first
# case nor sampled by perf as if it were the data path.
daemon_settle() {
  local secs
  if secs=$(quiet_after "$DAEMON_PID"); then note "daemon settled after $secs s"; else note "daemon still busy after 30 s"; fi
}

# timed RUN STAGE CASE: one bench client for CASE, its lines recorded with
# the daemon's user/system split since the line before. One client per case,
# tried twice: under a loaded host the bench's 1.5 s stats request after a
# case can time out and end the client before the next case.
timed() {
  local run=$1 stage=$2 c=$3 try
  for try in 1 2; do
    timed_once "$run" "$stage" "$c" "$OUT/run$run-$stage-$c-$try"
    grep -qE '"kind":"(throughput|connect-rate|rtt)"' "$OUT/run$run-$stage-$c-$try.out" && return 0
    note "run $run $stage $c: no figure (try $try): $(tail -1 "$OUT/run$run-$stage-$c-$try.err")"
  done
  return 1
}

timed_once() {
  local run=$1 stage=$2 c=$3 base=$4 u0 s0
  set -- $(times_of "$DAEMON_PID")
  u0=$1 s0=$2
  threads_of "$DAEMON_PID" > "$base.t0"
  # PROF_CASE_SECONDS (600): a stalled transfer is dumped (stall_dump), not waited out.
  { timeout "${PROF_CASE_SECONDS:-600}" node "$APP/dist/src/cli/main.js" bench -S "UNIX:$SOCKET" --json --cases "$c" \
      --bytes "$BYTES" --repeats 1 --daemon-pid "$DAEMON_PID" --connect-count "${PROF_CONNECTS:-300}" --connect-echo \
      --concurrency 1 --rtt-count "${PROF_RTT_COUNT:-1000}" 2> "$base.err" || stall_dump "$base"; } |
    tee "$base.out" | while IFS= read -r line; do
    case $line in *'"kind":"throughput"'* | *'"kind":"connect-rate"'* | *'"kind":"rtt"'*) ;; *) continue ;; esac
    set -- $(times_of "$DAEMON_PID")
    threads_of "$DAEMON_PID" > "$base.t1"
    emit "{\"run\":\"$run\",\"stage\":\"$stage\",\"case\":\"$c\",\"utimeSec\":$(awk -v a="$u0" -v b="$1" -v t="$TICKS" 'BEGIN { printf "%.2f", (b - a) / t }'),\"stimeSec\":$(awk -v a="$s0" -v b="$2" -v t="$TICKS" 'BEGIN { printf "%.2f", (b - a) / t }'),\"threads\":$(thread_split "$base.t0" "$base.t1"),\"result\":$line}"
  done
}

# stall_dump BASE: where the daemon's threads sleep, the sim's counters and
# the kernel's last words, for a case that never finished.
stall_dump() {
  {
    for t in /proc/"$DAEMON_PID"/task/*; do
      echo "== $(cat "$t/comm") $(cat "$t/wchan" 2>/dev/null)"
      cat "$t/stack" 2>/dev/null
    done
    kill -HUP "$SIM_PID" 2>/dev/null; sleep 2; grep '"stats"' "$SIM_OUT" | tail -1
    dmesg | tail -30
  } > "$1.stall" 2>&1
  note "stalled: $1.stall"
}

# tooled STAGE CASE: the case once more with PROF_TOOL on the daemon.
tooled() {
  local stage=$1 c=$2 base=$OUT/$TOOL-$1-$2 tool
  case $TOOL in
    perf) "$PERF" record -q -e cpu-clock -F 499 -g -p "$DAEMON_PID" -o "$base.data" 2> "$base.rec.err" & ;;
    strace) strace -c -f -p "$DAEMON_PID" -o "$base" 2> "$base.err" & ;;
  esac
  tool=$!
  sleep 2  # attached before the bytes move
  timed "$TOOL" "$stage" "$c" > /dev/null
  kill -INT "$tool"
  wait "$tool"
  # perf report runs on the host (lab/usb-profile), with the guest's
  # kallsyms: under TCG it takes many minutes to read node's symbols.
  note "$TOOL $stage $c done"
}

# ---- main ---------------------------------------------------------------------

echo 0 > /proc/sys/kernel/kptr_restrict
echo -1 > /proc/sys/kernel/perf_event_paranoid
cat /proc/kallsyms > "$OUT/kallsyms"
: > "$OUT/profile.jsonl"
ln -sf "$P/lab/.cache/udev/bin/udevadm" /run/systemd-udevd
/run/systemd-udevd --daemon 2>> "$OUT/udevd.log"
mkdir -p /var/lib/lockdown /var/lib/tsmuxd-lockdown /var/lib/sim-state
emit "{\"kind\":\"guest\",\"kernel\":\"$(uname -r)\",\"usbfsMemoryMb\":$(cat /sys/module/usbcore/parameters/usbfs_memory_mb),\"bytes\":\"$BYTES\",\"window\":${PROF_WINDOW:-524288}}"

gadget_create "$SERIAL" > "$OUT/gadget.log" 2>&1 || { note "no gadget: $(tail -1 "$OUT/gadget.log")"; exit 1; }
SIM_OUT=$OUT/sim.out
gadget_start_sim "$SERIAL" --state-dir /var/lib/sim-state --window "${PROF_WINDOW:-524288}" >> "$OUT/gadget.log" 2>&1 ||
  { note "sim did not start: $(tail -1 "$OUT/gadget.log")"; exit 1; }
gadget_bind
wait_until 30 gadget_usbfs_ready "$SERIAL" || { note "05ac:12a8 never enumerated"; exit 1; }
"$P/lab/.cache/udev/bin/udevadm" settle -t 10

# With timed starts: what node alone costs here, and node loading the
# daemon command's modules (its addon included) without running it.
if [ "${PROF_STARTS:-0}" -gt 0 ]; then
  for i in 1 2 3; do
    t=$(uptime_s); node -e 0; n=$(elapsed "$t")
    t=$(uptime_s); node --input-type=module -e "await import('$APP/dist/src/cli/daemon-command.js')"; m=$(elapsed "$t")
    emit "{\"run\":\"$i\",\"stage\":\"node\",\"case\":\"start\",\"result\":{\"kind\":\"node-start\",\"nodeSec\":$n,\"importSec\":$m}}"
  done
fi

order=${PROF_ORDER:-$(n=$(stage_names | tr '\n' ,); echo "$n$n" | sed 's/,$//')}
run=0
[ "$order" = none ] && order=
for stage in $(echo "$order" | tr , ' '); do
  run=$((run + 1))
  dir=$(stage_dir "$stage")
  [ "$dir" = usbmuxd ] || [ -f "$dir/build/Release/tsmuxd.node" ] || { note "stage $stage: no $dir/build/Release/tsmuxd.node"; continue; }
  case $stage in *-tmpfs) dir=$(tmpfs_copy "$stage" "$dir") ;; esac
  # PROF_STARTS (0): timed starts before the cases, the last one's daemon serving them
  for i in $(seq 2 "${PROF_STARTS:-0}"); do timed_start "$run" "$stage" "$dir"; daemon_stop; done
  if [ "${PROF_STARTS:-0}" -gt 0 ]; then timed_start "$run" "$stage" "$dir"; else daemon_start "$dir"; fi
  if [ -z "$CASES" ]; then
    note "run $run: $stage ($dir): starts timed"
  elif wait_until 120 test -S "$SOCKET" && wait_until 300 listed; then
    daemon_settle
    note "run $run: $stage ($dir)"
    for c in $(echo "$CASES" | tr , ' '); do timed "$run" "$stage" "$c"; done
  else
    note "run $run: $stage never listed the phone"
  fi
  daemon_stop
done

if [ "$TOOL" != none ]; then
  for stage in $(echo "${PROF_TOOL_STAGES:-$(stage_names | tr '\n' ,)}" | tr , ' '); do
    daemon_start "$(stage_dir "$stage")"
    if wait_until 120 test -S "$SOCKET" && wait_until 300 listed; then
      daemon_settle
      for c in $(echo "$CASES" | tr , ' '); do tooled "$stage" "$c"; done
    fi
    daemon_stop
  done
fi
gadget_unbind
gadget_stop_sim
dmesg > "$OUT/dmesg.txt"
note "profile done"
