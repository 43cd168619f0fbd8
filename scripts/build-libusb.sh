#!/usr/bin/env bash
# Build libusb 1.0.26 from Debian's source package as a static, position
# independent archive whose symbols are all hidden, so that it can be linked
# into tsmuxd.node without the addon depending on (or re-exporting) libusb.
#
# Why not Debian's libusb-1.0-0-dev? Its libusb-1.0.a is built without -fPIC
# (threads_posix.o carries a TLS relocation that cannot go into a shared
# object), and its API symbols have default visibility.
#
# Usage: scripts/build-libusb.sh [--arch x64|arm64]
#   --arch ARCH    the CPU to build for, as node names it (default: this
#                  machine's). Another one is cross-compiled with Debian's
#                  gcc-<triplet> (installed when missing), and its probe runs
#                  under Debian's qemu-user-static.
#   LIBUSB_PREFIX  install prefix (default: <repo>/.deps/libusb, for arm64 on
#                  an x64 machine <repo>/.deps/arm64/libusb; a relative path
#                  is taken relative to the current directory)
#   LIBUSB_SRC     a libusb source tree to build instead of Debian's pinned
#                  1.0.26 (e.g. a modified one, to relink the addon against it
#                  as the LGPL allows: LIBUSB_SRC=DIR npm run build:prebuild).
#                  It is copied, never built in place; the same flags apply.
#                  A tree without configure needs autoconf, automake, libtool.
#   VERBOSE=1      stream configure/make output instead of logging it
#
# The script is idempotent: when $PREFIX/lib/libusb-1.0.a exists and the stamp
# file in $PREFIX records the same build settings, it does nothing. With
# LIBUSB_SRC the stamp records the tree's path and a hash of its files, so
# editing the tree (or unsetting LIBUSB_SRC) rebuilds.
set -euo pipefail

readonly LIBUSB_VERSION=1.0.26
readonly SRC_PACKAGE=libusb-1.0
# SHA-256 of Debian's libusb-1.0_1.0.26.orig.tar.bz2 (the upstream release).
readonly ORIG_SHA256=12ce7a61fc9854d1d2a1ffe095f7b5fac19ddba095c259e6067a46500381b5a5
readonly CONFIGURE_FLAGS=(--with-pic --disable-shared --enable-static --disable-udev)
readonly BUILD_CFLAGS="-O2 -fvisibility=hidden"
# Bump when the way the archive is produced changes (forces a rebuild).
readonly STAMP_FORMAT=1

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)

log() { printf '[build-libusb] %s\n' "$*" >&2; }
die() { printf '[build-libusb] ERROR: %s\n' "$*" >&2; exit 1; }

# as_root, ensure_packages, fetch_debian_source, parse_arch_args: shared with
# the other build scripts.
. "$script_dir/debian-source.sh"

parse_arch_args 2,28 "$@"
# A cross build keeps its archive and its source tree apart from the native ones.
deps_root=$repo_root/$target_deps

