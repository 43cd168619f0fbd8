# The benchmark's several-phone round (sourced by bench.sh): BENCH_PHONES
# gadgets, one per dummy_hcd controller (the guest boots with
# LAB_DUMMY_HCD_NUM=BENCH_PHONES), each with its own serial, FunctionFS
# mounts and sim. Per round the sims start once; then for each daemon: all
# phones bound and enumerated, the daemon started, the seconds until
# idevice_id -l lists them all, then `tsmuxd bench --cases devices`:
# BENCH_MULTI_BYTES per phone up to every sink at once, then down from every
# source at once (aggregate MB/s, the daemon's CPU s/GiB over all of it).
# In round 1 the churn check (bench-churn.sh) follows, with the same daemon.
PHONES=${BENCH_PHONES:-4}
MULTI_BYTES=${BENCH_MULTI_BYTES:-${BENCH_BYTES:-67108864}}
MULTI_SIM_PIDS=

# Slot 0 is the one phone of the other rounds; slot N's serial ends in N
# instead of its last digit (24 hex digits, as the phone's).
slot_serial() { if [ "$1" = 0 ]; then echo "$SERIAL"; else echo "${SERIAL%?}$1"; fi; }
slot_udid() { slot_serial "$1" | sed 's/^\(........\)\(................\)$/\1-\2/'; }
slot_state() { if [ "$1" = 0 ]; then echo /var/lib/sim-state; else echo "/var/lib/sim-state-$1"; fi; }
slots() { seq 0 $((PHONES - 1)); }
all_udids() { for s in $(slots); do slot_udid "$s"; done; }
daemon_paths() { for p in $PATHS; do case $p in usbmuxd | tsmuxd) echo "$p" ;; esac; done; }

# phones_create: the gadgets of slots 1 .. PHONES-1 (bench.sh makes slot 0's).
phones_create() {
  have=$(ls /sys/class/udc | wc -l)
  [ "$PHONES" -le 10 ] || { echo "BENCH_PHONES is at most 10 (one serial digit)"; return 1; }
  [ "$have" -ge "$PHONES" ] || { echo "$have UDC(s) for $PHONES phones: boot with LAB_DUMMY_HCD_NUM=$PHONES"; return 1; }
  for s in $(seq 1 $((PHONES - 1))); do
    gadget_slot "$s"
    gadget_create "$(slot_serial "$s")" || { echo "the gadget of phone $s could not be made"; gadget_slot 0; return 1; }
  done
  gadget_slot 0
}

# phones_start_sims: one sim per slot, all started before any is waited for
# (a node start is seconds under TCG); each keeps its own state dir.
phones_start_sims() {
  MULTI_SIM_PIDS=
  for s in $(slots); do
    gadget_slot "$s"
    SIM_OUT=$OUT/sim-r$ROUND-phone$s.out SIM_ERR=$OUT/sim-phone$s.err
    gadget_launch_sim "$(slot_serial "$s")" --state-dir "$(slot_state "$s")"
    eval "SIM_PID_$s=\$SIM_PID"
    MULTI_SIM_PIDS="$MULTI_SIM_PIDS $SIM_PID"
  done
  ok=0
  SIM_START_SECONDS=$((60 * PHONES))
  for s in $(slots); do
    gadget_slot "$s"
    SIM_OUT=$OUT/sim-r$ROUND-phone$s.out SIM_ERR=$OUT/sim-phone$s.err
    eval "SIM_PID=\$SIM_PID_$s"
    gadget_wait_sim || { echo "phone $s: $(tail -1 "$SIM_ERR")"; ok=1; }
  done
  SIM_START_SECONDS= SIM_ERR= SIM_PID=
  gadget_slot 0
  return $ok
}

phones_stop_sims() {
  for p in $MULTI_SIM_PIDS; do kill "$p" 2>/dev/null; done
  for p in $MULTI_SIM_PIDS; do wait "$p" 2>/dev/null; done
  MULTI_SIM_PIDS=
}

all_enumerated() { for s in $(slots); do gadget_usbfs_ready "$(slot_serial "$s")" || return 1; done; }

