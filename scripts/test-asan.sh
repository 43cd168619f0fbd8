#!/usr/bin/env bash
# npm run test:asan: builds both addons (tsmuxd and tsmuxd_testing) with ASan
# and UBSan (build-asan/) and runs the whole tap suite against them, child
# processes included.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

bash scripts/build-libusb.sh
npx --no -- cmake-js compile --out build-asan --config Release \
  --CDLIBUSB_PREFIX="$repo_root/.deps/libusb" --CDTSMUXD_SANITIZE=ON

# node-gyp-build looks for build/Release/*.node under TSMUXD_NATIVE_DIR (it
# takes the first name in order: tsmuxd.node before tsmuxd_testing.node), and
# src/native/testing.ts for build/Release/tsmuxd_testing.node there.
stage=$repo_root/build-asan/stage
rm -rf "$stage" && mkdir -p "$stage/build/Release"
for addon in tsmuxd tsmuxd_testing; do
  built=
  for candidate in build-asan/Release/$addon.node build-asan/Debug/$addon.node; do
    [[ -f $candidate ]] && { built=$candidate; break; }
  done
  [[ -n $built ]] || { echo "test:asan: cmake-js produced no $addon.node" >&2; exit 1; }
  cp "$built" "$stage/build/Release/"
done
cp package.json "$stage/"

npx --no -- tsc -p tsconfig.build.json
export TSMUXD_NATIVE_DIR=$stage
# test/helpers/sanitizers.ts: RSS bounds and load sizes under ASan.
export TSMUXD_SANITIZED=1
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
# Node itself leaks at exit; leak checking belongs to the fuzzers. node's own
# allocations share the quarantine: at the default 256 MiB every process's RSS
# balloons and a node start takes 2.2 s instead of 1.4 s; 32 MiB still holds
# far more than any buffer the addon frees while a pointer could remain.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:quarantine_size_mb=32
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Excludes given here replace package.json's, so they are all repeated. The
# prebuild test checks the committed binary, not this one; the native fuzz
# harnesses carry clang's sanitizer runtime, which gcc's preloaded one breaks.
exec npx --no -- tap --disable-coverage --exclude='test/prebuild.test.ts' --exclude='test/fuzz-native-replay.test.ts' \
  --exclude='test/helpers/**' --exclude='test/fuzz/**' --exclude='test/arm64/**' --exclude='**/node_modules/**' --exclude='dist/**' "$@"
