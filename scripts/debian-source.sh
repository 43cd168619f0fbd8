# Sourced by scripts/build-libusb.sh, scripts/build-lwip.sh, scripts/prebuild.sh
# and scripts/arm64-node.sh (not run on its own): installing Debian packages,
# fetching a pinned Debian source package with `apt-get source`, checked and
# unpacked with Debian's patches, the tools for a target architecture, and
# Debian packages of another architecture unpacked (dpkg -x) into a directory.
#
# The sourcing script defines log and die (both print to stderr) first.
# Everything here prints to stderr, so a script's stdout stays its own.

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

# ensure_packages PKG...: installs those that are missing (apt-get update first,
# once per run).
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    is_installed "$pkg" || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script needs a Debian-based system (missing: ${missing[*]})"
  log "installing: ${missing[*]}"
  ((apt_updated)) || apt_update
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# What every source download needs. dpkg-dev: dpkg-source for 'apt-get
# source'; bzip2/xz-utils: the source tarballs. libssl-dev: OpenSSL's headers
# for the addon (it imports OpenSSL's symbols from the node binary, so only
# the headers are used); installed here so that a fresh clone's first build,
# which downloads lwIP, has them too.
readonly DEBIAN_SOURCE_PACKAGES=(dpkg-dev bzip2 xz-utils libssl-dev)

# --- source index --------------------------------------------------------------

readonly debsrc_file=/etc/apt/sources.list.d/tsmuxd-debian-src.sources
readonly debsrc_list=/etc/apt/sources.list.d/tsmuxd-debian-src.list

have_source_index() {
  apt-cache showsrc "$1" 2>/dev/null | grep -q '^Package:'
}

