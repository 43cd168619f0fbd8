# The lab's test run inside the guest (booted by lab/run through boot.sh).
# The sim goes on the gadget once; then each daemon in $LAB_DAEMONS runs the
# same checks against it through Debian's libimobiledevice clients.
#
# Adding a daemon = defining three functions and naming it in LAB_DAEMONS:
#   daemon_NAME_available  prints why not and returns non-zero to SKIP the phase
#   daemon_NAME_start      starts it in the background on /var/run/usbmuxd
#   daemon_NAME_stop       stops it
P=$LAB_PROJECT
G=$P/lab/guest
OUT=${LAB_OUT:?}
mkdir -p "$OUT"
. "$G/lib.sh"
. "$G/gadget.sh"

SERIAL=${LAB_SERIAL:-00008110001C2D3E4F5A6B7C}
UDID=$(echo "$SERIAL" | sed 's/^\(........\)\(................\)$/\1-\2/')  # usbmuxd: dash after 8 of 24
ECHO_MIB=${LAB_ECHO_MIB:-64}
# Unplug/replug cycles under load for the storm check (0: no storm).
STORM=${LAB_STORM:-0}
# MiB each way through the CoreDeviceProxy tunnel (tsmuxd only).
TUNNEL_MIB=${LAB_TUNNEL_MIB:-8}
# MiB moved through hashed connections to the sim's sink and from its source (0: none).
INTEGRITY_MIB=${LAB_INTEGRITY_MIB:-0}
DAEMONS=$(echo "${LAB_DAEMONS:-usbmuxd,tsmuxd}" | tr , " ")  # commas: kernel command-line words have no spaces
SOCKET=/var/run/usbmuxd
DAEMON_PID=

# ---- the daemons ------------------------------------------------------------

daemon_usbmuxd_available() { command -v usbmuxd > /dev/null || { echo "usbmuxd is not installed"; return 1; }; }
daemon_usbmuxd_start() {
  # -f foreground, -v verbose; preflight on (it pairs through lockdownd itself)
  usbmuxd -f -v >> "$OUT/usbmuxd.log" 2>&1 &
  DAEMON_PID=$!
}
daemon_usbmuxd_stop() { kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=; }

daemon_tsmuxd_available() { :; }  # real USB through native/usb/libusb_*
daemon_tsmuxd_start() {
  # The checks compare the two daemons' usbmuxd behaviour: no automatic
  # tunnels, which usbmuxd does not have (the tunnel tests run on the host).
  node "$P/dist/src/cli/main.js" -f -v -S "$SOCKET" -P NONE -C /var/lib/lockdown --tunnels off --wifi off >> "$OUT/tsmuxd.log" 2>&1 &
  DAEMON_PID=$!
}
daemon_tsmuxd_stop() { kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=; }
# After the common checks: unplug under load, DeviceIDs, fds, a stranger.
daemon_tsmuxd_extra() {
  check "$PHASE" apis-after-listing c_apis_after_listing
  [ "$INTEGRITY_MIB" -gt 0 ] && check "$PHASE" "integrity-${INTEGRITY_MIB}MiB" c_integrity
  check "$PHASE" "tunnel-${TUNNEL_MIB}MiB" c_tunnel
  if ! check "$PHASE" unplug-busy c_unplug_busy; then
    skip_rest "$PHASE" "the unplug under load failed" replug-new-id no-fd-leak non-apple
    return
  fi
  check "$PHASE" replug-new-id c_replug_new_id
  check "$PHASE" no-fd-leak c_no_fd_leak
  [ "$STORM" -gt 0 ] && check "$PHASE" "unplug-storm-$STORM" c_unplug_storm
  check "$PHASE" non-apple c_non_apple
}

# ---- the checks ---------------------------------------------------------------

# tcp_listening PORT: a LISTEN socket on 127.0.0.1:PORT (state 0A in /proc/net/tcp)
tcp_listening() { grep -qi "0100007F:$(printf %04X "$1") 00000000:0000 0A" /proc/net/tcp; }
listed() { idevice_id -l 2>/dev/null | grep -qx "$UDID"; }
not_listed() { ! listed; }

