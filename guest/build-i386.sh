#!/usr/bin/env bash
# Builds the 32-bit test guest: Debian's i386 kernel (FLAVOUR=686-pae, the default, or FLAVOUR=686 for non-PAE paging),
# i386 busybox-static, and guest/workload.c and guest/programs/*.c built with gcc -m32 -static (libc6-dev-i386 and
# lib32gcc-12-dev, see scripts/install-deps), around the same guest/init as the 64-bit guest. The i386 packages come
# through a private apt state under .cache/i386/ (the mirror read from this machine's apt sources, APT::Architecture
# i386): the system's apt configuration is never changed. The tamper module (tamper/) is built for the guest's kernel
# from its i386 linux-headers packages (flavour + -common, cached with the other debs) with the host's gcc and the
# host's amd64 linux-kbuild-6.1 (installed with linux-headers-amd64 by scripts/install-deps): the i386 kbuild package's
# host tools (fixdep, modpost) are i386 binaries, and kbuild's host tools do not depend on the target word size. It is
# copied to /lib/modules/periscope_tamper.ko and NOT loaded at boot; if it cannot be built the guest has none (said on
# stderr). Cached under .cache/guest-i386/ and rebuilt only when the kernel package, the guest files or tamper/ change.
# Prints the directory holding vmlinuz and initrd.gz.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/guest"
# shellcheck source=guest/rootfs.sh
source "$src/rootfs.sh"
state="$root/.cache/i386"
flavour="${FLAVOUR:-686-pae}"
case "$flavour" in 686-pae|686) ;; *) echo "FLAVOUR must be 686-pae or 686" >&2; exit 2 ;; esac
modules="crc7|crc8 crc-itu-t omfs dummy qemu_fw_cfg"

mirror=""
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/ && /debian\/?$/ {print $2; exit} /^deb / && $0 ~ / bookworm / {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' "$f" | head -1)
  [ -n "$mirror" ] && break
done
[ -n "$mirror" ] || { echo "build-i386: no Debian mirror found in this machine's apt sources" >&2; exit 1; }
mkdir -p "$state/apt/lists/partial" "$state/apt/cache/archives/partial" "$state/debs"
# One build at a time: the two Guest32 fixtures (686-pae and 686) start together, and on a clean clone both would run
# apt on this one private state; the loser of apt's lock failed with exit 100 (kernel matrix, 2026-11-30). Waiting here
# also lets the second one find what the first fetched.
exec 9>"$state/build.lock"
flock 9
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$mirror" bookworm "$mirror" bookworm-updates \
  > "$state/apt/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$state/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$state/apt/lists" -o "Dir::Cache=$state/apt/cache" -o Dir::State::status=/dev/null
  -o APT::Architecture=i386 -o APT::Architectures=i386 -o APT::Get::List-Cleanup=0)
if [ -z "$(find "$state/apt/lists" -name '*i386_Packages*' 2>/dev/null | head -1)" ]; then
  apt-get "${apt_opts[@]}" update -q >&2 || true
