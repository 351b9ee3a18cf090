# Sourced by guest/build.sh and guest/build-i386.sh: the guest's root file system, the same for both word sizes.
# populate_rootfs ROOTFS BUSYBOX MODULE_TREE "MODULES" PROGRAM_FAILURE CC...
#   BUSYBOX          the busybox-static binary
#   MODULES          kernel modules to copy and load at boot, space separated; "a|b" takes the first one found
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
  local wanted m ko
  for wanted in $modules; do
    ko=""
    for m in ${wanted//|/ }; do
      ko=$(find "$module_tree" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) | head -1)
      [ -z "$ko" ] || break
    done
    [ -n "$ko" ] || { echo "$(basename "$0"): module $wanted not found in $module_tree" >&2; return 1; }
    case "$ko" in
      *.xz) xz -dc "$ko" > "$rootfs/lib/modules/$m.ko" ;;
      *.zst) zstd -qdc "$ko" > "$rootfs/lib/modules/$m.ko" ;;
      *) cp "$ko" "$rootfs/lib/modules/$m.ko" ;;
    esac
    echo "$m" >> "$rootfs/etc/modules-load"
  done
}
