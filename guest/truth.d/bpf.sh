# The kernel's own eBPF view (BPF_*_GET_NEXT_ID and BPF_OBJ_GET_INFO_BY_FD, as bpftool lists it), what bpfload
# attached, and the sha256 and size of files `dump file` reads from the page cache (guests with "periscope.bpf").
if grep -qw periscope.bpf /proc/cmdline; then
  echo "@@BEGIN bpf-list"
  /bin/bpfload list
  echo "@@BEGIN bpf-attach"
  cat /tmp/bpfload.out /tmp/bpfload-tracing.out
  echo "@@BEGIN pagecache"
  for f in /tmp/pscope-pages /bin/busybox; do echo "$f $(stat -c %s $f) $(sha256sum < $f | cut -d' ' -f1)"; done
fi
