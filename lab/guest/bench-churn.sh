# The benchmark's churn check (sourced by bench.sh; run by bench-multi.sh in
# round 1 with the daemon up and every phone listed): phones 1 .. PHONES-1
# stream hashed data (integrity.mjs, one connection to the sink and one from
# the source each, each transfer on a fresh Connect, repeated until told to
# stop) while phone 0 is unplugged and replugged BENCH_CHURN_CYCLES times by
# unbinding and binding its UDC. Each cycle waits until idevice_id -l drops
# phone 0 and then lists it again (both daemons preflight through lockdown
# before they list a phone, so a listing is a working mux session). It is
# ok when every cycle did so, every transfer's digests at both ends are
# equal, and the daemon is still up. One {"kind":"check"} record, with the
# cycle times, the streams' summary and, when it failed, why.
CHURN_CYCLES=${BENCH_CHURN_CYCLES:-5}
CHURN_DAEMONS=${BENCH_CHURN_DAEMONS:-usbmuxd,tsmuxd}
# MiB per hashed transfer
CHURN_MIB=${BENCH_CHURN_MIB:-4}

churn_wanted() {
  [ "$CHURN_CYCLES" -gt 0 ] && [ "$PHONES" -ge 2 ] || return 1
  case ",$CHURN_DAEMONS," in *",$1,"*) return 0 ;; esac
  return 1
}

udid_listed() { idevice_id -l 2>/dev/null | grep -qx "$1"; }
udid_gone() { ! udid_listed "$1"; }
streams_started() { grep -q '"streaming":true' "$1"; }
not_running() { ! kill -0 "$1" 2>/dev/null; }

churn_check() {
  local name base stop streamed churned streams t0 cycles times ok why c0 gone back rc summary
  name=$1
  base=$OUT/churn-$name
  stop=$base.stop
  rm -f "$stop"
  streamed=$(for s in $(seq 1 $((PHONES - 1))); do slot_udid "$s"; done | tr '\n' , | sed 's/,$//')
  churned=$(slot_udid 0)
  note "churn ($name): streams to $streamed, $CHURN_CYCLES unplug/replug cycles of $churned"
  # 2 connections per phone, CHURN_MIB each per transfer
  INTEGRITY_UNTIL=$stop node "$G/integrity.mjs" "$streamed" $((2 * CHURN_MIB)) 2 > "$base.out" 2> "$base.err" &
  streams=$!
  ok=true why= cycles=0 times=
  t0=$(uptime_s)
  if ! wait_until 180 streams_started "$base.out"; then
    ok=false why="the streams never started: $(tail -2 "$base.out" "$base.err" | tr '\n"\\' " '/")"
  fi
  gadget_slot 0
  while [ "$ok" = true ] && [ "$cycles" -lt "$CHURN_CYCLES" ]; do
    c0=$(uptime_s)
    gadget_unbind
    wait_until 30 udid_gone "$churned" || { ok=false why="cycle $((cycles + 1)): $churned still listed 30 s after its UDC was unbound"; break; }
    gone=$(elapsed "$c0")
    c0=$(uptime_s)
    gadget_bind
    wait_until 120 udid_listed "$churned" || { ok=false why="cycle $((cycles + 1)): $churned not listed again 120 s after its UDC was bound"; break; }
    back=$(elapsed "$c0")
    cycles=$((cycles + 1))
    times="$times${times:+,}[$gone,$back]"
    note "churn ($name): cycle $cycles: gone after $gone s, listed again after $back s"
    # streams end only when told to, or at their first failure
    not_running "$streams" && { ok=false why="the streams ended during cycle $cycles"; break; }
  done
  touch "$stop"
  if ! wait_until 300 not_running "$streams"; then
    kill "$streams" 2>/dev/null
    ok=false why="${why:-the streams did not finish within 300 s of the stop}"
  fi
  wait "$streams"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    ok=false
    why="${why:+$why; }streams exit $rc: $(grep '"ok":false' "$base.out" | head -3 | tr '\n"\\' " '/")"
  fi
  kill -0 "$DAEMON_PID" 2>/dev/null || { ok=false why="${why:+$why; }the daemon died"; }
  summary=$(tail -1 "$base.out")
  case $summary in '{"ok":'*'}') ;; *) summary=null ;; esac
  emit "{\"kind\":\"check\",\"name\":\"churn-$name\",\"ok\":$ok,\"round\":$ROUND,\"path\":\"$name\"$REC_TAG,\"cycles\":$cycles,\"cyclesWanted\":$CHURN_CYCLES,\"cycleSeconds\":[$times],\"streamedPhones\":$((PHONES - 1)),\"mibPerTransfer\":$CHURN_MIB,\"streams\":$summary,\"seconds\":$(elapsed "$t0"),\"detail\":\"$why\"}"
  note "churn ($name): ok=$ok $why"
}
