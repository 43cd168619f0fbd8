# Result bookkeeping for the guest's checks. Sourced by checks.sh.
#
# check PHASE NAME FUNCTION [ARGS...] runs FUNCTION with its output in
# $OUT/PHASE-NAME.log. Return 0 is PASS, 77 is SKIP, anything else FAIL; the
# function's last output line is the result's detail. Every result becomes
# one console line "@@RESULT|phase|name|status|seconds|detail", which the
# host (lab/run) turns into its table, and a line in $OUT/results.txt.

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# elapsed START: seconds since START (an uptime_s value), two decimals.
elapsed() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }

record() {  # record PHASE NAME STATUS SECONDS DETAIL
  line="@@RESULT|$1|$2|$3|$4|$(echo "$5" | tr '|\n' '/ ' | cut -c1-160)"
  echo "$line"
  echo "$line" >> "$OUT/results.txt"
}

check() {
  phase=$1 name=$2
  shift 2
  log="$OUT/$phase-$name.log"
  t=$(uptime_s)
  "$@" > "$log" 2>&1
  rc=$?
  secs=$(elapsed "$t")
  detail=$(grep -v '^[[:space:]]*$' "$log" | tail -1)
  case $rc in
    0) record "$phase" "$name" PASS "$secs" "$detail" ;;
    77) record "$phase" "$name" SKIP "$secs" "$detail" ;;
    *) record "$phase" "$name" FAIL "$secs" "$detail (exit $rc; log $log)" ;;
  esac
  return $rc
}

# skip_rest PHASE REASON NAME...: records each NAME as SKIP.
skip_rest() {
  phase=$1 reason=$2
  shift 2
  for n in "$@"; do record "$phase" "$n" SKIP 0.00 "$reason"; done
}

# wait_until SECONDS COMMAND...: polls COMMAND until it succeeds or SECONDS
# of uptime have passed (a deadline, not a count: each idevice_id run costs
# a good fraction of a second under TCG).
wait_until() {
  deadline=$(awk -v a="$(uptime_s)" -v n="$1" 'BEGIN { print a + n }')
  shift
  while :; do
    "$@" && return 0
    awk -v a="$(uptime_s)" -v d="$deadline" 'BEGIN { exit !(a >= d) }' && return 1
    sleep 0.2
  done
}

# quiet_after PID: waits (at most 30 s) until PID spends under 5 % of a
# second of CPU in one; prints the seconds that took (at once if PID is
# gone), or nothing, failing, if it never did. The benchmarks wait for this
# before their figures, so that what a daemon does once after its start
# (tsmuxd under TCG: loading the usb package for hotplug, a major V8 GC of
# the start's garbage) is not charged to the first case.
quiet_after() {
  local i before after ticks
  ticks=$(getconf CLK_TCK 2>/dev/null || echo 100)
  for i in $(seq 30); do
    before=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }')
    sleep 1
    after=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }')
    if [ -z "$before" ] || [ -z "$after" ] || [ $((after - before)) -lt $((ticks / 20 + 1)) ]; then
      echo "$i"
      return 0
    fi
  done
  return 1
}
