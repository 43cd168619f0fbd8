#!/usr/bin/env bash
# Build libusb 1.0.26 from Debian's source package as a static, position
# independent archive whose symbols are all hidden, so that it can be linked
# into tsmuxd.node without the addon depending on (or re-exporting) libusb.
#
# Why not Debian's libusb-1.0-0-dev? Its libusb-1.0.a is built without -fPIC
# (threads_posix.o carries a TLS relocation that cannot go into a shared
# object), and its API symbols have default visibility.
#
# Usage: scripts/build-libusb.sh
#   LIBUSB_PREFIX  install prefix (default: <repo>/.deps/libusb; a relative
#                  path is taken relative to the current directory)
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

prefix=${LIBUSB_PREFIX:-$repo_root/.deps/libusb}
case $prefix in
  /*) ;;
  *) prefix=$PWD/$prefix ;;
esac
prefix=${prefix%/}
readonly prefix

readonly work_root=$repo_root/.deps/src
readonly stamp_file=$prefix/.tsmuxd-libusb.stamp
readonly archive=$prefix/lib/libusb-1.0.a

log() { printf '[build-libusb] %s\n' "$*" >&2; }
die() { printf '[build-libusb] ERROR: %s\n' "$*" >&2; exit 1; }

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

# --- privileges and packages -------------------------------------------------

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (run as root or install sudo)"
  fi
}

apt_updated=0
apt_update() {
  log "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q -o Acquire::Retries=3 >&2
  apt_updated=1
}

is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    is_installed "$pkg" || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing: ${missing[*]}"
  ((apt_updated)) || apt_update
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script needs a Debian-based system"

# dpkg-dev: dpkg-source for 'apt-get source'; bzip2/xz-utils: the source
# tarballs; gcc/make/libc6-dev: configure + build (the tarball ships a
# generated configure, so autotools are not needed); binutils: readelf/nm.
ensure_packages dpkg-dev gcc make libc6-dev binutils bzip2 xz-utils

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

# --- source index --------------------------------------------------------------

readonly debsrc_file=/etc/apt/sources.list.d/tsmuxd-debian-src.sources

have_source_index() {
  apt-cache showsrc "$SRC_PACKAGE" 2>/dev/null | grep -q '^Package:'
}

# Write a deb-src twin of every 'deb' stanza in Debian's deb822 sources file
# (same URIs, Suites, Components, Signed-By), or of every 'deb' line of the
# one-line-style sources.list.
add_deb_src() {
  local deb822=/etc/apt/sources.list.d/debian.sources
  local legacy=/etc/apt/sources.list
  local content=""
  if [[ -f $deb822 ]]; then
    content=$(awk '
      BEGIN { RS = ""; FS = "\n" }
      {
        out = ""; has_deb = 0
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^#/) continue
          if (line ~ /^Types:/) {
            n = split(substr(line, 7), types, /[ \t]+/)
            for (j = 1; j <= n; j++) if (types[j] == "deb") has_deb = 1
            line = "Types: deb-src"
          }
          out = out line "\n"
        }
        if (has_deb) printf "%s\n", out
      }' "$deb822")
    if [[ -n $content ]]; then
      log "adding deb-src entries in $debsrc_file"
      printf '# Added by tsmuxd scripts/build-libusb.sh (apt-get source libusb-1.0)\n%s\n' "$content" \
        | as_root tee "$debsrc_file" >/dev/null
      return 0
    fi
  fi
  if [[ -f $legacy ]]; then
    content=$(sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$legacy")
    if [[ -n $content ]]; then
      log "adding deb-src lines in /etc/apt/sources.list.d/tsmuxd-debian-src.list"
      printf '# Added by tsmuxd scripts/build-libusb.sh (apt-get source libusb-1.0)\n%s\n' "$content" \
        | as_root tee /etc/apt/sources.list.d/tsmuxd-debian-src.list >/dev/null
      return 0
    fi
  fi
  die "found no 'deb' entry in $deb822 or $legacy to derive a deb-src entry from"
}

if ! have_source_index; then
  if [[ ! -f $debsrc_file && ! -f /etc/apt/sources.list.d/tsmuxd-debian-src.list ]]; then
    add_deb_src
  fi
  apt_update
  have_source_index || die "apt-cache showsrc $SRC_PACKAGE finds nothing even after adding deb-src entries and apt-get update"
fi

# --- download and unpack ---------------------------------------------------------

work=$work_root/$SRC_PACKAGE
rm -rf "$work"
mkdir -p "$work"

apt_source_opts=(-q)
# As root, apt drops to the _apt user for downloads, which cannot write here.
[[ $EUID -eq 0 ]] && apt_source_opts+=(-o APT::Sandbox::User=root)

download() {
  (cd "$work" && apt-get source "${apt_source_opts[@]}" --download-only "$SRC_PACKAGE") >&2
}
if ! download; then
  log "download failed; refreshing the package lists and trying again"
  rm -rf "$work" && mkdir -p "$work"
  apt_update
  download || die "apt-get source $SRC_PACKAGE failed"
fi

shopt -s nullglob
dscs=("$work"/"$SRC_PACKAGE"_*.dsc)
origs=("$work"/"$SRC_PACKAGE"_*.orig.tar.*)
shopt -u nullglob
((${#dscs[@]} == 1)) || die "expected one .dsc in $work, found ${#dscs[@]}"
((${#origs[@]} == 1)) || die "expected one .orig tarball in $work, found ${#origs[@]}"

deb_version=$(sed -n 's/^Version:[[:space:]]*//p' "${dscs[0]}" | head -n1)
upstream_version=${deb_version#*:}
upstream_version=${upstream_version%-*}
[[ $upstream_version == "$LIBUSB_VERSION" ]] \
  || die "Debian's source package is $SRC_PACKAGE $deb_version, not upstream $LIBUSB_VERSION; update scripts/build-libusb.sh deliberately"

orig_sha=$(sha256sum "${origs[0]}" | cut -d' ' -f1)
[[ $orig_sha == "$ORIG_SHA256" ]] \
  || die "$(basename "${origs[0]}") has SHA-256 $orig_sha, expected $ORIG_SHA256"
log "source: $SRC_PACKAGE $deb_version ($(basename "${origs[0]}") sha256 ok)"

srcdir=$work/src
# dpkg-source checks the tarballs against the .dsc checksums (the .dsc itself
# was checked by apt against the signed index) and applies Debian's patches.
dpkg-source -x "${dscs[0]}" "$srcdir" >&2

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

log "configure ${CONFIGURE_FLAGS[*]} CFLAGS=\"$BUILD_CFLAGS\""
cd "$srcdir"
run_logged ./configure --prefix="$prefix" --libdir="$prefix/lib" \
  "${CONFIGURE_FLAGS[@]}" CFLAGS="$BUILD_CFLAGS"

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
visible=$(readelf -sW "$staged/lib/libusb-1.0.a" \
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
gcc -shared -fPIC -fvisibility=hidden -O2 -I"$staged/include/libusb-1.0" \
  -o "$check/libprobe.so" "$check/probe.c" "$staged/lib/libusb-1.0.a" -pthread \
  || die "the archive cannot be linked into a shared object (not PIC?)"
exported=$(nm -D --defined-only "$check/libprobe.so" | awk '$3 ~ /^libusb_/ { print $3 }')
[[ -z $exported ]] || die "a shared object linking the archive exports: $(echo $exported | head -c 300)"
gcc -o "$check/probe" "$check/main.c" -L"$check" -lprobe -Wl,-rpath,"$check"
runtime_version=$("$check/probe")
[[ $runtime_version == "$expected_version" ]] \
  || die "libusb_get_version() reports '$runtime_version', expected $expected_version"
if ldd "$check/libprobe.so" | grep -Eq 'libusb|libudev'; then
  die "probe shared object depends on libusb/libudev: $(ldd "$check/libprobe.so")"
fi

# --- install into the prefix ------------------------------------------------------------------

rm -f "$stamp_file"
mkdir -p "$prefix"
cp -a "$staged"/. "$prefix"/
expected_stamp >"$stamp_file"

log "installed libusb $runtime_version (static, PIC, hidden${libusb_src:+, from LIBUSB_SRC=$libusb_src}) in $prefix in $((SECONDS - start_time))s"
