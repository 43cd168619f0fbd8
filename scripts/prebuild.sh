#!/usr/bin/env bash
# Build the committed N-API prebuilds in prebuilds/<platform>-<arch>/:
#   tsmuxd.napi.node          the daemon's addon (published)
#   tsmuxd_testing.napi.node  tests, benches and the lab only (package.json's
#                             `files` leaves it out of the package)
#
#   1. scripts/build-libusb.sh   (static, PIC, hidden libusb; cached)
#   2. cmake-js compile (Release) linking that libusb, in a clean build/prebuild/
#      so cache entries of a developer build (e.g. TSMUXD_SANITIZE=ON) cannot
#      leak in and build/Release is left alone; CMake fetches lwIP itself
#      (scripts/build-lwip.sh) and compiles it in, hidden
#   3. each addon: lwIP linked in as local symbols; strip --strip-unneeded,
#      then verify: no libusb/libudev/libssl/libcrypto/lwip in ldd, only the
#      N-API entry points exported, every OpenSSL symbol it imports exported
#      by this node (scripts/check-node-openssl.mjs), loads in node; then that
#      node-gyp-build resolves the daemon's addon without build/
#   4. node scripts/native-hash.mjs --write (hash of the native sources)
#
# Usage: npm run build:prebuild    (or: bash scripts/prebuild.sh)
#   LIBUSB_PREFIX   passed on to build-libusb.sh (default .deps/libusb)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
cd "$repo_root"

readonly PREBUILD_NAME=tsmuxd.napi.node
readonly TESTING_PREBUILD_NAME=tsmuxd_testing.napi.node

log() { printf '\n[prebuild] %s\n' "$*" >&2; }
die() { printf '[prebuild] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -d node_modules/cmake-js && -d node_modules/node-gyp-build && -d node_modules/node-addon-api ]] \
  || die "node_modules is incomplete (cmake-js, node-gyp-build, node-addon-api); run npm ci first"

prefix=${LIBUSB_PREFIX:-$repo_root/.deps/libusb}
case $prefix in
  /*) ;;
  *) prefix=$PWD/$prefix ;;
esac
export LIBUSB_PREFIX=$prefix

log "libusb ($LIBUSB_PREFIX)"
bash "$script_dir/build-libusb.sh"
[[ -f $LIBUSB_PREFIX/lib/libusb-1.0.a ]] || die "build-libusb.sh left no $LIBUSB_PREFIX/lib/libusb-1.0.a"

tuple=$(node -p 'process.platform + "-" + process.arch')
out_dir=$repo_root/build/prebuild
dest_dir=$repo_root/prebuilds/$tuple
dest=$dest_dir/$PREBUILD_NAME

log "cmake-js compile (Release) in ${out_dir#"$repo_root"/}"
rm -rf "$out_dir"
npx --no -- cmake-js compile --out "$out_dir" --config Release \
  --CDLIBUSB_PREFIX="$LIBUSB_PREFIX" --CDTSMUXD_SANITIZE=OFF

load_check='
const m = require(process.argv[1]);
if (m === null || typeof m !== "object") throw new Error("addon exports " + typeof m + ", expected an object");
console.log("loads in node " + process.version + "; exports: " + Object.keys(m).join(", "));
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
  grep -Eq '^[0-9a-f]+ t tcp_input$' < <(nm "$built") || die "$target.node has no local tcp_input: lwIP is not linked in"
  mkdir -p "$dest_dir"
  # A name without the .node suffix is invisible to node-gyp-build until verified.
  local candidate=$dest_dir/.$name.tmp
  candidates+=("$candidate")
  cp "$built" "$candidate"
  strip --strip-unneeded "$candidate"

  local ldd_out
  ldd_out=$(ldd "$candidate")
  printf '%s\n' "ldd prebuilds/$tuple/$name:" "$ldd_out"
  if grep -Eq 'libusb|libudev|libssl|libcrypto|lwip' <<<"$ldd_out"; then
    die "$name links libusb/libudev/libssl/libcrypto/lwip dynamically"
  fi
  if grep -q 'not found' <<<"$ldd_out"; then
    die "$name has unresolved shared-library dependencies"
  fi

  local exports extra
  exports=$(nm -D --defined-only "$candidate" | awk '{ print $NF }')
  printf 'exported symbols: %s\n' "$(tr '\n' ' ' <<<"$exports")"
  extra=$(grep -Evx 'napi_register_module_v1|node_api_module_get_api_version_v1' <<<"$exports" || true)
  [[ -z $extra ]] || die "$name exports more than the N-API entry points: $(tr '\n' ' ' <<<"$extra")"
  grep -qx 'napi_register_module_v1' <<<"$exports" || die "$name does not export napi_register_module_v1"

  # Its OpenSSL symbols are undefined, for node's own OpenSSL to resolve.
  node "$script_dir/check-node-openssl.mjs" "$candidate" || die "$name imports OpenSSL symbols this node does not export"

  # .node extension needed for require(); load from a private copy.
  cp "$candidate" "$tmp/$target.node"
  timeout 60 node -e "$load_check" "$tmp/$target.node" || die "$name does not load in node"
}

strip_and_verify tsmuxd "$PREBUILD_NAME"
strip_and_verify tsmuxd_testing "$TESTING_PREBUILD_NAME"

# Only our files may be there: node-gyp-build would prefer e.g. node.napi.node.
# (Between ours it takes the first in name order, tsmuxd.napi.node; checked below.)
find "$dest_dir" -maxdepth 1 -name '*.node' ! -name "$PREBUILD_NAME" ! -name "$TESTING_PREBUILD_NAME" -print -delete
mv -f "$dest_dir/.$PREBUILD_NAME.tmp" "$dest"
mv -f "$dest_dir/.$TESTING_PREBUILD_NAME.tmp" "$dest_dir/$TESTING_PREBUILD_NAME"

resolved=$(cd "$repo_root" && env -u TSMUXD_PREBUILD PREBUILDS_ONLY=1 node -e '
const { createRequire } = require("node:module");
const ngb = createRequire(process.cwd() + "/package.json")("node-gyp-build");
console.log(ngb.path(process.cwd()));
')
[[ $resolved == "$dest" ]] || die "node-gyp-build resolves '$resolved' instead of '$dest'"
echo "node-gyp-build (no build/) resolves: ${resolved#"$repo_root"/}"

log "native source hash"
node "$script_dir/native-hash.mjs" --write

log "done: ${dest#"$repo_root"/} ($(stat -c %s "$dest") bytes), prebuilds/$tuple/$TESTING_PREBUILD_NAME ($(stat -c %s "$dest_dir/$TESTING_PREBUILD_NAME") bytes)"