fi
kpkg=$(apt-cache "${apt_opts[@]}" depends "linux-image-$flavour" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { echo "build-i386: cannot resolve linux-image-$flavour (i386)" >&2; exit 1; }

key="$kpkg-$( (cat "$src/build-i386.sh" "$src/rootfs.sh" "$src/init" "$src/workload.c" "$root/tamper/periscope_tamper.c" "$root/tamper/Makefile"
  for f in "$src"/programs/*.c "$src"/start.d/*.sh "$src"/truth.d/*.sh; do [ -f "$f" ] && { echo "$f"; cat "$f"; }; done
  true) | sha256sum | cut -c1-12)"
out="$root/.cache/guest-i386/$key"
if [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ]; then
  ln -sfn "$key" "$root/.cache/guest-i386/$flavour"
  echo "$out"; exit 0
fi
( cd "$state/debs"
  ls "${kpkg}"_*.deb >/dev/null 2>&1 || apt-get "${apt_opts[@]}" download "$kpkg" >&2
  ls busybox-static_*_i386.deb >/dev/null 2>&1 || apt-get "${apt_opts[@]}" download busybox-static >&2
  hpkg="linux-headers-${kpkg#linux-image-}"
  ls "${hpkg}"_*.deb >/dev/null 2>&1 || apt-get "${apt_opts[@]}" download "$hpkg" >&2 || true
  common=$(apt-cache "${apt_opts[@]}" depends "$hpkg" 2>/dev/null | awk '/Depends: linux-headers-.*-common/ {print $2; exit}')
  if [ -n "$common" ]; then ls "${common}"_*.deb >/dev/null 2>&1 || apt-get "${apt_opts[@]}" download "$common" >&2 || true; fi
) 2>&1 | grep -v unsandboxed >&2 || true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$(ls "$state/debs/${kpkg}"_*.deb | head -1)" "$work/kernel"
version=$(ls "$work/kernel/lib/modules")
module_tree="$work/kernel/lib/modules/$version"
dpkg-deb -x "$(ls "$state"/debs/busybox-static_*_i386.deb | head -1)" "$work/busybox"

# gcc -m32 without gcc-multilib: the x86 uapi <asm/*.h> headers serve both word sizes.
cc32=(gcc -m32 -static -O2 -pthread -idirafter /usr/include/x86_64-linux-gnu)
rootfs="$work/rootfs"
populate_rootfs "$rootfs" "$work/busybox/bin/busybox" "$module_tree" "$modules" skip "${cc32[@]}"

# The tamper module. The flavour's headers include the -common tree's Makefile by its absolute /usr/src path and reach
# kbuild through scripts -> ../../lib/linux-kbuild-6.1/scripts: both are pointed into $work.
build_tamper() {
  local hdeb cdeb kbuild=/usr/lib/linux-kbuild-${version%%.*}.$(echo "$version" | cut -d. -f2) hdir
  hdeb=$(ls "$state/debs/linux-headers-$version"_*.deb 2>/dev/null | head -1)
  cdeb=$(ls "$state/debs/linux-headers-${version%-$flavour}-common"_*.deb 2>/dev/null | head -1)
  [ -n "$hdeb" ] && [ -n "$cdeb" ] || { echo "build-i386: no linux-headers debs for $version" >&2; return 1; }
  [ -d "$kbuild/scripts" ] || { echo "build-i386: $kbuild (the host's linux-kbuild package) is not installed" >&2; return 1; }
  dpkg-deb -x "$hdeb" "$work/headers"
  dpkg-deb -x "$cdeb" "$work/headers"
  mkdir -p "$work/headers/usr/lib"
  ln -sfn "$kbuild" "$work/headers/usr/lib/$(basename "$kbuild")"
  hdir="$work/headers/usr/src/linux-headers-$version"
  sed -i "s|^include /usr/src/|include $work/headers/usr/src/|" "$hdir/Makefile"
  mkdir -p "$work/tamper"
  cp "$root/tamper/periscope_tamper.c" "$root/tamper/Makefile" "$work/tamper/"
  make -s -C "$work/tamper" KDIR="$hdir" >&2 || return 1
  strip --strip-debug -o "$rootfs/lib/modules/periscope_tamper.ko" "$work/tamper/periscope_tamper.ko"
}
build_tamper || echo "build-i386: this guest has no tamper module (see above)" >&2

mkdir -p "$out.tmp"
cp "$work/kernel/boot/vmlinuz-$version" "$out.tmp/vmlinuz"
( cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$out.tmp/initrd.gz"
echo "$version" > "$out.tmp/kernel-version"
rm -rf "$out"; mv "$out.tmp" "$out"
ln -sfn "$key" "$root/.cache/guest-i386/$flavour"
echo "$out"