prefix=${LIBUSB_PREFIX:-$deps_root/libusb}
case $prefix in
  /*) ;;
  *) prefix=$PWD/$prefix ;;
esac
prefix=${prefix%/}
readonly prefix

readonly work_root=$deps_root/src
readonly stamp_file=$prefix/.tsmuxd-libusb.stamp
readonly archive=$prefix/lib/libusb-1.0.a

# LIBUSB_SRC: an absolute path, and a SHA-256 over its files (not .git).
libusb_src=${LIBUSB_SRC:-}
if [[ -n $libusb_src ]]; then
  [[ -d $libusb_src ]] || die "LIBUSB_SRC=$libusb_src is not a directory"
  libusb_src=$(cd "$libusb_src" && pwd)
  [[ -f $libusb_src/libusb/libusb.h && ( -f $libusb_src/configure || -f $libusb_src/configure.ac ) ]] \
    || die "LIBUSB_SRC=$libusb_src is not a libusb source tree (no libusb/libusb.h, or neither configure nor configure.ac)"
  src_tree_sha256=$(cd "$libusb_src" && find . -path ./.git -prune -o -type f -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
fi
readonly libusb_src

expected_stamp() {
  printf 'stamp-format=%s\n' "$STAMP_FORMAT"
  if [[ -n $libusb_src ]]; then
    printf 'source=LIBUSB_SRC %s\n' "$libusb_src"
    printf 'source-tree-sha256=%s\n' "$src_tree_sha256"
  else
    printf 'libusb-version=%s\n' "$LIBUSB_VERSION"
    printf 'orig-sha256=%s\n' "$ORIG_SHA256"
  fi
  printf 'target=%s\n' "$target_triplet"
  printf 'configure-flags=%s\n' "${CONFIGURE_FLAGS[*]}"
  printf 'cflags=%s\n' "$BUILD_CFLAGS"
  printf 'api-visibility=hidden\n'
}

readonly what=${libusb_src:+"libusb from LIBUSB_SRC=$libusb_src"}
if [[ -f $archive && -f $stamp_file ]] && [[ "$(cat "$stamp_file")" == "$(expected_stamp)" ]]; then
  log "${what:-libusb $LIBUSB_VERSION} is up to date in $prefix"
  exit 0
fi

start_time=$SECONDS
log "building ${what:-libusb $LIBUSB_VERSION} into $prefix"

# --- packages -----------------------------------------------------------------

# gcc/make/libc6-dev: configure + build (the tarball ships a generated
# configure, so autotools are not needed); binutils: readelf/nm. The source
# download's own packages (dpkg-dev, the tarballs' compressors) come with it.
# A cross build: the cross gcc and binutils (their libc comes with them), and
# qemu-user to run the probe.
packages=(gcc make libc6-dev binutils)
[[ -z $cross ]] || packages+=("${cross_packages[@]}" qemu-user-static)
ensure_packages "${packages[@]}"

# --- LIBUSB_SRC: a copy of the user's tree -------------------------------------

if [[ -n $libusb_src ]]; then
  work=$work_root/libusb-src
  rm -rf "$work"
  mkdir -p "$work"
  srcdir=$work/src
  cp -a "$libusb_src" "$srcdir"
  # A tree built in place would leave its objects (built with other flags)
  # and configure's output behind; configure and make below redo them.
  find "$srcdir" \( -name '*.o' -o -name '*.lo' -o -name '*.la' -o -name '*.a' -o -name .libs -o -name .deps \) \
    -prune -exec rm -rf {} +
  rm -f "$srcdir"/{config.status,config.log,config.h,libtool,stamp-h1}
  if [[ ! -f $srcdir/configure ]]; then
    ensure_packages autoconf automake libtool
    log "autoreconf -fi (the tree has no configure)"
    (cd "$srcdir" && autoreconf -fi) >&2 || die "autoreconf failed in the copy of $libusb_src"
  fi
  expected_version=$(sed -n "s/^PACKAGE_VERSION='\(.*\)'$/\1/p" "$srcdir/configure")
  [[ -n $expected_version ]] || die "cannot read PACKAGE_VERSION from $libusb_src's configure"
  log "source: LIBUSB_SRC=$libusb_src (configure says libusb $expected_version; tree sha256 $src_tree_sha256)"
else
# (Debian's pinned source package, up to the configure step; not indented.)
expected_version=$LIBUSB_VERSION

work=$work_root/$SRC_PACKAGE
srcdir=$work/src
fetch_debian_source "$SRC_PACKAGE" "$LIBUSB_VERSION" "$ORIG_SHA256" "$work" "$srcdir"

configured_version=$(sed -n "s/^PACKAGE_VERSION='\(.*\)'$/\1/p" "$srcdir/configure")
[[ $configured_version == "$LIBUSB_VERSION" ]] \
  || die "unpacked configure reports version '$configured_version', expected $LIBUSB_VERSION"
fi

# --- configure, build, stage ---------------------------------------------------------

build_log=$work/build.log
: >"$build_log"
run_logged() {
  if [[ ${VERBOSE:-0} == 1 ]]; then
    "$@" 2>&1 | tee -a "$build_log" >&2
  elif ! "$@" >>"$build_log" 2>&1; then
    printf '[build-libusb] command failed: %s\n--- last lines of %s ---\n' "$*" "$build_log" >&2
    tail -n 60 "$build_log" >&2
    exit 1
  fi
}

# A cross build names its host (configure then takes <triplet>-gcc, -ar...).
host_flags=()
[[ -z $cross ]] || host_flags=(--host="$target_triplet" CC="${cross}gcc")
log "configure ${CONFIGURE_FLAGS[*]} ${host_flags[*]} CFLAGS=\"$BUILD_CFLAGS\""
cd "$srcdir"
run_logged ./configure --prefix="$prefix" --libdir="$prefix/lib" \
  "${CONFIGURE_FLAGS[@]}" "${host_flags[@]}" CFLAGS="$BUILD_CFLAGS"

# libusb marks its API with DEFAULT_VISIBILITY (visibility "default") no matter
# what CFLAGS say. Empty it so every symbol in the archive is hidden: they still
# link statically into the addon but are not exported from it.
grep -q '^#define DEFAULT_VISIBILITY ' config.h || die "config.h has no DEFAULT_VISIBILITY define"
sed -i 's|^#define DEFAULT_VISIBILITY .*$|#define DEFAULT_VISIBILITY /* hidden: tsmuxd static build */|' config.h

