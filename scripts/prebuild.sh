#!/usr/bin/env bash
# Build the committed N-API prebuilds in prebuilds/linux-<arch>/:
#   tsmuxd.napi.node          the daemon's addon (published)
#   tsmuxd_testing.napi.node  tests, benches and the lab only (package.json's
#                             `files` leaves it out of the package)
#
#   1. scripts/build-libusb.sh   (static, PIC, hidden libusb; cached)
#   2. cmake-js compile (Release) linking that libusb, in a clean
#      build/prebuild-<arch>/ so cache entries of a developer build (e.g.
#      TSMUXD_SANITIZE=ON) cannot leak in and build/Release is left alone;
#      CMake fetches lwIP itself (scripts/build-lwip.sh) and compiles it in,
#      hidden
#   3. each addon: lwIP linked in as local symbols; strip --strip-unneeded,
#      then verify: readelf -d needs nothing but libc, libm, libstdc++,
#      libgcc_s and the dynamic loader (no libusb, libudev, libssl, libcrypto
#      or lwIP), only the N-API entry points exported, every OpenSSL symbol it
#      imports exported by the node it is for (scripts/check-node-openssl.mjs),
#      loads in that node; then that node-gyp-build resolves the daemon's addon
#      without build/
#   4. node scripts/native-hash.mjs --write --arch <arch> (hash of the native sources)
#
# Another architecture is cross-compiled with Debian's cross toolchain
# (g++-aarch64-linux-gnu, installed when missing), against libusb built the
# same way for it and the OpenSSL headers of Debian's libssl-dev for it
# (apt-get download, dpkg -x into .deps/<arch>/openssl). Its checks run the
# addon in the npm registry's node for that architecture under qemu-user
# (scripts/arm64-node.sh), so it is loaded as the x64 one is.
#
# Usage: npm run build:prebuild [-- --arch x64|arm64]
#        (or: bash scripts/prebuild.sh [--arch ARCH]); default: this machine's
#   LIBUSB_PREFIX   passed on to build-libusb.sh (default .deps/libusb, and
#                   .deps/arm64/libusb for arm64 on x64)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
cd "$repo_root"

readonly PREBUILD_NAME=tsmuxd.napi.node
readonly TESTING_PREBUILD_NAME=tsmuxd_testing.napi.node

log() { printf '\n[prebuild] %s\n' "$*" >&2; }
die() { printf '[prebuild] ERROR: %s\n' "$*" >&2; exit 1; }

# parse_arch_args, ensure_packages, unpack_debs: shared with the other build scripts.
. "$script_dir/debian-source.sh"

parse_arch_args 2,32 "$@"
[[ $(uname -s) == Linux ]] || die "the prebuilds are Linux addons; build them on Linux"

[[ -d node_modules/cmake-js && -d node_modules/node-gyp-build && -d node_modules/node-addon-api ]] \
  || die "node_modules is incomplete (cmake-js, node-gyp-build, node-addon-api); run npm ci first"

# The node the addons are checked in: this one, or the target's under qemu-user.
target_node=node
cmake_cross=()
if [[ -n $cross ]]; then
  [[ $target_arch == arm64 ]] || die "cross builds are for arm64 on x64 (asked for $target_arch on $(uname -m))"
  ensure_packages "${cross_packages[@]}"
  log "the arm64 node to check the addons in (scripts/arm64-node.sh)"
  target_node=$(bash "$script_dir/arm64-node.sh" --print) || die "scripts/arm64-node.sh could not set up an arm64 node (its message is above)"
  # OpenSSL's headers as Debian ships them for the target: <openssl/configuration.h> differs per architecture.
  openssl_root=$repo_root/$target_deps/openssl
  unpack_debs "$deb_arch" "$openssl_root" "$repo_root/$target_deps/debs" libssl-dev
  cmake_cross=(
    --arch "$target_arch"
    --CDCMAKE_SYSTEM_NAME=Linux --CDCMAKE_SYSTEM_PROCESSOR="${target_triplet%%-*}"
    --CDCMAKE_C_COMPILER="${cross}gcc" --CDCMAKE_CXX_COMPILER="${cross}g++"
    --CDOPENSSL_HEADERS_DIR="$openssl_root/usr/include"
  )
fi

