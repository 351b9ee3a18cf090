#!/usr/bin/env bash
# Builds Periscope's demo/test guest from Debian packages only: the current linux-image-amd64 kernel, a few of its
# modules, busybox-static, a static workload program and the periscope_tamper test module (tamper/, built against
# the matching linux-headers package; copied to /lib/modules/periscope_tamper.ko but NOT loaded at boot), packed into
# an initramfs. Cached under .cache/guest/ and rebuilt only when the kernel version or the files in guest/ or tamper/
# change. Prints the directory holding vmlinuz and initrd.gz.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/guest"
tamper="$root/tamper"
cache="$root/.cache"
modules="crc7 crc-itu-t dummy qemu_fw_cfg"

if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then apt-get update -q >&2; fi
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { echo "cannot resolve the kernel package behind linux-image-amd64" >&2; exit 1; }
key="$kpkg-$(cat "$src/build.sh" "$src/init" "$src/workload.c" "$tamper/periscope_tamper.c" "$tamper/Makefile" | sha256sum | cut -c1-12)"
out="$cache/guest/$key"
if [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ]; then
  ln -sfn "$key" "$cache/guest/current"
  echo "$out"
  exit 0
fi

debs="$cache/debs"
mkdir -p "$debs"
( cd "$debs"
  ls ${kpkg}_*.deb >/dev/null 2>&1 || apt-get download "$kpkg" >&2
  ls busybox-static_*.deb >/dev/null 2>&1 || apt-get download busybox-static >&2 ) 2>&1 | grep -v "unsandboxed" >&2 || true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$(ls "$debs"/${kpkg}_*.deb | head -1)" "$work/kernel"
dpkg-deb -x "$(ls "$debs"/busybox-static_*.deb | head -1)" "$work/busybox"
version=$(ls "$work/kernel/lib/modules")
headers="/usr/src/linux-headers-$version"
[ -f "$headers/Makefile" ] || { echo "linux-headers-$version is not installed (run scripts/install-deps)" >&2; exit 1; }

rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules}
cp "$work/busybox/bin/busybox" "$rootfs/bin/busybox"
cp "$src/init" "$rootfs/init"
chmod +x "$rootfs/init"
gcc -static -O2 -pthread -o "$rootfs/bin/workload" "$src/workload.c"
# A second name for workload holding terminal escapes (ESC[2J, BEL), run by /init (CliTests): in the image, so its
# code pages have a file reference like every other program's.
ln "$rootfs/bin/workload" "$rootfs/bin/$(printf 'esc\033[2J\007')"
: > "$rootfs/etc/modules-load"
for m in $modules; do
  ko=$(find "$work/kernel/lib/modules/$version" -name "$m.ko" -o -name "$m.ko.xz" | head -1)
  [ -n "$ko" ] || { echo "module $m not found in $kpkg" >&2; exit 1; }
  case "$ko" in *.xz) xz -dc "$ko" > "$rootfs/lib/modules/$m.ko" ;; *) cp "$ko" "$rootfs/lib/modules/$m.ko" ;; esac
  echo "$m" >> "$rootfs/etc/modules-load"
done

# The tamper module, built in a scratch copy so that tamper/ stays free of build products.
mkdir -p "$work/tamper"
cp "$tamper/periscope_tamper.c" "$tamper/Makefile" "$work/tamper/"
make -s -C "$work/tamper" KDIR="$headers" >&2
strip --strip-debug -o "$rootfs/lib/modules/periscope_tamper.ko" "$work/tamper/periscope_tamper.ko"

mkdir -p "$out.tmp"
cp "$work/kernel/boot/vmlinuz-$version" "$out.tmp/vmlinuz"
( cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$out.tmp/initrd.gz"
echo "$version" > "$out.tmp/kernel-version"
cp -a "$rootfs" "$out.tmp/rootfs"   # the guest's files, for tests that import expected code-page hashes
rm -rf "$out"
mv "$out.tmp" "$out"
ln -sfn "$key" "$cache/guest/current"
echo "$out"
