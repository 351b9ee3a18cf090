# Sourced by guest/build.sh and guest/build-i386.sh: the guest's root file system, the same for both word sizes.
# populate_rootfs ROOTFS BUSYBOX MODULE_TREE "MODULES" PROGRAM_FAILURE CC...
#   BUSYBOX          the busybox-static binary
#   MODULES          kernel modules to copy and load at boot, space separated; "a|b" takes the first one found, "a|b|?"
#                    none if neither is there; each module's own dependencies come along
#   PROGRAM_FAILURE  fatal: a guest/programs/*.c that does not build stops the build; skip: it is left out, said on stderr
#   CC...            the compiler command line for static guest programs (gcc -static ... or gcc -m32 -static ...)
# Uses $src (the guest/ folder) of the sourcing script.
populate_rootfs() {
  local rootfs=$1 busybox=$2 module_tree=$3 modules=$4 on_failure=$5
  shift 5
  mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules}
  cp "$busybox" "$rootfs/bin/busybox"
  cp "$src/init" "$rootfs/init"
  chmod +x "$rootfs/init"
  "$@" -o "$rootfs/bin/workload" "$src/workload.c"
  # A second name for workload holding terminal escapes (ESC[2J, BEL), run by /init (CliTests): in the image, so its
  # code pages have a file reference like every other program's.
  ln "$rootfs/bin/workload" "$rootfs/bin/$(printf 'esc\033[2J\007')"
  # Feature hooks: guest/programs/NAME.c becomes the static /bin/NAME; guest/start.d and guest/truth.d scripts are
  # sourced by /init (start: before the ground truth is printed; truth: inside it, on ttyS1).
  local c f d
  for c in "$src"/programs/*.c; do
    [ -f "$c" ] || continue
    if ! "$@" -o "$rootfs/bin/$(basename "$c" .c)" "$c"; then
      [ "$on_failure" = skip ] || return 1
      echo "$(basename "$0"): $c does not build for this guest, skipped" >&2
    fi
  done
  mkdir -p "$rootfs/etc/start.d" "$rootfs/etc/truth.d"
  for d in start.d truth.d; do
    for f in "$src/$d"/*.sh; do [ -f "$f" ] && cp "$f" "$rootfs/etc/$d/"; done
  done
  : > "$rootfs/etc/modules-load"
  local wanted m found
  for wanted in $modules; do
    found=""
    for m in ${wanted//|/ }; do
      [ "$m" = "?" ] && { found="?"; break; }
      if add_module "$rootfs" "$module_tree" "$m" 0; then found=$m; break; fi
    done
    [ -n "$found" ] || { echo "$(basename "$0"): module $wanted not found in $module_tree" >&2; return 1; }
  done
}

# add_module ROOTFS MODULE_TREE NAME DEPTH: copies NAME.ko (decompressed) and, first, every module its own modinfo
# `depends=` names, recursively, and appends each to /etc/modules-load once, dependencies before users (/init loads
# them with insmod, which resolves nothing). Flavours differ in what they build as modules (cloud has no omfs, its udf
# also needs cdrom), so the dependencies are read from the module, not listed here. Fails when NAME is not there.
add_module() {
  local rootfs=$1 module_tree=$2 name=$3 depth=$4 ko dep deps
  grep -qx "$name" "$rootfs/etc/modules-load" && return 0
  [ "$depth" -lt 8 ] || { echo "$(basename "$0"): module dependencies of $name nest too deep" >&2; return 1; }
  ko=$(find "$module_tree" \( -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" \
    -o -name "${name//-/_}.ko" -o -name "${name//-/_}.ko.xz" -o -name "${name//-/_}.ko.zst" \) | head -1)
  [ -n "$ko" ] || return 1
  case "$ko" in
    *.xz) xz -dc "$ko" > "$rootfs/lib/modules/$name.ko" ;;
    *.zst) zstd -qdc "$ko" > "$rootfs/lib/modules/$name.ko" ;;
    *) cp "$ko" "$rootfs/lib/modules/$name.ko" ;;
  esac
  deps=$(tr '\0' '\n' < "$rootfs/lib/modules/$name.ko" | sed -n 's/^depends=//p' | head -1)
  for dep in ${deps//,/ }; do
    add_module "$rootfs" "$module_tree" "$dep" $((depth + 1)) \
      || { echo "$(basename "$0"): $name needs $dep, not found in $module_tree" >&2; return 1; }
  done
  echo "$name" >> "$rootfs/etc/modules-load"
}
