# Open files as /proc shows them: one "@@BEGIN fds PID" section per process, "FD<TAB>link<TAB>pos<TAB>flags" per line;
# then /proc/net's socket tables, each in its own section ("@@BEGIN net-tcp": GroundTruth reads a third word as a pid).
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  echo "@@BEGIN fds $pid"
  for fd in $p/fd/*; do
    [ -e "$fd" ] || [ -L "$fd" ] || continue
    n=${fd##*/}
    printf '%s\t%s\t%s\t%s\n' "$n" "$(readlink $fd)" "$(awk '/^pos:/ {print $2}' $p/fdinfo/$n 2>/dev/null)" "$(awk '/^flags:/ {print $2}' $p/fdinfo/$n 2>/dev/null)"
  done
done
for t in tcp tcp6 udp udp6 unix netlink; do
  echo "@@BEGIN net-$t"
  cat /proc/net/$t
done
