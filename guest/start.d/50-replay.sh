# Record/replay tests (issue 12): with periscope.replay_attack=NR on the kernel command line, the tamper module replaces
# sys_call_table[NR] after a random delay (15-29 s after this point), so the test does not know when it happens, and
# "periscope-replay: attacked" is printed on the console a few seconds later. Without that parameter nothing happens.
case " $(cat /proc/cmdline) " in
  *" periscope.replay_attack="*)
    replay_nr=$(sed 's/.*periscope\.replay_attack=\([0-9]*\).*/\1/' /proc/cmdline)
    ( sleep $((15 + RANDOM % 15)); insmod /lib/modules/periscope_tamper.ko && echo "syscall $replay_nr" > /proc/periscope_tamper
      sleep 3; echo "periscope-replay: attacked" > /dev/console ) &
    ;;
esac