prefix=${LIBUSB_PREFIX:-$repo_root/$target_deps/libusb}
case $prefix in
  /*) ;;
  *) prefix=$PWD/$prefix ;;
esac
export LIBUSB_PREFIX=$prefix

log "libusb for $target_arch ($LIBUSB_PREFIX)"
bash "$script_dir/build-libusb.sh" --arch "$target_arch"
[[ -f $LIBUSB_PREFIX/lib/libusb-1.0.a ]] || die "build-libusb.sh left no $LIBUSB_PREFIX/lib/libusb-1.0.a"

tuple=linux-$target_arch
out_dir=$repo_root/build/prebuild-$target_arch
dest_dir=$repo_root/prebuilds/$tuple
dest=$dest_dir/$PREBUILD_NAME

log "cmake-js compile (Release${cross:+, ${cross}g++}) in ${out_dir#"$repo_root"/}"
rm -rf "$out_dir"
npx --no -- cmake-js compile --out "$out_dir" --config Release "${cmake_cross[@]}" \
  --CDLIBUSB_PREFIX="$LIBUSB_PREFIX" --CDTSMUXD_SANITIZE=OFF

load_check='
const m = require(process.argv[1]);
if (m === null || typeof m !== "object") throw new Error("addon exports " + typeof m + ", expected an object");
console.log("loads in node " + process.version + " (" + process.arch + "); exports: " + Object.keys(m).join(", "));
'
tmp=$(mktemp -d)
candidates=()
trap 'rm -f "${candidates[@]}"; rm -rf "$tmp"' EXIT

# strip_and_verify TARGET PREBUILD_FILE: leaves a verified candidate beside it.
strip_and_verify() {
  local target=$1 name=$2
  local built=$out_dir/Release/$target.node
  [[ -f $built ]] || die "cmake-js produced no $built"
  log "strip and verify $name"
  # lwIP is in, as local (hidden) symbols.
  grep -Eq '^[0-9a-f]+ t tcp_input$' < <("${cross}nm" "$built") || die "$target.node has no local tcp_input: lwIP is not linked in"
  mkdir -p "$dest_dir"
  # A name without the .node suffix is invisible to node-gyp-build until verified.
  local candidate=$dest_dir/.$name.tmp
  candidates+=("$candidate")
  cp "$built" "$candidate"
  "${cross}strip" --strip-unneeded "$candidate"

  # What it needs from the system: the C and C++ runtimes and the loader,
  # nothing else (libusb and lwIP are in it; OpenSSL's symbols are node's).
  local needed unexpected
  needed=$("${cross}readelf" -d "$candidate" | awk '$2 == "(NEEDED)" { gsub(/[][]/, "", $NF); print $NF }')
  printf '%s\n' "${cross}readelf -d prebuilds/$tuple/$name: NEEDED $(tr '\n' ' ' <<<"$needed")"
  unexpected=$(grep -Evx 'libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux-(x86-64\.so\.2|aarch64\.so\.1)' <<<"$needed" || true)
  [[ -z $unexpected ]] || die "$name needs more than libc, libm, libstdc++, libgcc_s and the loader: $(tr '\n' ' ' <<<"$unexpected")"

  local exports extra
  exports=$("${cross}nm" -D --defined-only "$candidate" | awk '{ print $NF }')
  printf 'exported symbols: %s\n' "$(tr '\n' ' ' <<<"$exports")"
  extra=$(grep -Evx 'napi_register_module_v1|node_api_module_get_api_version_v1' <<<"$exports" || true)
  [[ -z $extra ]] || die "$name exports more than the N-API entry points: $(tr '\n' ' ' <<<"$extra")"
  grep -qx 'napi_register_module_v1' <<<"$exports" || die "$name does not export napi_register_module_v1"

  # Its OpenSSL symbols are undefined, for node's own OpenSSL to resolve.
  "$target_node" "$script_dir/check-node-openssl.mjs" "$candidate" || die "$name imports OpenSSL symbols the $target_arch node does not export"

  # .node extension needed for require(); load from a private copy.
  cp "$candidate" "$tmp/$target.node"
  timeout 120 "$target_node" -e "$load_check" "$tmp/$target.node" || die "$name does not load in the $target_arch node"
}

strip_and_verify tsmuxd "$PREBUILD_NAME"
strip_and_verify tsmuxd_testing "$TESTING_PREBUILD_NAME"

# Only our files may be there: node-gyp-build would prefer e.g. node.napi.node.
# (Between ours it takes the first in name order, tsmuxd.napi.node; checked below.)
find "$dest_dir" -maxdepth 1 -name '*.node' ! -name "$PREBUILD_NAME" ! -name "$TESTING_PREBUILD_NAME" -print -delete
mv -f "$dest_dir/.$PREBUILD_NAME.tmp" "$dest"
mv -f "$dest_dir/.$TESTING_PREBUILD_NAME.tmp" "$dest_dir/$TESTING_PREBUILD_NAME"

resolved=$(cd "$repo_root" && env -u TSMUXD_PREBUILD PREBUILDS_ONLY=1 "$target_node" -e '
const { createRequire } = require("node:module");
const ngb = createRequire(process.cwd() + "/package.json")("node-gyp-build");
console.log(ngb.path(process.cwd()));
')
[[ $resolved == "$dest" ]] || die "node-gyp-build resolves '$resolved' instead of '$dest'"
echo "node-gyp-build (no build/) resolves: ${resolved#"$repo_root"/}"

log "native source hash"
node "$script_dir/native-hash.mjs" --write --arch "$target_arch"

log "done: ${dest#"$repo_root"/} ($(stat -c %s "$dest") bytes), prebuilds/$tuple/$TESTING_PREBUILD_NAME ($(stat -c %s "$dest_dir/$TESTING_PREBUILD_NAME") bytes)"