log "make -j$(nproc)"
run_logged make -j"$(nproc)"

stage=$work/stage
run_logged make install DESTDIR="$stage"
staged=$stage$prefix
[[ -f $staged/lib/libusb-1.0.a && -f $staged/include/libusb-1.0/libusb.h ]] \
  || die "make install did not produce lib/libusb-1.0.a and include/libusb-1.0/libusb.h"
rm -f "$staged/lib/libusb-1.0.la"

# --- verify the staged archive ------------------------------------------------------------

check=$work/check
mkdir -p "$check"

# Every libusb_* symbol defined in the archive must be hidden.
visible=$("${cross}readelf" -sW "$staged/lib/libusb-1.0.a" \
  | awk '$5 == "GLOBAL" && $6 != "HIDDEN" && $7 != "UND" && $8 ~ /^libusb_/ { print $8 }')
[[ -z $visible ]] || die "archive has libusb symbols with default visibility: $(echo $visible | head -c 300)"

# PIC: it must link into a shared object (Debian's binary archive fails here
# with a TLS relocation), the shared object must not export libusb, and the
# library must report the expected version at run time.
cat >"$check/probe.c" <<'EOF'
#include <stdio.h>
#include <libusb.h>
__attribute__((visibility("default"))) void tsmuxd_probe(void) {
  const struct libusb_version *v = libusb_get_version();
  printf("%u.%u.%u\n", v->major, v->minor, v->micro);
}
EOF
cat >"$check/main.c" <<'EOF'
void tsmuxd_probe(void);
int main(void) { tsmuxd_probe(); return 0; }
EOF
"${cross}gcc" -shared -fPIC -fvisibility=hidden -O2 -I"$staged/include/libusb-1.0" \
  -o "$check/libprobe.so" "$check/probe.c" "$staged/lib/libusb-1.0.a" -pthread \
  || die "the archive cannot be linked into a shared object (not PIC?)"
exported=$("${cross}nm" -D --defined-only "$check/libprobe.so" | awk '$3 ~ /^libusb_/ { print $3 }')
[[ -z $exported ]] || die "a shared object linking the archive exports: $(echo $exported | head -c 300)"
"${cross}gcc" -o "$check/probe" "$check/main.c" -L"$check" -lprobe -Wl,-rpath,"$check"
# A cross build's probe runs under qemu-user, on the cross toolchain's libc.
runtime_version=$(${qemu:+"$qemu" -L /usr/"$target_triplet"} "$check/probe")
[[ $runtime_version == "$expected_version" ]] \
  || die "libusb_get_version() reports '$runtime_version', expected $expected_version"
needed=$("${cross}readelf" -d "$check/libprobe.so" | grep NEEDED || true)
if grep -Eq 'libusb|libudev' <<<"$needed"; then
  die "probe shared object depends on libusb/libudev: $needed"
fi

# --- install into the prefix ------------------------------------------------------------------

rm -f "$stamp_file"
mkdir -p "$prefix"
cp -a "$staged"/. "$prefix"/
expected_stamp >"$stamp_file"

log "installed libusb $runtime_version for $target_arch (static, PIC, hidden${libusb_src:+, from LIBUSB_SRC=$libusb_src}) in $prefix in $((SECONDS - start_time))s"