# Write a deb-src twin of every 'deb' stanza in Debian's deb822 sources file
# (same URIs, Suites, Components, Signed-By), or of every 'deb' line of the
# one-line-style sources.list.
add_deb_src() {
  local deb822=/etc/apt/sources.list.d/debian.sources
  local legacy=/etc/apt/sources.list
  local header='# Added by tsmuxd scripts/debian-source.sh (apt-get source of libusb-1.0 and lwip)'
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
      printf '%s\n%s\n' "$header" "$content" | as_root tee "$debsrc_file" >/dev/null
      return 0
    fi
  fi
  if [[ -f $legacy ]]; then
    content=$(sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$legacy")
    if [[ -n $content ]]; then
      log "adding deb-src lines in $debsrc_list"
      printf '%s\n%s\n' "$header" "$content" | as_root tee "$debsrc_list" >/dev/null
      return 0
    fi
  fi
  die "found no 'deb' entry in $deb822 or $legacy to derive a deb-src entry from"
}

# ensure_source_index PKG: apt knows PKG's source package (adds deb-src entries
# and updates the lists when it does not).
ensure_source_index() {
  have_source_index "$1" && return 0
  if [[ ! -f $debsrc_file && ! -f $debsrc_list ]]; then
    add_deb_src
  fi
  apt_update
  have_source_index "$1" || die "apt-cache showsrc $1 finds nothing even after adding deb-src entries and apt-get update"
}

# --- download, verify, unpack ----------------------------------------------------

# apt_download DIR ARG...: `apt-get ARG...` (a command that downloads) in DIR.
apt_download() {
  local dir=$1 opts=(-q)
  shift
  # As root, apt drops to the _apt user for downloads, which cannot write here.
  [[ $EUID -eq 0 ]] && opts+=(-o APT::Sandbox::User=root)
  (cd "$dir" && apt-get "${opts[@]}" "$@") >&2
}

# retry_after_update CMD...: CMD, and once more after apt-get update when it
# fails (the package lists may name versions the archive no longer has).
retry_after_update() {
  "$@" && return 0
  log "download failed; refreshing the package lists and trying again"
  apt_update
  "$@"
}

# download_source PKG WORK: the .dsc and tarballs of PKG in an empty WORK.
download_source() {
  rm -rf "$2" && mkdir -p "$2"
  apt_download "$2" source --download-only "$1"
}

# fetch_debian_source PKG UPSTREAM_VERSION ORIG_SHA256 WORK DEST
#   Downloads source package PKG into WORK (emptied first), checks that its
#   upstream version is UPSTREAM_VERSION and that its .orig tarball has
#   ORIG_SHA256, and unpacks it into DEST (which must not exist) with Debian's
#   patches applied. Sets debian_version (e.g. 2.1.3+dfsg1-2) and orig_tarball
#   (the tarball's file name).
fetch_debian_source() {
  # Local names differ from the callers' (some of theirs are readonly).
  local pkg=$1 want_upstream=$2 want_sha256=$3 dl_dir=$4 unpack_dir=$5
  ensure_packages "${DEBIAN_SOURCE_PACKAGES[@]}"
  ensure_source_index "$pkg"

  retry_after_update download_source "$pkg" "$dl_dir" || die "apt-get source $pkg failed"

  local dscs origs
  shopt -s nullglob
  dscs=("$dl_dir"/"$pkg"_*.dsc)
  origs=("$dl_dir"/"$pkg"_*.orig.tar.*)
  shopt -u nullglob
  ((${#dscs[@]} == 1)) || die "expected one .dsc in $dl_dir, found ${#dscs[@]}"
  ((${#origs[@]} == 1)) || die "expected one .orig tarball in $dl_dir, found ${#origs[@]}"

  debian_version=$(sed -n 's/^Version:[[:space:]]*//p' "${dscs[0]}" | head -n1)
  local upstream_found=${debian_version#*:}
  upstream_found=${upstream_found%-*}
  [[ $upstream_found == "$want_upstream" ]] \
    || die "Debian's source package is $pkg $debian_version, not upstream $want_upstream; update ${BASH_SOURCE[1]##*/} deliberately"

  orig_tarball=$(basename "${origs[0]}")
  local found_sha
  found_sha=$(sha256sum "${origs[0]}" | cut -d' ' -f1)
  [[ $found_sha == "$want_sha256" ]] || die "$orig_tarball has SHA-256 $found_sha, expected $want_sha256"
  log "source: $pkg $debian_version ($orig_tarball sha256 ok)"

  # dpkg-source checks the tarballs against the .dsc checksums (the .dsc itself
  # was checked by apt against the signed index) and applies Debian's patches.
  dpkg-source -x "${dscs[0]}" "$unpack_dir" >&2
}

# --- target architecture ---------------------------------------------------------

# uname -m as node's process.arch (x64, arm64), or empty for another machine.
host_arch() {
  case $(uname -m) in
    x86_64) echo x64 ;;
    aarch64) echo arm64 ;;
  esac
}

# set_target_arch ARCH: what building for node's ARCH (x64 or arm64; empty:
# this machine's) takes, and running it here. Sets:
#   target_arch     x64 | arm64, as node's process.arch names it
#   deb_arch        amd64 | arm64, as Debian names it
#   target_triplet  x86_64-linux-gnu | aarch64-linux-gnu
#   cross           the tools' prefix: empty on a machine of that architecture,
#                   else "<triplet>-" (Debian's cross gcc, g++ and binutils)
#   cross_packages  the Debian packages of those cross tools (empty natively)
#   qemu            empty natively, else Debian's qemu-user-static binary that
#                   runs the target's programs here (qemu-aarch64-static)
#   target_deps     where its builds are cached, relative to the repository:
#                   .deps natively, .deps/<arch> for a cross build
set_target_arch() {
  local host
  host=$(host_arch)
  target_arch=${1:-$host}
  case $target_arch in
    x64) deb_arch=amd64 target_triplet=x86_64-linux-gnu qemu_cpu=x86_64 ;;
    arm64) deb_arch=arm64 target_triplet=aarch64-linux-gnu qemu_cpu=aarch64 ;;
    '') die "unknown machine $(uname -m): pass --arch x64 or --arch arm64" ;;
    *) die "unsupported architecture '$target_arch' (x64 or arm64)" ;;
  esac
  if [[ $target_arch == "$host" ]]; then
    cross='' cross_packages=() qemu=''
  else
    cross=$target_triplet-
    cross_packages=("gcc-$target_triplet" "g++-$target_triplet" "binutils-$target_triplet")
    qemu=qemu-$qemu_cpu-static
  fi
  target_deps=.deps${cross:+/$target_arch}
}

# parse_arch_args HELP_LINES ARG...: a build script's arguments, whose one
# option is --arch ARCH (or --arch=ARCH), into set_target_arch; -h or --help
# prints the lines HELP_LINES (a sed range, e.g. 2,30) of that script.
parse_arch_args() {
  local help=$1 arch=
  shift
  while (($# > 0)); do
    case $1 in
      --arch) [[ $# -ge 2 ]] || die "--arch needs a value (x64 or arm64)"; arch=$2; shift 2 ;;
      --arch=*) arch=${1#--arch=}; shift ;;
      -h|--help) sed -n "${help}p" "${BASH_SOURCE[1]}"; exit 0 ;;
      *) die "unknown argument $1 (see --help)" ;;
    esac
  done
  set_target_arch "$arch"
}

# --- another architecture's packages, unpacked ---------------------------------------

# ensure_architecture DEB_ARCH: dpkg knows DEB_ARCH (apt can then download its
# packages; nothing of it is installed).
ensure_architecture() {
  [[ $1 == "$(dpkg --print-architecture)" ]] && return 0
  dpkg --print-foreign-architectures | grep -qx "$1" && return 0
  log "dpkg --add-architecture $1"
  as_root dpkg --add-architecture "$1"
  apt_update
}

# cached_deb CACHE PKG DEB_ARCH: prints the one PKG_*_DEB_ARCH.deb in CACHE;
# fails, removing them, when there are none or several.
cached_deb() {
  local found
  found=$(compgen -G "$1/$2_*_$3.deb") || return 1
  if [[ $found == *$'\n'* ]]; then
    local f
    while IFS= read -r f; do rm -f "$f"; done <<<"$found"
    return 1
  fi
  printf '%s\n' "$found"
}

# unpack_debs DEB_ARCH DEST CACHE PKG...: `apt-get download` of each PKG for
# DEB_ARCH into CACHE (kept, so a second run downloads nothing; several DESTs
# may share one CACHE), and `dpkg -x` of each into DEST, which is made afresh
# beside itself and moved into place. A stamp in DEST names the packages: when
# it names the same ones, nothing is done (no network). Its last line records
# the versions unpacked.
unpack_debs() {
  local arch=$1 dest=$2 cache=$3
  shift 3
  local stamp=$dest/.tsmuxd-debs.stamp want
  want=$(printf 'arch=%s\npackages=%s\n' "$arch" "$*")
  if [[ -f $stamp ]] && [[ "$(grep -v '^versions=' "$stamp")" == "$want" ]]; then
    return 0
  fi
  ensure_architecture "$arch"
  mkdir -p "$cache"
  local pkg missing=()
  for pkg in "$@"; do
    cached_deb "$cache" "$pkg" "$arch" >/dev/null || missing+=("$pkg:$arch")
  done
  if ((${#missing[@]} > 0)); then
    log "apt-get download ${missing[*]} into $cache"
    retry_after_update apt_download "$cache" download "${missing[@]}" || die "apt-get download ${missing[*]} failed"
  fi
  local work deb versions=()
  mkdir -p "$(dirname "$dest")"
  work=$(mktemp -d "$(dirname "$dest")/.tsmuxd-debs.XXXXXX")
  for pkg in "$@"; do
    deb=$(cached_deb "$cache" "$pkg" "$arch") || { rm -rf "$work"; die "apt-get download left no single $pkg:$arch in $cache"; }
    dpkg -x "$deb" "$work" || { rm -rf "$work"; die "dpkg -x $deb failed"; }
    versions+=("$pkg=$(dpkg-deb -f "$deb" Version)")
  done
  { printf '%s\n' "$want"; printf 'versions=%s\n' "${versions[*]}"; } >"$work/.tsmuxd-debs.stamp"
  rm -rf "$dest"
  mv "$work" "$dest"
  log "unpacked ${versions[*]} ($arch) in $dest"
}
