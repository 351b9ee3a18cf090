# Record/replay tests (issue 12). With periscope.replay_attack=NR on the kernel command line this hook takes over PID 1
# and the guest prints almost nothing: every serial byte is an event in the recording's log, and /init's full ground
# truth (megabytes) made recordings long and their replays take many minutes. Instead: the two symbols the test needs
# on ttyS1, the ready marker, then after a random 4-15 s (unknown to the test) the tamper module replaces
# sys_call_table[NR]; the module's own report (from dmesg: with "quiet" its printk does not reach the console) and
# "periscope-replay: attacked" follow on ttyS1, then the guest idles. Later start.d hooks and the command port never
# run. Without the parameter nothing happens.
case " $(cat /proc/cmdline) " in
  *" periscope.replay_attack="*)
    replay_nr=$(sed 's/.*periscope\.replay_attack=\([0-9]*\).*/\1/' /proc/cmdline)
    { echo "@@BEGIN banner"; cat /proc/version
      echo "@@BEGIN kallsyms"; grep -E ' (sys_call_table|__x64_sys_getpid)$' /proc/kallsyms
      echo "@@DONE"; echo PERISCOPE-GUEST-READY; } > /dev/ttyS1
    sleep $((4 + RANDOM % 12))
    insmod /lib/modules/periscope_tamper.ko && echo "syscall $replay_nr" > /proc/periscope_tamper
    { dmesg | grep 'periscope_tamper: syscall'; echo "periscope-replay: attacked"; } > /dev/ttyS1
    while true; do sleep 3600; done
    ;;
esac
# Record/replay benchmark (scripts/bench-replay): with periscope.replay_bench=ROUNDS,IDLE the guest runs a fixed busy
# workload (ROUNDS times: fork, exec and SHA-256 of the 2 MB busybox binary), then idles IDLE seconds, reporting each
# phase's start and end with its own uptime on ttyS1 (so log growth is per guest minute), then the line
# "periscope-bench: done" (markers are whole lines), and prints nothing else.
case " $(cat /proc/cmdline) " in
  *" periscope.replay_bench="*)
    bench_rounds=$(sed 's/.*periscope\.replay_bench=\([0-9]*\),\([0-9]*\).*/\1/' /proc/cmdline)
    bench_idle=$(sed 's/.*periscope\.replay_bench=\([0-9]*\),\([0-9]*\).*/\2/' /proc/cmdline)
    { echo "bench busy-start $(cut -d' ' -f1 /proc/uptime)"
      i=0; while [ $i -lt "$bench_rounds" ]; do sha256sum /bin/busybox > /dev/null; i=$((i + 1)); done
      echo "bench busy-end $(cut -d' ' -f1 /proc/uptime)"
      sleep "$bench_idle"
      echo "bench idle-end $(cut -d' ' -f1 /proc/uptime)"; echo "periscope-bench: done"; } > /dev/ttyS1
    while true; do sleep 3600; done
    ;;
esac