c_enumerated() {
  wait_until 20 gadget_usbfs_ready "$SERIAL" || { echo "the host never enumerated 05ac:12a8 $SERIAL"; return 1; }
  d=$(gadget_usb_path "$SERIAL")
  v=$(lsusb -v -d 05ac:12a8 2>/dev/null)
  echo "$v"
  for want in "iSerial .*$SERIAL" "iManufacturer .*Apple Inc." "iProduct .*iPhone" \
      "bInterfaceClass *255" "bInterfaceSubClass *254" "bInterfaceProtocol *2" \
      "iInterface .*Apple USB Multiplexor" "wMaxPacketSize *0x0200"; do
    echo "$v" | grep -q "$want" || { echo "lsusb -v lacks '$want'"; return 1; }
  done
  n=$(echo "$v" | awk '$1 == "bNumConfigurations" { print $2; exit }')
  if [ "${LAB_CONFIGS:-phone}" = single ]; then
    [ "$n" = 1 ] && [ "$(echo "$v" | grep -c 'Transfer Type *Bulk')" -eq 2 ] || { echo "expected one configuration with two bulk endpoints"; return 1; }
  else
    [ "$n" = 4 ] || { echo "expected 4 configurations, lsusb says $n"; return 1; }
    for want in "iConfiguration .*PTP + Apple Mobile Device + Apple USB Ethernet" "iInterface .*PTP" "iInterface .*Apple USB Ethernet" "bInterfaceSubClass *253" "Transfer Type *Interrupt"; do
      echo "$v" | grep -q "$want" || { echo "lsusb -v lacks '$want'"; return 1; }
    done
  fi
  echo "$(basename "$d"): 05ac:12a8 at $(cat "$d/speed") Mb/s, $n configuration(s), ff/fe/02 'Apple USB Multiplexor' with bulk endpoints of 512"
}

# c_configuration: the daemon put the device in the highest configuration
# that has the mux interface (4 as laid out like a phone).
c_configuration() {
  want=4
  [ "${LAB_CONFIGS:-phone}" = single ] && want=1
  d=$(gadget_usb_path "$SERIAL") || { echo "the device is gone"; return 1; }
  got=$(cat "$d/bConfigurationValue")
  echo "bConfigurationValue $got"
  [ "$got" = "$want" ] || { echo "expected configuration $want, the device is in '$got'"; return 1; }
  echo "the daemon chose configuration $got of $(cat "$d/bNumConfigurations")"
}

# DAEMON_T0: when the daemon was last started, for the start-to-listed figure.
start_daemon() {
  DAEMON_T0=$(uptime_s)
  "daemon_${DAEMON}_start"
}

c_daemon_up() {
  start_daemon
  # A deadline, not a cost: node starts slowly under TCG on a busy host.
  wait_until 120 test -S "$SOCKET" || { echo "no socket at $SOCKET after 120 s"; return 1; }
  echo "listening on $SOCKET (pid $DAEMON_PID)"
}

c_listed() {
  t=$(uptime_s)
  wait_until "${1:-60}" listed || { echo "idevice_id -l: '$(idevice_id -l 2>&1 | tr '\n' ' ')', no $UDID"; return 1; }
  echo "idevice_id -l lists $UDID after $(elapsed "$t") s, $(elapsed "$DAEMON_T0") s after the daemon started"
}

# The tunnel APIs (on by default) wait until the phones plugged in at start
# are listed (at most LISTED_WAIT_MS, 10 s, which the first start's pairing
# outlasts), so that their modules do not load during the first preflight: in
# the log of the last start (the restart check's, a paired phone) the phone's
# "attached" comes before the API line.
c_apis_after_listing() {
  from=$(grep -n 'listening on' "$OUT/tsmuxd.log" | tail -1 | cut -d: -f1)
  [ -n "$from" ] || { echo "no start in tsmuxd.log"; return 1; }
  tail -n +"$from" "$OUT/tsmuxd.log" > "$OUT/tsmuxd-last-start.log"
  attached=$(grep -n 'device [0-9]* attached' "$OUT/tsmuxd-last-start.log" | head -1 | cut -d: -f1)
  api=$(grep -n "tunneld API on" "$OUT/tsmuxd-last-start.log" | head -1 | cut -d: -f1)
  [ -n "$attached" ] && [ -n "$api" ] || { echo "no 'attached' ($attached) or tunneld API line ($api) after line $from of tsmuxd.log"; return 1; }
  [ "$attached" -lt "$api" ] || { echo "the tunneld API started (line $api after the start) before the phone was listed (line $attached)"; return 1; }
  echo "the last start listed the phone, then started the tunneld API (lines $attached and $api after the start at line $from)"
}

