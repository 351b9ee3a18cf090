#!/usr/bin/env bash
# Builds Periscope's demo/test guest from Debian packages only: the current linux-image-amd64 kernel, a few of its
# modules, busybox-static, a static workload program and the periscope_tamper test module (tamper/, built against
# the matching linux-headers package; copied to /lib/modules/periscope_tamper.ko but NOT loaded at boot), packed into
# an initramfs. Cached under .cache/guest/ and rebuilt only when the kernel version or the files in guest/ or tamper/
# change. Prints the directory holding vmlinuz and initrd.gz.
#
# With PERISCOPE_KERNEL_TREE=DIR (a kernel package extracted by scripts/kernel-matrix: DIR/vmlinuz and
# DIR/lib/modules/VERSION), the guest is built around that kernel instead, under .cache/guest/VERSION-…; the tamper
# module is then built against that kernel's installed headers, or else fetched headers in that kernel's own Debian
# userland (scripts/build-tamper-module; PERISCOPE_FETCH_HEADERS=0 skips it: scripts/kernel-matrix does not need it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/guest"
# shellcheck source=guest/rootfs.sh
source "$src/rootfs.sh"
tamper="$root/tamper"
cache="$root/.cache"
# Modules loaded at boot; "a|b" takes the first one this kernel has (crc7 is gone from Linux 7.x, crc8 stands in; the
# cloud flavours build neither: "?"); omfs (or udf, in the cloud flavours, which lack omfs) uses crc-itu-t, so
# /proc/modules has a "used by" entry to compare with; each module's own dependencies are loaded before it.
modules="crc7|crc8|? crc-itu-t omfs|udf dummy qemu_fw_cfg"
tree="${PERISCOPE_KERNEL_TREE:-}"

if [ -n "$tree" ]; then
  version=$(ls "$tree/lib/modules" | head -1)
  [ -f "$tree/vmlinuz" ] && [ -n "$version" ] || { echo "$tree: not a kernel tree from scripts/kernel-matrix" >&2; exit 1; }
  kpkg="$version"
else
  if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then apt-get update -q >&2; fi
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$kpkg" ] || { echo "cannot resolve the kernel package behind linux-image-amd64" >&2; exit 1; }
fi
key="$kpkg-$( (cat "$src/build.sh" "$src/rootfs.sh" "$src/init" "$src/workload.c" "$tamper/periscope_tamper.c" "$tamper/Makefile"
  [ -z "$tree" ] || echo "fetch headers: ${PERISCOPE_FETCH_HEADERS:-1}"
  for f in "$src"/programs/*.c "$src"/start.d/*.sh "$src"/truth.d/*.sh; do [ -f "$f" ] && { echo "$f"; cat "$f"; }; done
  true) | sha256sum | cut -c1-12)"
out="$cache/guest/$key"
current() { [ -n "$tree" ] || ln -sfn "$key" "$cache/guest/current"; }
if [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ]; then
  current
  echo "$out"
  exit 0
fi

debs="$cache/debs"
mkdir -p "$debs"
( cd "$debs"
  [ -n "$tree" ] || ls ${kpkg}_*.deb >/dev/null 2>&1 || apt-get download "$kpkg" >&2
  ls busybox-static_*.deb >/dev/null 2>&1 || apt-get download busybox-static >&2 ) 2>&1 | grep -v "unsandboxed" >&2 || true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$tree" ]; then
  kernel_image="$tree/vmlinuz"
  module_tree="$tree/lib/modules/$version"
else
  dpkg-deb -x "$(ls "$debs"/${kpkg}_*.deb | head -1)" "$work/kernel"
  version=$(ls "$work/kernel/lib/modules")
  kernel_image="$work/kernel/boot/vmlinuz-$version"
  module_tree="$work/kernel/lib/modules/$version"
fi
dpkg-deb -x "$(ls "$debs"/busybox-static_*.deb | head -1)" "$work/busybox"
headers="/usr/src/linux-headers-$version"
if [ ! -f "$headers/Makefile" ]; then
  [ -n "$tree" ] || { echo "linux-headers-$version is not installed (run scripts/install-deps)" >&2; exit 1; }
  echo "linux-headers-$version is not installed here" >&2
  headers=""
fi

rootfs="$work/rootfs"
populate_rootfs "$rootfs" "$work/busybox/bin/busybox" "$module_tree" "$modules" fatal gcc -static -O2 -pthread
# Copied but not loaded at boot: the clsact qdisc and the cls_bpf classifier, which guest/start.d/52-bpf.sh loads in
# the eBPF guest only (bpfload attaches a cls_bpf program on kernels before 6.6, which have no tcx).
for m in sch_ingress cls_bpf; do
  ko=$(find "$module_tree" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) | head -1)
  case "$ko" in
    "") echo "module $m not found in $module_tree" >&2 ;;
    *.xz) xz -dc "$ko" > "$rootfs/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$ko" > "$rootfs/lib/modules/$m.ko" ;;
    *) cp "$ko" "$rootfs/lib/modules/$m.ko" ;;
  esac
done

# The tamper module, built in a scratch copy so that tamper/ stays free of build products.
if [ -n "$headers" ]; then
  mkdir -p "$work/tamper"
  cp "$tamper/periscope_tamper.c" "$tamper/Makefile" "$work/tamper/"
  make -s -C "$work/tamper" KDIR="$headers" >&2
  strip --strip-debug -o "$rootfs/lib/modules/periscope_tamper.ko" "$work/tamper/periscope_tamper.ko"
elif [ -n "$tree" ] && [ "${PERISCOPE_FETCH_HEADERS:-1}" = 1 ]; then
  # Another Debian release's kernel: its headers and compiler are fetched (PERISCOPE_FETCH_HEADERS=0: no module).
  if bash "$root/scripts/build-tamper-module" "$version" "$work/periscope_tamper.ko" >&2; then
    strip --strip-debug -o "$rootfs/lib/modules/periscope_tamper.ko" "$work/periscope_tamper.ko"
  else
    echo "no tamper module for $version (see above)" >&2
  fi
else
  echo "this guest has no tamper module" >&2
fi

mkdir -p "$out.tmp"
cp "$kernel_image" "$out.tmp/vmlinuz"
( cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$out.tmp/initrd.gz"
echo "$version" > "$out.tmp/kernel-version"
cp -a "$rootfs" "$out.tmp/rootfs"   # the guest's files, for tests that import expected code-page hashes
rm -rf "$out"
mv "$out.tmp" "$out"
current
echo "$out"