# phones_bind: every gadget on its UDC, enumerated, udev's rule applied.
phones_bind() {
  for s in $(slots); do gadget_slot "$s"; gadget_bind; done
  gadget_slot 0
  wait_until 60 all_enumerated || return 1
  "$P/lab/.cache/udev/bin/udevadm" settle -t 20
}

phones_unbind() {
  for s in $(slots); do gadget_slot "$s"; gadget_unbind 2>/dev/null; done
  gadget_slot 0
}

# listed_count: how many of the round's phones idevice_id -l lists.
listed_count() {
  l=$(idevice_id -l 2>/dev/null)
  c=0
  for u in $(all_udids); do echo "$l" | grep -qx "$u" && c=$((c + 1)); done
  echo $c
}
all_listed() { [ "$(listed_count)" -eq "$PHONES" ]; }

# phones_daemon NAME: one daemon against all the phones at once.
phones_daemon() {
  local name paired t0 secs
  name=$1
  if [ "$name" = usbmuxd ] && ! command -v usbmuxd > /dev/null; then
    note "usbmuxd is not installed"
    return 1
  fi
  if ! phones_bind; then
    emit "{\"round\":$ROUND,\"path\":\"$name\"$REC_TAG,\"case\":\"all\",\"error\":\"not every phone enumerated within 60 s\"}"
    phones_unbind
    return 1
  fi
  paired=$(paired_count "$(daemon_lockdown_dir "$name")" $(all_udids))
  preflight_mark "$name"
  t0=$(uptime_s)
  daemon_start "$name"
  if wait_until 120 test -S "$SOCKET" && wait_until "${BENCH_LISTED_SECONDS:-300}" all_listed; then
    secs=$(elapsed "$t0")
    note "$name lists all $PHONES phones $secs s after its start"
    listed_record "$name" "$secs" "$paired" "$(paired_count "$(daemon_lockdown_dir "$name")" $(all_udids))"
    # --bytes is the total; the client splits it evenly over the phones
    settle "$name"
    measure "$name" $CLIENT -S "UNIX:$SOCKET" --json --bytes $((MULTI_BYTES * PHONES)) --repeats 1 --cases devices --daemon-pid "$DAEMON_PID"
    [ "$ROUND" = 1 ] && churn_wanted "$name" && churn_check "$name"
  else
    got=$(idevice_id -l 2>&1 | tr '\n"\\' " '/")
    note "$name did not list all $PHONES phones: idevice_id -l says '$got'"
    listed_record "$name" null "$paired" "$(paired_count "$(daemon_lockdown_dir "$name")" $(all_udids))"
    emit "{\"round\":$ROUND,\"path\":\"$name\"$REC_TAG,\"case\":\"all\",\"error\":\"$(listed_count) of $PHONES phones listed after ${BENCH_LISTED_SECONDS:-300} s (daemon pid $DAEMON_PID; idevice_id -l: $got)\"}"
  fi
  daemon_stop
  phones_unbind
}

# round_phones: the several-phone round, each daemon of BENCH_PATHS in turn
# on the same sims (a rebind is a fresh mux session for each).
round_phones() {
  REC_TAG=",\"phones\":$PHONES" FILE_TAG=-phones$PHONES
  note "round $ROUND: $PHONES phones"
  # not in $(...): the sims must be this shell's children, their pids its variables
  if phones_start_sims > "$OUT/r$ROUND-phones-start.log" 2>&1; then
    SIM_PIDS=$MULTI_SIM_PIDS
    for p in $(daemon_paths); do phones_daemon "$p"; done
  else
    why=$(tr '\n"\\' " '/" < "$OUT/r$ROUND-phones-start.log")
    note "the $PHONES sims did not all start: $why"
    emit "{\"round\":$ROUND,\"path\":\"all\"$REC_TAG,\"case\":\"all\",\"error\":\"the sims did not all start: $why\"}"
  fi
  phones_stop_sims
  SIM_PIDS= REC_TAG= FILE_TAG=
}