c_info_simple() {
  out=$(timeout 60 ideviceinfo -s -u "$UDID" 2>&1)
  echo "$out"
  echo "$out" | grep -qx 'ProductVersion: 17.5' || { echo "no ProductVersion: 17.5"; return 1; }
  echo "ideviceinfo -s: ProductVersion 17.5, $(echo "$out" | grep -c .) keys"
}

c_info_full() {
  out=$(timeout 60 ideviceinfo -u "$UDID" 2>&1)
  echo "$out"
  echo "$out" | grep -qx 'ProductVersion: 17.5' || { echo "no ProductVersion: 17.5"; return 1; }
  echo "$out" | grep -qx "UniqueDeviceID: $UDID" || { echo "no UniqueDeviceID: $UDID"; return 1; }
  echo "ideviceinfo (session, TLS): ProductVersion 17.5, $(echo "$out" | grep -c .) lines"
}

c_pair() {
  out=$(timeout 60 idevicepair -u "$UDID" "$1" 2>&1)
  echo "$out"
  echo "$out" | grep -q '^SUCCESS' || return 1
}

c_echo() {
  port=27015
  iproxy "$port:7" -u "$UDID" > "$OUT/$PHASE-iproxy.log" 2>&1 &
  ip=$!
  wait_until 10 tcp_listening "$port"
  # who spends the guest's CPU mid-transfer (TCG makes every process dear)
  (sleep 8; top -b -n 1 > "$OUT/$PHASE-top.txt" 2>&1) &
  r=$(ECHO_TIMEOUT_MS=150000 node "$G/echo-check.mjs" "$port" "$ECHO_MIB" 2>&1)
  rc=$?
  # the sim's data-plane counters after the transfer (SIGHUP: one JSON line)
  kill -HUP "$SIM_PID" 2>/dev/null
  sleep 1
  echo "sim after the transfer: $(grep '"stats"' "$OUT/sim.out" | tail -1)"
  kill "$ip" 2>/dev/null
  wait "$ip" 2>/dev/null
  echo "$r"
  [ $rc -eq 0 ] || return 1
  echo "$r" | sed 's/.*"mib":\([0-9]*\),"seconds":\([0-9.]*\),"mibPerSecond":\([0-9.]*\),"sha256Sent":"\(........\).*/\1 MiB each way in \2 s = \3 MiB\/s, SHA-256 equal (\4...)/'
}

c_restart() {
  "daemon_${DAEMON}_stop"
  start_daemon
  listed_line=$(c_listed 60) || { echo "$listed_line"; return 1; }
  c_info_simple > /dev/null || { echo "ideviceinfo -s failed after the restart"; return 1; }
  echo "after a daemon restart: listed ${listed_line#*lists $UDID after }; ideviceinfo -s answers"
}

c_unplug() {
  gadget_unbind
  wait_until 15 not_listed || { echo "still listed 15 s after the UDC was unbound"; return 1; }
  echo "UDC unbound: gone from idevice_id -l"
}

c_replug() {
  gadget_bind
  c_listed 60 || return 1
  c_info_simple > /dev/null || { echo "ideviceinfo -s failed after the replug"; return 1; }
  echo "UDC bound again: listed, ideviceinfo -s answers (a new mux session)"
}

# ---- tsmuxd's own checks ------------------------------------------------------

