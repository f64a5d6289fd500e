#!/usr/bin/env bash
# Builds qemu-system-x86_64 with the vfio-user client (QEMU >= 10.1; Debian 12 ships 7.2) and
# libvfio-user's sample servers, from Debian's own qemu source package, into a cache outside the
# checkout: ~/.cache/xpci/qemu-<debian version without epoch>/ (bin/qemu-system-x86_64, bin/gpio-pci-idio-16, ...).
#
# Idempotent: a finished build (the `complete` stamp) is reused; a second run waits on the lock.
# The machine's apt sources are never changed: a private apt configuration (its own sources file
# and list directory inside the cache) reads Debian unstable's source and meson/pycotap .debs,
# which are only extracted (dpkg -x), never installed. Build dependencies come from the machine's
# own Debian 12 sources with apt-get (needs root when something is missing).
#
# Prints the cache directory on its last line of stdout. Exit status 3 means the source could not
# be fetched at all (no network / no such version): callers skip with a banner on that status only.
set -euo pipefail

QEMU_SERIES="${XPCI_QEMU_SERIES:-10.2}"            # newest 1:<series>.x in unstable is taken
MIRROR="${XPCI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE_ROOT="${XPCI_CACHE:-$HOME/.cache/xpci}"
SOURCE_UNAVAILABLE=3
build_deps=(gcc g++ make python3 python3-venv zlib1g-dev libglib2.0-dev libpixman-1-dev flex bison
  device-tree-compiler libslirp-dev libfdt-dev ninja-build pkg-config libjson-c-dev libcmocka-dev
  qemu-system-data seabios xz-utils bzip2)

log() { echo "build-qemu-vfio-user: $*" >&2; }

mkdir -p "$CACHE_ROOT"
apt_dir="$CACHE_ROOT/qemu-apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
echo "deb-src $MIRROR sid main
deb $MIRROR sid main" > "$apt_dir/sources.list"
private_apt=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
  -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Architecture=amd64
  -o Debug::NoLocking=1)

# The lists are refreshed at most once a day: the version below keys the cache directory.
stamp="$apt_dir/lists/.updated"
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
  if apt-get "${private_apt[@]}" -q update >&2; then touch "$stamp"; fi
fi
qemu_version="$(apt-cache "${private_apt[@]}" showsrc qemu 2>/dev/null \
  | sed -n 's/^Version: //p' | grep -E "^1:${QEMU_SERIES//./\\.}\." | sort -V | tail -1 || true)"
if [ -z "$qemu_version" ]; then
  # Offline with a finished build from an earlier run: reuse the newest one of this series.
  reuse="$(ls -d "$CACHE_ROOT"/qemu-"$QEMU_SERIES".* 2>/dev/null | sort -V | tail -1 || true)"
  if [ -n "$reuse" ] && [ -f "$reuse/complete" ]; then echo "$reuse"; exit 0; fi
  log "SKIP: Debian's qemu $QEMU_SERIES.x source package cannot be fetched from $MIRROR (sid)"
  exit "$SOURCE_UNAVAILABLE"
fi

# Without the epoch: a ':' in the path would split PATH and PYTHONPATH below.
out="$CACHE_ROOT/qemu-${qemu_version#*:}"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -f "$out/complete" ]; then echo "$out"; exit 0; fi
log "building QEMU $qemu_version with vfio-user into $out (15-30 min; log in $out/build.log)"

installed="$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 == "ii" { sub(/:.*/, "", $2); print $2 }')"
mapfile -t missing < <(printf '%s\n' "${build_deps[@]}" | grep -vxF -f <(echo "$installed") || true)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing build dependencies from the machine's sources: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
fi

work="$out/work"
export PATH="$work/tools/usr/bin:$PATH"
export PYTHONPATH="$work/tools/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}"
# An interrupted build (its configure finished) resumes where ninja stopped: a fresh start costs
# the whole compile again (an hour and more on a busy 2-core machine).
resumable="$(ls -d "$work"/qemu-*/build/build.ninja 2>/dev/null | head -1 || true)"
if [ -n "$resumable" ] && [ -x "$work/tools/usr/bin/meson" ]; then
  log "resuming the interrupted build in ${resumable%/build.ninja}"
  cd "${resumable%/build.ninja}"
else
  rm -rf "$work"
  mkdir -p "$work"
  cd "$work"
  if ! apt-get "${private_apt[@]}" -q source --download-only "qemu=$qemu_version" >&2; then
    log "SKIP: qemu $qemu_version source download failed"
    exit "$SOURCE_UNAVAILABLE"
  fi
  apt-get "${private_apt[@]}" -q download meson python3-pycotap >&2
  mkdir tools
  for deb in ./*.deb; do dpkg -x "$deb" tools; done
  tar xf qemu_*.orig.tar.xz
  src="$(find . -maxdepth 1 -type d -name 'qemu-*' | head -1)"
  cd "$src"
  # The +ds tarball has the firmware blobs stripped; firmware comes from Debian 12's packages (-L).
  sed -i "s/unpack_edk2_blobs = bzip2.found()/unpack_edk2_blobs = false/" meson.build
  mkdir build
  cd build
  nice ../configure --target-list=x86_64-softmmu --disable-docs --disable-rust --disable-gtk \
    --disable-sdl --disable-vnc --disable-opengl --disable-spice --disable-werror \
    --disable-install-blobs --disable-download --prefix="$out" >&2
  grep -q '^#define CONFIG_VFIO_USER' config-host.h 2>/dev/null \
    || grep -rq 'CONFIG_VFIO_USER=y' x86_64-softmmu-config-devices.mak \
    || { log "configure did not enable CONFIG_VFIO_USER"; exit 1; }
fi
meson_version="$(meson --version)"
nice ninja -j2 qemu-system-x86_64 >&2
mkdir -p "$out/bin"
cp qemu-system-x86_64 "$out/bin/"
cd ../subprojects/libvfio-user
# Static, so the samples survive the removal of the build tree.
[ -f build/build.ninja ] || nice meson setup build -Ddefault_library=static >&2
nice ninja -C build -j2 >&2
for sample in gpio-pci-idio-16 server client null lspci; do
  [ -x "build/samples/$sample" ] && cp "build/samples/$sample" "$out/bin/"
done
[ -x "$out/bin/gpio-pci-idio-16" ] || { log "libvfio-user samples did not build"; exit 1; }

# Firmware directories the binary needs at run time (the +ds tarball carries none).
printf '%s\n' /usr/share/qemu /usr/share/seabios > "$out/firmware-dirs"
printf 'qemu=%s meson=%s\n' "$qemu_version" "$meson_version" > "$out/complete"
cd "$out"
rm -rf "$work"
log "done: $out"
echo "$out"
