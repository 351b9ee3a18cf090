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