probe() { node "$G/mux-probe.mjs" "$@"; }
# device_id: the DeviceID ListDevices gives our UDID, empty if none.
device_id() { probe devices 2>/dev/null | tr '{' '\n' | sed -n "s/.*\"deviceId\":\([0-9]*\),\"serial\":\"$UDID\".*/\1/p"; }
daemon_fds() { ls "/proc/$DAEMON_PID/fd" 2>/dev/null | wc -l; }
sim_fds() { ls "/proc/$SIM_PID/fd" 2>/dev/null | wc -l; }
# rss_kib PID: resident memory in KiB
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
daemon_usbfs_fds() { ls -l "/proc/$DAEMON_PID/fd" 2>/dev/null | grep -c ' -> /dev/bus/usb/'; }
both_flowing() { grep -q flowing "$OUT/$PHASE-idle.out" && grep -q flowing "$OUT/$PHASE-stream.out"; }
fds_back() { [ "$(daemon_fds)" -eq "$FDS_BEFORE" ]; }
stranger_enumerated() {
  for d in /sys/bus/usb/devices/*; do
    [ -f "$d/serial" ] && [ "$(cat "$d/serial")" = "$SERIAL" ] && [ "$(cat "$d/idVendor")" = 1234 ] && { STRANGER=$d; return 0; }
  done
  return 1
}

# Two usbmux connections to the echo port when the UDC is unbound: one idle
# (all its bytes echoed, nothing unread) must get a clean EOF; one writing
# without pause must be ended too. The daemon stays up.
c_unplug_busy() {
  ID_BEFORE=$(device_id)
  FDS_BEFORE=$(daemon_fds)
  [ -n "$ID_BEFORE" ] || { echo "ListDevices has no $UDID"; return 1; }
  probe idle "$UDID" 7 > "$OUT/$PHASE-idle.out" 2>&1 &
  idle=$!
  probe stream "$UDID" 7 > "$OUT/$PHASE-stream.out" 2>&1 &
  stream=$!
  wait_until 120 both_flowing || { echo "the probes' bytes never came back"; kill $idle $stream 2>/dev/null; return 1; }
  sleep 1
  gadget_unbind
  t=$(uptime_s)
  wait $idle; idle_rc=$?
  wait $stream; stream_rc=$?
  cat "$OUT/$PHASE-idle.out" "$OUT/$PHASE-stream.out"
  kill -0 "$DAEMON_PID" 2>/dev/null || { echo "the daemon died"; return 1; }
  [ $idle_rc -eq 0 ] && grep -q '"end":"eof"' "$OUT/$PHASE-idle.out" || { echo "the idle client got no clean EOF (rc $idle_rc)"; return 1; }
  [ $stream_rc -eq 0 ] || { echo "the streaming client was not ended (rc $stream_rc)"; return 1; }
  wait_until 15 not_listed || { echo "still listed after the unplug"; return 1; }
  how=$(sed -n 's/.*"end":"\([a-z]*\)"\(,"code":"\([A-Z]*\)"\)\{0,1\}.*/\1 \3/p' "$OUT/$PHASE-stream.out")
  echo "unplugged mid-transfer: idle client EOF, streaming client ended ($how) within $(elapsed "$t") s, daemon up, device gone"
}

c_replug_new_id() {
  gadget_bind
  c_listed 60 || return 1
  id=$(device_id)
  [ -n "$id" ] && [ "$id" != "$ID_BEFORE" ] || { echo "DeviceID '$id' after the replug, '$ID_BEFORE' before"; return 1; }
  c_info_simple > /dev/null || { echo "ideviceinfo -s failed after the replug"; return 1; }
  echo "replugged: DeviceID $ID_BEFORE -> $id, ideviceinfo -s answers"
}

# Everything the unplug opened (probes, usbfs handle, mux session) is closed
# again once the device is back: the fd count returns to what it was.
c_no_fd_leak() {
  wait_until 15 fds_back || { echo "daemon fds: $FDS_BEFORE before, $(daemon_fds) now"; ls -l "/proc/$DAEMON_PID/fd"; return 1; }
  echo "daemon fds: $FDS_BEFORE before the unplug, $(daemon_fds) after the replug"
}

