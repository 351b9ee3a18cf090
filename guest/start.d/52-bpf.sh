# eBPF and page cache views (issue 13 part C; BpfViewsTests), only in guests booted with "periscope.bpf" on the kernel
# command line (the other guests' socket and file views stay as they were): /bin/bpfload loads a map and four
# programs, attaches three (four with TC: tcx on 6.6+, a cls_bpf filter before), and holds them; `bpfload tracing` attaches four more (kprobe, kretprobe, tracepoint,
# fentry); the script waits (bounded) until both say everything is in place.
if grep -qw periscope.bpf /proc/cmdline; then
  # clsact and cls_bpf for bpfload's TC program before 6.6 (no modprobe here to load them on demand).
  for m in sch_ingress cls_bpf; do [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko; done
  /bin/bpfload > /tmp/bpfload.out 2>&1 &
  /bin/bpfload tracing > /tmp/bpfload-tracing.out 2>&1 &
  bpf_wait=0
  while { [ ! -e /tmp/bpfload.ready ] || [ ! -e /tmp/bpfload-tracing.ready ]; } && [ $bpf_wait -lt 120 ]; do sleep 1; bpf_wait=$((bpf_wait + 1)); done
  # A file with holes for `dump file`: pages 0-1 and 5 hold data, pages 2-4 were never written, the last is partial.
  dd if=/bin/busybox of=/tmp/pscope-pages bs=4096 count=2 2>/dev/null
  dd if=/bin/busybox of=/tmp/pscope-pages bs=4096 count=1 skip=7 seek=5 conv=notrunc 2>/dev/null
  printf 'periscope page cache tail\n' >> /tmp/pscope-pages
fi
