#!/bin/bash
# Boots the lab guest under QEMU TCG and runs one script in it:
#   lab/boot.sh GUEST_SCRIPT [KEY=VALUE ...]
# GUEST_SCRIPT is a path inside the project; the guest mounts the project at
# the same absolute path, so paths mean the same on both sides. KEY=VALUEs
# reach the script as environment (through the kernel command line: no
# spaces, no dots in keys). The console goes to stdout, each line stamped with
# seconds since QEMU started. Exits with QEMU's status.
set -euo pipefail
LAB=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$LAB/.." && pwd)
CACHE=${LAB_CACHE:-$LAB/.cache}
script=${1:?usage: boot.sh GUEST_SCRIPT [KEY=VALUE ...]}
shift
KV=$(ls "$CACHE/kernel/lib/modules" | head -1)
initrd=$("$LAB/build-initramfs.sh")
case $script in /*) ;; *) script=$PWD/$script ;; esac

t0=$EPOCHREALTIME
set +e
# thread=multi: one host thread per vCPU. 2 vCPUs on a 2-core host; the
# guest's data path (sim, daemon, client) is three busy processes.
timeout --foreground "${LAB_TIMEOUT:-600}" qemu-system-x86_64 \
  -M pc -cpu max -smp "${LAB_SMP:-2}" -m "${LAB_MEM:-1536}" -accel tcg,thread=multi \
  -nodefaults -no-user-config -display none -serial stdio -no-reboot \
  -kernel "$CACHE/kernel/boot/vmlinuz-$KV" -initrd "$initrd" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 random.trust_cpu=on LAB_PROJECT=$PROJECT LAB_SCRIPT=$script $*" \
  -virtfs local,path=/usr,mount_tag=usr,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path=/etc,mount_tag=etc,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$PROJECT,mount_tag=project,security_model=none,multidevs=remap" \
  </dev/null 2>&1 |
while IFS= read -r line; do
  # bash's own clock: no fork per line, so stamps stay honest under load
  now=$EPOCHREALTIME
  us=$(( ${now/./} - ${t0/./} ))
  printf '[%4d.%02d] %s\n' $((us / 1000000)) $(((us / 10000) % 100)) "${line//$'\r'/}"
done
rc=${PIPESTATUS[0]}
exit "$rc"