# STORM cycles of the unplug under load and the replug: the daemon stays up,
# both clients end every time, every replug is a new DeviceID, and the fd
# count at the end is the one before the first cycle.
c_unplug_storm() {
  fds_start=$(daemon_fds)
  rss_start=$(rss_kib "$DAEMON_PID")
  sim_fds_start=$(sim_fds)
  storm_start=$(uptime_s)  # not $t: the cycles' own checks set that
  eofs=0
  echo "cycle daemon_fds daemon_rss_kib sim_fds sim_rss_kib stream_end" > "$OUT/$PHASE-storm.tsv"
  for i in $(seq 1 "$STORM"); do
    c_unplug_busy > "$OUT/$PHASE-storm-$i.out" 2>&1 || { echo "cycle $i, unplug: $(tail -1 "$OUT/$PHASE-storm-$i.out")"; return 1; }
    c_replug_new_id >> "$OUT/$PHASE-storm-$i.out" 2>&1 || { echo "cycle $i, replug: $(tail -1 "$OUT/$PHASE-storm-$i.out")"; return 1; }
    end=$(sed -n 's/.*"end":"\([a-z]*\)".*/\1/p' "$OUT/$PHASE-stream.out")
    [ "$end" = eof ] && eofs=$((eofs + 1))
    echo "$i $(daemon_fds) $(rss_kib "$DAEMON_PID") $(sim_fds) $(rss_kib "$SIM_PID") $end" >> "$OUT/$PHASE-storm.tsv"
    [ "$i" -eq 1 ] && rss_warm=$(rss_kib "$DAEMON_PID")
  done
  FDS_BEFORE=$fds_start
  wait_until 15 fds_back || { echo "daemon fds: $fds_start before the storm, $(daemon_fds) after"; return 1; }
  rss_end=$(rss_kib "$DAEMON_PID")
  sim_fds_end=$(sim_fds)
  cat "$OUT/$PHASE-storm.tsv"
  [ "$eofs" -eq "$STORM" ] || { echo "the streaming client got EOF in $eofs of $STORM cycles"; return 1; }
  [ "$sim_fds_end" -eq "$sim_fds_start" ] || { echo "sim fds: $sim_fds_start before the storm, $sim_fds_end after"; return 1; }
  # Allocator and JIT warm-up after the first cycle are not a leak; growth
  # over the 49 cycles after it would be.
  [ $((rss_end - rss_warm)) -lt 16384 ] || { echo "daemon RSS grew from $rss_warm KiB after cycle 1 to $rss_end KiB"; return 1; }
  echo "$STORM unplug/replug cycles under load in $(elapsed "$storm_start") s: daemon up, both clients got EOF every time, new DeviceID each time; daemon fds $fds_start -> $(daemon_fds), RSS $rss_start KiB -> $rss_warm after cycle 1 -> $rss_end KiB; sim fds $sim_fds_start -> $sim_fds_end"
}

# INTEGRITY_MIB through hashed connections, half up to the sink and half
# down from the source: every digest must match.
c_integrity() {
  node "$G/integrity.mjs" "$UDID" "$INTEGRITY_MIB" 4 > "$OUT/$PHASE-integrity.out" 2>&1
  rc=$?
  cat "$OUT/$PHASE-integrity.out"
  [ $rc -eq 0 ] || { echo "integrity run failed (rc $rc)"; return 1; }
  tail -1 "$OUT/$PHASE-integrity.out" | sed 's/^/summary: /'
}

# The CoreDeviceProxy tunnel over real libusb: TunnelStart, TUNNEL_MIB MiB
# each way through TunnelConnect to the sim's sink and source, hashed.
c_tunnel() {
  node "$G/tunnel-check.mjs" "$UDID" "$TUNNEL_MIB" > "$OUT/$PHASE-tunnel.out" 2>&1
  rc=$?
  cat "$OUT/$PHASE-tunnel.out"
  [ $rc -eq 0 ] || { echo "tunnel check failed (rc $rc)"; return 1; }
  grep '"direction"' "$OUT/$PHASE-tunnel.out" | sed 's/^/result: /'
}

