#!/usr/bin/env bash
# npm run test:arm64: the linux-arm64 prebuild, tested on this x64 machine.
# The npm registry's arm64 node runs under Debian's qemu-user on Debian's
# arm64 libraries (scripts/arm64-node.sh sets that up in .deps/arm64/, and a
# second run reuses it), and test/arm64/emulated.test.ts runs the subset: the
# addons load, the daemon and one simulated phone (both emulated) answer
# Debian's x64 idevice_id, and 16 MiB go each way through the mux core and the
# virtual cable, hashed at both ends.
#
# As root (or with sudo) it installs what it needs: qemu-user-static, and
# libimobiledevice-utils for idevice_id. Where the emulation cannot be set up
# it prints one skip line naming the Debian package and exits 0; under CI
# (CI=true or TSMUXD_REQUIRE_SYSTEM_TOOLS=1) that is a failure. On an arm64
# machine the same test runs natively.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

log() { printf '[test:arm64] %s\n' "$*" >&2; }
die() { printf '[test:arm64] ERROR: %s\n' "$*" >&2; exit 1; }
required=0
[[ ${CI:-} == true || ${TSMUXD_REQUIRE_SYSTEM_TOOLS:-} == 1 ]] && required=1

[[ -f prebuilds/linux-arm64/tsmuxd.napi.node ]] \
  || die "there is no prebuilds/linux-arm64/tsmuxd.napi.node: npm run build:prebuild -- --arch arm64"

# ensure_packages (as_root: root or sudo).
. scripts/debian-source.sh
if command -v apt-get >/dev/null 2>&1 && { [[ $EUID -eq 0 ]] || command -v sudo >/dev/null 2>&1; }; then
  (ensure_packages qemu-user-static libimobiledevice-utils) || log "could not install qemu-user-static and libimobiledevice-utils (continuing with what is here)"
fi

status=0
arm64_node=$(bash scripts/arm64-node.sh --print) || status=$?
if ((status == 3)); then
  # scripts/arm64-node.sh printed the skip line, naming the package.
  ((required)) && die "the arm64 emulation is required here (CI); see the line above"
  exit 0
fi
((status == 0)) || die "scripts/arm64-node.sh failed (status $status)"

node scripts/ensure-deps.mjs
npx --no -- tsc -p tsconfig.build.json
started=$SECONDS
# package.json's excludes leave test/arm64/ out of npm test; named here, it runs.
status=0
TSMUXD_ARM64_NODE=$arm64_node npx --no -- tap --disable-coverage --exclude='test/helpers/**' --exclude='**/node_modules/**' \
  test/arm64/emulated.test.ts "$@" || status=$?
log "the emulated subset took $((SECONDS - started)) s (exit $status)"
exit "$status"
