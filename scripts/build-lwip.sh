#!/usr/bin/env bash
# Fetch lwIP 2.1.3 from Debian's source package `lwip` (2.1.3+dfsg1-2 in
# bookworm), check it, and unpack it with Debian's patches applied into
# .deps/lwip/src. Nothing is compiled here: CMakeLists.txt (and binding.gyp)
# compile the lwIP files the tunnel uses, with our lwipopts.h
# (native/tunnel/lwip_port), into a static, PIC, hidden-symbol library.
#
# CMake runs this script itself when LWIP_SRC is the default or is missing,
# so a fresh clone needs no manual step.
#
# Usage: scripts/build-lwip.sh [--print-src]
#   --print-src  after making sure the tree is there, print its path on stdout
#                (binding.gyp reads it; every other line goes to stderr)
#   LWIP_SRC     where to unpack (default: <repo>/.deps/lwip/src; a relative
#                path is taken relative to the current directory). A directory
#                this script did not unpack is never overwritten.
#
# The script is idempotent: when $LWIP_SRC holds a stamp that records the same
# package and tarball, it only makes sure libssl-dev is installed.
set -euo pipefail

readonly SRC_PACKAGE=lwip
# The upstream version as Debian's orig tarball names it (+dfsg1: Debian's
# repack, which leaves out files not free under the DFSG; nothing compiled
# here is among them).
readonly LWIP_VERSION=2.1.3+dfsg1
# The Debian revision this was written against; another one (a stable
# update) is used but reported.
readonly KNOWN_DEBIAN_VERSION=2.1.3+dfsg1-2
# SHA-256 of Debian's lwip_2.1.3+dfsg1.orig.tar.xz.
readonly ORIG_SHA256=0a8276d09fc4e97bbba2f953d74af2388fc2195ea156be9d7589e297a68fde24
# Bump when the way the tree is produced changes (forces a fresh unpack).
readonly STAMP_FORMAT=1

print_src=0
case ${1:-} in
  '') ;;
  --print-src) print_src=1 ;;
  -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) printf '[build-lwip] unknown argument %s (see --help)\n' "$1" >&2; exit 2 ;;
esac

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)

readonly default_dest=$repo_root/.deps/lwip/src
dest=${LWIP_SRC:-$default_dest}
case $dest in
  /*) ;;
  *) dest=$PWD/$dest ;;
esac
dest=${dest%/}
readonly dest
readonly stamp_file=$dest/.tsmuxd-lwip.stamp

log() { printf '[build-lwip] %s\n' "$*" >&2; }
die() { printf '[build-lwip] ERROR: %s\n' "$*" >&2; exit 1; }

# as_root, ensure_packages, fetch_debian_source: shared with build-libusb.sh.
. "$script_dir/debian-source.sh"

expected_stamp() {
  printf 'stamp-format=%s\n' "$STAMP_FORMAT"
  printf 'package=%s\n' "$SRC_PACKAGE"
  printf 'upstream-version=%s\n' "$LWIP_VERSION"
  printf 'orig-sha256=%s\n' "$ORIG_SHA256"
}

# The stamp's last line names the Debian revision unpacked; it does not
# decide whether the tree is current.
stamp_is_current() {
  [[ -f $stamp_file ]] && [[ "$(grep -v '^debian-version=' "$stamp_file")" == "$(expected_stamp)" ]]
}

finish() {
  ((print_src)) && printf '%s\n' "$dest"
  exit 0
}

# The addon includes <openssl/ssl.h>; its symbols come from node at load time.
ensure_packages libssl-dev

if stamp_is_current; then
  log "lwIP $LWIP_VERSION is up to date in $dest"
  finish
fi

if [[ -e $dest && ! -f $stamp_file && $dest != "$default_dest" ]] \
  && [[ -n "$(ls -A "$dest" 2>/dev/null)" ]]; then
  die "LWIP_SRC=$dest exists and was not unpacked by this script; remove it, or point LWIP_SRC at a tree of your own and CMake uses it as it is"
fi

start_time=$SECONDS
log "fetching lwIP $LWIP_VERSION (Debian source package $SRC_PACKAGE) into $dest"

# Download and unpack beside the destination, then move the tree into place:
# an interrupted run leaves no half tree behind that looks current.
parent=$(dirname "$dest")
mkdir -p "$parent"
work=$(mktemp -d "$parent/.tsmuxd-lwip.XXXXXX")
trap 'rm -rf "$work"' EXIT
fetch_debian_source "$SRC_PACKAGE" "$LWIP_VERSION" "$ORIG_SHA256" "$work/download" "$work/src"
[[ $debian_version == "$KNOWN_DEBIAN_VERSION" ]] \
  || log "note: Debian's source package is now $SRC_PACKAGE $debian_version (written against $KNOWN_DEBIAN_VERSION)"

# What CMakeLists.txt and binding.gyp compile must be there (binding-sources.json's "lwip").
missing=$(cd "$work/src" && node -e '
const files = require(process.argv[1]).lwip;
const fs = require("node:fs");
console.log(files.filter((f) => !fs.existsSync(f)).join(" "));
' "$repo_root/binding-sources.json")
[[ -z $missing ]] || die "the unpacked tree lacks: $missing"
[[ -f $work/src/src/include/lwip/init.h && -f $work/src/COPYING ]] \
  || die "the unpacked tree has no src/include/lwip/init.h or COPYING"
# (lwIP's sources have CRLF line ends.)
version_line=$(tr -d '\r' <"$work/src/src/include/lwip/init.h" \
  | awk '/^#define LWIP_VERSION_(MAJOR|MINOR|REVISION)[ \t]/ { printf "%s%s", sep, $3; sep = "." }')
[[ $version_line == "2.1.3" ]] || die "lwip/init.h says version $version_line, expected 2.1.3"

{ expected_stamp; printf 'debian-version=%s\n' "$debian_version"; } >"$work/src/.tsmuxd-lwip.stamp"
rm -rf "$dest"
mv "$work/src" "$dest"
log "unpacked lwIP $debian_version in $dest in $((SECONDS - start_time))s"
finish