# The same gadget as vendor 1234: tsmuxd must not open it (no usbfs fd, no
# open attempt in its log) nor list it. Then back to Apple.
c_non_apple() {
  opens=$(grep -c 'opening the USB device' "$OUT/tsmuxd.log")
  gadget_unbind
  wait_until 15 not_listed || { echo "still listed after unbinding"; return 1; }
  echo 0x1234 > "$GADGET/idVendor"
  gadget_bind
  wait_until 20 stranger_enumerated || { echo "the host never enumerated 1234:12a8"; return 1; }
  sleep 3
  fds=$(daemon_usbfs_fds)
  now=$(grep -c 'opening the USB device' "$OUT/tsmuxd.log")
  config=$(cat "$STRANGER/bConfigurationValue")
  listed && { echo "1234:12a8 is listed"; return 1; }
  [ "$fds" -eq 0 ] || { echo "the daemon holds $fds usbfs fd(s) with only 1234:12a8 plugged in"; return 1; }
  [ "$now" -eq "$opens" ] || { echo "the daemon tried to open 1234:12a8"; return 1; }
  gadget_unbind
  echo 0x05ac > "$GADGET/idVendor"
  gadget_bind
  c_listed 60 > /dev/null || { echo "05ac:12a8 not listed again after the stranger"; return 1; }
  echo "1234:12a8 (configuration $config) never opened: 0 usbfs fds, no open attempt, not listed; back as 05ac: listed"
}

run_phase() {
  DAEMON=$1
  PHASE=$1
  names="daemon-up listed configuration ideviceinfo-s ideviceinfo pair validate echo-${ECHO_MIB}MiB restart unplug replug"
  if ! why=$("daemon_${DAEMON}_available"); then
    skip_rest "$PHASE" "$why" $names
    return
  fi
  rm -rf /var/lib/lockdown && mkdir -p /var/lib/lockdown
  if ! check "$PHASE" daemon-up c_daemon_up; then
    skip_rest "$PHASE" "the daemon did not start" listed configuration ideviceinfo-s ideviceinfo pair validate "echo-${ECHO_MIB}MiB" restart unplug replug
    "daemon_${DAEMON}_stop"
    return
  fi
  if check "$PHASE" listed c_listed; then
    check "$PHASE" configuration c_configuration
    check "$PHASE" ideviceinfo-s c_info_simple
    check "$PHASE" ideviceinfo c_info_full
    check "$PHASE" pair c_pair pair
    check "$PHASE" validate c_pair validate
    check "$PHASE" "echo-${ECHO_MIB}MiB" c_echo
    check "$PHASE" restart c_restart
  else
    skip_rest "$PHASE" "the device was never listed" configuration ideviceinfo-s ideviceinfo pair validate "echo-${ECHO_MIB}MiB" restart
  fi
  check "$PHASE" unplug c_unplug
  check "$PHASE" replug c_replug
  if command -v "daemon_${DAEMON}_extra" > /dev/null; then "daemon_${DAEMON}_extra"; fi
  "daemon_${DAEMON}_stop"
  rm -f "$SOCKET"
}

# ---- main -----------------------------------------------------------------------

echo "[guest] checks start at $(uptime_s)s; output in $OUT"
: > "$OUT/results.txt"
# udevd from the unpacked Debian package: libusb's hotplug events come from
# it, and the host's usbmuxd rule (bConfigurationValue=0 on add) runs in it,
# as on a Debian machine with a phone plugged in.
ln -sf "$P/lab/.cache/udev/bin/udevadm" /run/systemd-udevd
/run/systemd-udevd --daemon 2>> "$OUT/udevd.log"

t=$(uptime_s)
if gadget_create "$SERIAL" > "$OUT/gadget.log" 2>&1 && gadget_start_sim "$SERIAL" >> "$OUT/gadget.log" 2>&1 && gadget_bind >> "$OUT/gadget.log" 2>&1; then
  record gadget sim-on-ffs PASS "$(elapsed "$t")" "sim wrote descriptors to $FFS_DIR, gadget bound to $(cat "$GADGET/UDC")"
  check gadget enumerated c_enumerated
  "$P/lab/.cache/udev/bin/udevadm" settle -t 10
  for d in $DAEMONS; do run_phase "$d"; done
else
  record gadget sim-on-ffs FAIL "$(elapsed "$t")" "$(tail -1 "$OUT/gadget.log")"
fi
gadget_stop_sim
cp /sys/kernel/debug/usb/devices "$OUT/usb-devices.txt" 2>/dev/null
dmesg > "$OUT/dmesg.txt"
echo "[guest] checks done at $(uptime_s)s"
