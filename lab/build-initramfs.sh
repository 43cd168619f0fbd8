#!/bin/bash
# Packs the guest's initramfs: busybox-static, our PID 1 (guest/init) and the
# kernel modules the lab needs, each in dependency order. Everything else
# (node, usbmuxd, the project) comes from the host over 9p at run time, so the
# image stays under 2 MB and is rebuilt only when one of its inputs changes.
#   lab/build-initramfs.sh  ->  prints the image's path
set -euo pipefail
LAB=$(cd "$(dirname "$0")" && pwd)
CACHE=${LAB_CACHE:-$LAB/.cache}
KROOT=$CACHE/kernel
KV=$(ls "$KROOT/lib/modules" | head -1)
OUT=$CACHE/initramfs.cpio.gz
# virtio-pci and 9p carry the host's /usr, /etc and the project; configfs,
# libcomposite and usb_f_fs make the gadget; dummy_hcd is both its UDC and
# the host controller the guest's usbfs sees it on.
MODULES="virtio_pci 9pnet_virtio 9p configfs dummy_hcd libcomposite usb_f_fs"

stamp=$( { echo "$KV $MODULES"; sha256sum "$LAB/guest/init" /bin/busybox; } | sha256sum | cut -d' ' -f1)
if [ -f "$OUT" ] && [ "$(cat "$OUT.stamp" 2>/dev/null)" = "$stamp" ]; then echo "$OUT"; exit 0; fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bb,kmod,usr,etc,proc,sys,dev,run,tmp,var,root,work}
cp /bin/busybox "$root/bb/busybox"
# Merged /usr, as on the host: /bin, /sbin, /lib come from the 9p /usr.
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
install -m 0755 "$LAB/guest/init" "$root/init"

# modprobe resolves dependencies against the unpacked tree (depmod once).
[ -f "$KROOT/lib/modules/$KV/modules.dep" ] || depmod -b "$KROOT" "$KV"
for m in $MODULES; do
  modprobe -d "$KROOT" -S "$KV" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$root/kmod/"
  basename "$ko" >> "$root/kmod/order"
done

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$stamp" > "$OUT.stamp"
echo "[initramfs] $(du -h "$OUT" | cut -f1): $(tr '\n' ' ' < "$root/kmod/order")" >&2
echo "$OUT"
