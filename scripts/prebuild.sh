#!/usr/bin/env bash
# Build the committed N-API prebuild: prebuilds/<platform>-<arch>/tsmuxd.napi.node
#
#   1. scripts/build-libusb.sh   (static, PIC, hidden libusb; cached)
#   2. cmake-js compile (Release) linking that libusb, in a clean build/prebuild/
#      so cache entries of a developer build (e.g. TSMUXD_SANITIZE=ON) cannot
#      leak in and build/Release is left alone
#   3. strip --strip-unneeded, then verify: no libusb/libudev in ldd, no libusb_*
#      exported, loads in node, and node-gyp-build resolves it without build/
#   4. node scripts/native-hash.mjs --write (hash of the native sources)
#
# Usage: npm run build:prebuild    (or: bash scripts/prebuild.sh)
#   LIBUSB_PREFIX   passed on to build-libusb.sh (default .deps/libusb)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
cd "$repo_root"

readonly PREBUILD_NAME=tsmuxd.napi.node

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
built=$out_dir/Release/tsmuxd.node
[[ -f $built ]] || die "cmake-js produced no $built"

log "strip and verify"
mkdir -p "$dest_dir"
# A name without the .node suffix is invisible to node-gyp-build until verified.
candidate=$dest_dir/.$PREBUILD_NAME.tmp
trap 'rm -f "$candidate"' EXIT
cp "$built" "$candidate"
strip --strip-unneeded "$candidate"

ldd_out=$(ldd "$candidate")
printf '%s\n' "ldd ${dest#"$repo_root"/}:" "$ldd_out"
if grep -Eq 'libusb|libudev' <<<"$ldd_out"; then
  die "the prebuild links libusb/libudev dynamically"
fi
if grep -q 'not found' <<<"$ldd_out"; then
  die "the prebuild has unresolved shared-library dependencies"
fi

exports=$(nm -D --defined-only "$candidate" | awk '{ print $NF }')
printf 'exported symbols: %s\n' "$(tr '\n' ' ' <<<"$exports")"
leaked=$(grep -E '^libusb_' <<<"$exports" || true)
[[ -z $leaked ]] || die "the prebuild exports libusb symbols: $(tr '\n' ' ' <<<"$leaked")"
grep -qx 'napi_register_module_v1' <<<"$exports" || die "the prebuild does not export napi_register_module_v1"

load_check='
const m = require(process.argv[1]);
if (m === null || typeof m !== "object") throw new Error("addon exports " + typeof m + ", expected an object");
console.log("loads in node " + process.version + "; exports: " + Object.keys(m).join(", "));
'
# .node extension needed for require(); load from a private copy.
load_copy=$(mktemp -d)/tsmuxd.node
trap 'rm -f "$candidate"; rm -rf "$(dirname "$load_copy")"' EXIT
cp "$candidate" "$load_copy"
timeout 60 node -e "$load_check" "$load_copy" || die "the prebuild does not load in node"

# Only our file may be there: node-gyp-build would prefer e.g. node.napi.node.
find "$dest_dir" -maxdepth 1 -name '*.node' ! -name "$PREBUILD_NAME" -print -delete
mv -f "$candidate" "$dest"

resolved=$(cd "$repo_root" && env -u TSMUXD_PREBUILD PREBUILDS_ONLY=1 node -e '
const { createRequire } = require("node:module");
const ngb = createRequire(process.cwd() + "/package.json")("node-gyp-build");
console.log(ngb.path(process.cwd()));
')
[[ $resolved == "$dest" ]] || die "node-gyp-build resolves '$resolved' instead of '$dest'"
echo "node-gyp-build (no build/) resolves: ${resolved#"$repo_root"/}"

log "native source hash"
node "$script_dir/native-hash.mjs" --write

log "done: ${dest#"$repo_root"/} ($(stat -c %s "$dest") bytes)"
