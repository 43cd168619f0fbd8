# The simulated iPhone as a real USB device: a configfs gadget on dummy_hcd's
# UDC whose mux interface is a FunctionFS function served by the project's
# sim (node dist/src/cli/sim-peer-main.js --ffs). Sourced by checks.sh and
# bench.sh; needs $LAB_PROJECT and $OUT.
#
# Several phones (the benchmark's four-phone round, dummy_hcd num=N): each
# slot is its own gadget, FunctionFS instances and UDC. gadget_slot N selects
# one for the functions below; slot 0, the default, is the one phone the
# checks use, under the names it always had.
GADGET=/sys/kernel/config/usb_gadget/iphone
FFS_SUFFIX=
FFS_DIR=/dev/ffs-mux
GADGET_UDC=
SIM_PID=

# gadget_slot N: gadget iphoneN, FunctionFS instances muxN, ptpN... (the
# instance names are global, so each gadget needs its own), the (N+1)th UDC.
gadget_slot() {
  if [ "$1" = 0 ]; then FFS_SUFFIX= GADGET=/sys/kernel/config/usb_gadget/iphone
  else FFS_SUFFIX=$1 GADGET=/sys/kernel/config/usb_gadget/iphone$1
  fi
  FFS_DIR=/dev/ffs-mux$FFS_SUFFIX
  GADGET_UDC=$(ls /sys/class/udc | sed -n "$(($1 + 1))p")
}

# gadget_create SERIAL: the device as a phone in its initial mode presents it
# (src/sim/descriptor.ts): four configurations, the mux interface ("Apple USB
# Multiplexor", served by the sim) in 3 and 4, around it PTP, audio and Apple
# USB Ethernet interfaces that the sim holds as placeholders. Interfaces are
# numbered in link order, so PTP is 0 and the mux 1, as on a phone.
# LAB_CONFIGS=single: one configuration with only the mux interface.
FFS_FUNCS="mux ptp audio eth"
gadget_create() {
  mkdir -p "$GADGET" || return 1
  (
    cd "$GADGET" || exit 1
    echo 0x05ac > idVendor
    echo 0x12a8 > idProduct     # iPhone 5 and later, normal mode
    echo 0x1405 > bcdDevice
    echo 0x0200 > bcdUSB
    echo 0 > bDeviceClass       # usbmuxd's hotplug filter matches class 0
    echo 64 > bMaxPacketSize0
    mkdir -p strings/0x409
    echo "Apple Inc." > strings/0x409/manufacturer
    echo "iPhone" > strings/0x409/product
    echo "$1" > strings/0x409/serialnumber
    for f in $FFS_FUNCS; do mkdir -p "functions/ffs.$f$FFS_SUFFIX"; done
    config() {  # config N NAME FUNCTION...
      n=$1 name=$2
      shift 2
      mkdir -p "configs/c.$n/strings/0x409"
      echo "$name" > "configs/c.$n/strings/0x409/configuration"
      echo 500 > "configs/c.$n/MaxPower"
      for f in "$@"; do ln -s "functions/ffs.$f$FFS_SUFFIX" "configs/c.$n/" || exit 1; done
    }
    if [ "${LAB_CONFIGS:-phone}" = single ]; then
      config 1 "PTP + Apple Mobile Device" mux
    else
      config 1 "PTP" ptp
      config 2 "iPod USB Interface" audio
      config 3 "PTP + Apple Mobile Device" ptp mux
      config 4 "PTP + Apple Mobile Device + Apple USB Ethernet" ptp mux eth
    fi
  ) || return 1
  for f in $FFS_FUNCS; do
    mkdir -p "/dev/ffs-$f$FFS_SUFFIX"
    mount -t functionfs "$f$FFS_SUFFIX" "/dev/ffs-$f$FFS_SUFFIX" || return 1
  done
}

# gadget_start_sim SERIAL [SIM_ARG...]: the sim writes its descriptors to ep0
# and says so on its first stdout line; only then can the gadget bind. Its
# stdout goes to $SIM_OUT ($OUT/sim.out unless set), its stderr to $SIM_ERR
# ($OUT/sim.err unless set).
gadget_start_sim() { gadget_launch_sim "$@" && gadget_wait_sim; }

# gadget_launch_sim SERIAL [SIM_ARG...]: the sim started, not waited for
# (several start side by side: each node start is seconds under TCG).
gadget_launch_sim() {
  SIM_OUT=${SIM_OUT:-$OUT/sim.out}
  SIM_ERR=${SIM_ERR:-$OUT/sim.err}
  : > "$SIM_OUT"
  serial=$1
  shift
  set -- "$@" --ffs "$FFS_DIR" --serial "$serial"
  # every mounted function needs its descriptors before the UDC can bind
  [ "${LAB_CONFIGS:-phone}" = single ] ||
    set -- "$@" --ffs-interface "ptp=/dev/ffs-ptp$FFS_SUFFIX" --ffs-interface "audio=/dev/ffs-audio$FFS_SUFFIX" \
      --ffs-interface "ethernet=/dev/ffs-eth$FFS_SUFFIX"
  node "$LAB_PROJECT/dist/src/cli/sim-peer-main.js" "$@" >> "$SIM_OUT" 2>> "$SIM_ERR" &
  SIM_PID=$!
}

# gadget_wait_sim: the sim in $SIM_PID / $SIM_OUT has written its descriptors
# (within SIM_START_SECONDS, 60 unless set).
gadget_wait_sim() {
  i=0
  while ! grep -q '"descriptors":true' "$SIM_OUT" 2>/dev/null; do
    kill -0 "$SIM_PID" 2>/dev/null || { echo "sim exited: $(tail -3 "$SIM_ERR")"; return 1; }
    i=$((i + 1)); [ $i -gt $((${SIM_START_SECONDS:-60} * 10)) ] && { echo "sim wrote no descriptors in ${SIM_START_SECONDS:-60} s"; return 1; }
    sleep 0.1
  done
}

gadget_bind() { echo "${GADGET_UDC:-$(ls /sys/class/udc | head -1)}" > "$GADGET/UDC"; }
gadget_unbind() { echo "" > "$GADGET/UDC"; }

# gadget_usb_path SERIAL: the host side's sysfs device for our serial, if enumerated.
gadget_usb_path() {
  for d in /sys/bus/usb/devices/*; do
    [ -f "$d/serial" ] && [ "$(cat "$d/serial")" = "$1" ] && [ "$(cat "$d/idVendor")" = 05ac ] && { echo "$d"; return 0; }
  done
  return 1
}

# gadget_usbfs_ready SERIAL: the host stack has the device and its usbfs node.
gadget_usbfs_ready() {
  d=$(gadget_usb_path "$1") && [ -e "/dev/bus/usb/$(printf %03d "$(cat "$d/busnum")")/$(printf %03d "$(cat "$d/devnum")")" ]
}

gadget_stop_sim() {
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
  SIM_PID=
}
