#!/bin/bash
# Prepares the host for the USB gadget lab, idempotently:
#  - installs QEMU, busybox, cpio, kmod, usbutils and the Debian usbmuxd and
#    libimobiledevice tools the guest runs (the guest mounts the host's /usr);
#  - downloads and unpacks (never installs) Debian's kernel image and udev
#    into lab/.cache: installing a kernel would run initramfs and bootloader
#    hooks on the host, and the guest only needs the files.
# Re-running it with everything present costs a few dpkg queries.
set -euo pipefail
LAB=$(cd "$(dirname "$0")" && pwd)
CACHE=${LAB_CACHE:-$LAB/.cache}
mkdir -p "$CACHE/debs"

log() { printf '[setup] %s\n' "$*" >&2; }

need=()
for p in qemu-system-x86 busybox-static cpio kmod usbutils usbmuxd libimobiledevice-utils libusbmuxd-tools; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# Unpacks one Debian package into $CACHE/<dir>, once per package version.
unpack() {
  local pkg=$1 dir=$2 stamp="$CACHE/$2.version" version
  version=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    apt-get update -qq
    version=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  fi
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pkg=$version" ] && [ -d "$CACHE/$dir" ]; then return; fi
  log "downloading $pkg $version"
  rm -rf "$CACHE/$dir" "$CACHE/debs/${pkg}_"*.deb
  (cd "$CACHE/debs" && apt-get download -q "$pkg=$version" >&2)
  dpkg -x "$CACHE/debs/${pkg}_"*.deb "$CACHE/$dir"
  echo "$pkg=$version" > "$stamp"
}

# linux-image-amd64 is a metapackage; the real image is what it depends on.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then
  apt-get update -qq
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$kpkg" ] || { log "cannot resolve linux-image-amd64"; exit 1; }
unpack "$kpkg" kernel
unpack udev udev

kv=$(ls "$CACHE/kernel/lib/modules" | head -1)
[ -f "$CACHE/kernel/boot/vmlinuz-$kv" ] || { log "no vmlinuz-$kv in the unpacked kernel"; exit 1; }
[ -x "$CACHE/udev/bin/udevadm" ] || { log "no udevadm in the unpacked udev"; exit 1; }
log "kernel $kv, udev $(cat "$CACHE/udev.version"), qemu $(dpkg-query -W -f='${Version}' qemu-system-x86)"
